"""The migration function against the real server: adopts the old database in place, builds a
fresh one identical to Hibernate's, is idempotent, keeps the per-consumer users least-privileged,
and fails loudly (so the Trigger fails the deploy)."""

import json
import ssl
from datetime import date, datetime

import pymysql
import pytest

from tests.handlers import conftest
from tests.handlers.conftest import APP_USER, TABLES

DATABASE = "erp_migrate"  # not the database the employee tests are served from
ALL = ["0001_baseline", "0002_lookup_indexes", "0003_one_check_in_per_day"]


@pytest.fixture(autouse=True)
def own_database(aws_env, monkeypatch):
    monkeypatch.setenv("DB_NAME", DATABASE)


def reset_old_database(mariadb) -> None:
    conftest.reset_old_database(mariadb, DATABASE)


@pytest.fixture
def adopted(mariadb, migrator):
    """An adopted old database, re-made only when a previous test left something else behind."""
    try:
        done = applied_ids(mariadb) == ALL and len(snapshot(mariadb)["rows"]["employees"]) == 3
    except pymysql.err.MySQLError:
        done = False
    if not done:
        reset_old_database(mariadb)
        migrator.app.handler({}, None)


SCHEMA_QUERY = (
    "SELECT table_name, column_name, column_type, is_nullable, column_key, extra FROM information_schema.columns"
    " WHERE table_schema = %s AND table_name NOT LIKE '%%yoyo%%' ORDER BY table_name, column_name"
)


def snapshot(mariadb) -> dict:
    with mariadb.admin_connection(database=DATABASE) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA_QUERY, (DATABASE,))
        columns = cur.fetchall()
        rows = {}
        for table in TABLES:
            cur.execute(f"SELECT * FROM {table} ORDER BY id")
            rows[table] = cur.fetchall()
    return {"columns": columns, "rows": rows}


def applied_ids(mariadb) -> list[str]:
    with mariadb.admin_connection(database=DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT migration_id FROM _yoyo_migration ORDER BY migration_id")
        return [r[0] for r in cur.fetchall()]


def grants(mariadb, user: str) -> str:
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"SHOW GRANTS FOR '{user}'@'%'")
        return " ".join(r[0] for r in cur.fetchall() if DATABASE in r[0])


def empty_database(mariadb) -> None:
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def test_adopts_the_old_database_without_losing_a_row(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    before = snapshot(mariadb)

    result = migrator.app.handler({}, None)

    assert result["applied"] == ALL
    after = snapshot(mariadb)
    # Every old row and value is kept; attendance rows only gain their day (the last column).
    assert {t: rows for t, rows in after["rows"].items() if t != "attendance"} == {
        t: rows for t, rows in before["rows"].items() if t != "attendance"
    }
    assert [row[:-1] for row in after["rows"]["attendance"]] == list(before["rows"]["attendance"])
    assert [row[-1] for row in after["rows"]["attendance"]] == [date(2025, 3, 5)]  # 08:55 UTC = 17:55 in Seoul
    # Names, types, nullability and auto_increment of the old columns unchanged (the new indexes only add
    # MUL keys); 0003 adds attendance.check_in_date and the attendance_duplicates table.
    assert len(before["columns"]) == 39  # 7 + 8 + 8 + 8 + 8
    old = [c for c in after["columns"] if c[0] != "attendance_duplicates" and c[:2] != ("attendance", "check_in_date")]
    assert [c[:4] + c[5:] for c in old] == [c[:4] + c[5:] for c in before["columns"]]
    added = [c[:4] for c in after["columns"] if c not in old]
    assert ("attendance", "check_in_date", "date", "YES") in added
    assert len(added) == 1 + 9  # the day, and attendance's 8 columns (with the day) plus moved_at
    assert applied_ids(mariadb) == ALL


def test_second_run_changes_nothing(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    migrator.app.handler({}, None)
    once = snapshot(mariadb)

    result = migrator.app.handler({}, None)

    assert result["applied"] == []
    assert result["users"] == {APP_USER: [APP_USER]}
    assert snapshot(mariadb) == once


def test_builds_a_fresh_database_identical_to_hibernates(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    migrator.app.handler({}, None)
    adopted = snapshot(mariadb)["columns"]

    empty_database(mariadb)
    result = migrator.app.handler({}, None)

    assert result["applied"] == ALL
    fresh = snapshot(mariadb)
    assert fresh["columns"] == adopted
    assert all(rows == () for rows in fresh["rows"].values())


def test_employee_user_gets_dml_only_and_ddl_is_revoked_on_downgrade(adopted, mariadb, aws_env, migrator, monkeypatch):
    consumers = {APP_USER: {"secret_arn": aws_env.app_arn, "privileges": "DDL"}}
    monkeypatch.setenv("CONSUMERS", json.dumps(consumers))
    migrator.app.handler({}, None)
    assert "CREATE" in grants(mariadb, APP_USER) and "DROP" in grants(mariadb, APP_USER)

    consumers[APP_USER]["privileges"] = "DML"
    monkeypatch.setenv("CONSUMERS", json.dumps(consumers))
    migrator.app.handler({}, None)

    granted = grants(mariadb, APP_USER)
    assert "SELECT, INSERT, UPDATE, DELETE ON" in granted
    for privilege in ("CREATE", "DROP", "ALTER", "INDEX", "ALL PRIVILEGES"):
        assert privilege not in granted.replace("DELETE", ""), granted


def test_the_user_logs_in_with_the_secret_password(adopted, mariadb, aws_env, migrator):
    secret = aws_env.app_secret()
    with (
        pymysql.connect(
            host=mariadb.host,
            port=mariadb.port,
            user=secret["username"],
            password=secret["password"],
            database=DATABASE,
            ssl_disabled=True,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT COUNT(*) FROM employees")
        assert cur.fetchone()[0] == 3
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("CREATE TABLE x (id int)")


def test_rotation_clone_gets_the_same_privileges(adopted, mariadb, aws_env, migrator):
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{APP_USER}_clone'@'%' IDENTIFIED BY 'x-Clone-Password-1'")
    try:
        result = migrator.app.handler({}, None)
        assert result["users"] == {APP_USER: [APP_USER, f"{APP_USER}_clone"]}
        assert "SELECT, INSERT, UPDATE, DELETE ON" in grants(mariadb, f"{APP_USER}_clone")
    finally:
        with mariadb.admin_connection() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{APP_USER}_clone'@'%'")


def test_a_failing_migration_raises(mariadb, aws_env, migrator, monkeypatch, tmp_path):
    reset_old_database(mariadb)
    (tmp_path / "0001_broken.sql").write_text("CREATE TABLE employees (id bigint);\n")  # exists already
    monkeypatch.setattr(migrator.app, "MIGRATIONS", tmp_path)

    with pytest.raises(pymysql.err.OperationalError):
        migrator.app.handler({}, None)


def test_wrong_master_password_raises(mariadb, aws_env, migrator, monkeypatch):
    secret = json.loads(aws_env.client.get_secret_value(SecretId=aws_env.master_arn)["SecretString"])
    arn = aws_env.client.create_secret(
        Name="erp/test/mysql-wrong", SecretString=json.dumps(secret | {"password": "no"})
    )["ARN"]
    monkeypatch.setenv("MASTER_SECRET_ARN", arn)
    with pytest.raises(pymysql.err.OperationalError):
        migrator.app.handler({}, None)


def test_unknown_privilege_level_raises(adopted, mariadb, aws_env, migrator, monkeypatch):
    monkeypatch.setenv("CONSUMERS", json.dumps({APP_USER: {"secret_arn": aws_env.app_arn, "privileges": "ALL"}}))
    with pytest.raises(ValueError, match="privileges"):
        migrator.app.handler({}, None)


def test_migrator_tls_is_verified(adopted, mariadb, aws_env, migrator, monkeypatch):
    options = migrator.app.connect_kwargs(
        {"host": "h", "username": "u", "password": "p"}, "erp", True, migrator.app.DEFAULT_CA_BUNDLE
    )
    assert options["ssl"].verify_mode == ssl.CERT_REQUIRED and options["ssl"].check_hostname

    monkeypatch.setenv("DB_TLS", "true")
    monkeypatch.setenv("DB_HOST", "localhost")
    monkeypatch.setenv("DB_CA_BUNDLE", str(mariadb.ca_file))
    assert migrator.app.handler({}, None) == {"applied": [], "users": {APP_USER: [APP_USER]}}

    monkeypatch.setenv("DB_HOST", "127.0.0.1")  # not the certificate's name
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        migrator.app.handler({}, None)


def test_a_stale_lock_fails_the_run_until_an_operator_breaks_it(adopted, mariadb, migrator, monkeypatch):
    with mariadb.admin_connection(database=DATABASE) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, NOW(), 4242)")
    monkeypatch.setattr(migrator.app.MySQLBackend, "lock", _short_lock(migrator.app.MySQLBackend.lock))

    with pytest.raises(Exception, match="locked"):
        migrator.app.handler({}, None)
    assert migrator.app.handler({"break_lock": True}, None)["applied"] == []


def _short_lock(lock):
    def short(self, timeout=10):
        return lock(self, timeout=0.5)

    return short


# --- 0003: one check-in per employee and day --------------------------------------------------

# (id, employee, check_in_time UTC, check_out_time, work_hours). Seoul is UTC+9: its day D runs from
# D-1 15:00 to D 14:59:59 UTC. The seed already holds id 1: employee 1, 2025-03-05 08:55 UTC.
CHECK_INS = [
    (2, 1, "2025-03-05 01:00:00", None, None),  # same day as id 1 but earlier: kept, id 1 moves
    (3, 1, "2025-03-05 10:00:00", "2025-03-05 18:00:00", 8.0),  # third that day: moves, all columns too
    (4, 2, "2025-03-09 15:30:00", None, None),  # Seoul 03-10 00:30 ...
    (5, 2, "2025-03-10 14:00:00", None, None),  # ... Seoul 03-10 23:00: other UTC day, same Seoul day: moves
    (6, 2, "2025-03-11 14:30:00", None, None),  # Seoul 03-11 23:30 ...
    (7, 2, "2025-03-11 15:30:00", None, None),  # ... Seoul 03-12 00:30: same UTC day, other Seoul day: kept
    (8, 3, "2025-03-06 00:00:00", None, None),  # a tie on the time: the lower id is kept ...
    (9, 3, "2025-03-06 00:00:00", None, None),  # ... this one moves
    (10, 3, "2025-03-05 09:00:00", None, None),  # another employee on employee 1's day: kept
]
KEPT = {2: date(2025, 3, 5), 4: date(2025, 3, 10), 6: date(2025, 3, 11), 7: date(2025, 3, 12)}
KEPT |= {8: date(2025, 3, 6), 10: date(2025, 3, 5)}
MOVED = {1, 3, 5, 9}
OLD_COLUMNS = "id, check_in_time, check_out_time, created_at, employee_id, status, work_hours"


def seed_check_ins(mariadb, rows=CHECK_INS) -> None:
    with mariadb.admin_connection(database=DATABASE) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO attendance (id, employee_id, check_in_time, check_out_time, work_hours, status, created_at)"
            " VALUES (%s, %s, %s, %s, %s, 'COMPLETED', %s)",
            [(i, e, t, out, hours, t) for i, e, t, out, hours in rows],
        )


def query(mariadb, sql: str, args=()) -> list[tuple]:
    with mariadb.admin_connection(database=DATABASE) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def old_rows(mariadb, table: str) -> dict[int, tuple]:
    return {row[0]: row for row in query(mariadb, f"SELECT {OLD_COLUMNS} FROM {table}")}


def reapply_0003(mariadb) -> None:
    """Make yoyo forget 0003, so the next run applies it again (what a re-run after a crash amounts to)."""
    with mariadb.admin_connection(database=DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM _yoyo_migration WHERE migration_id = '0003_one_check_in_per_day'")


def test_same_day_check_ins_move_to_attendance_duplicates_and_none_is_lost(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    seed_check_ins(mariadb)
    before = old_rows(mariadb, "attendance")
    employees = query(mariadb, "SELECT * FROM employees ORDER BY id")

    assert migrator.app.handler({}, None)["applied"] == ALL

    kept, moved = old_rows(mariadb, "attendance"), old_rows(mariadb, "attendance_duplicates")
    assert len(kept) + len(moved) == len(before) == 10
    assert kept | moved == before  # every row, every value
    assert set(kept) == set(KEPT) and set(moved) == MOVED
    assert dict(query(mariadb, "SELECT id, check_in_date FROM attendance")) == KEPT
    moved_days = dict(query(mariadb, "SELECT id, check_in_date FROM attendance_duplicates"))
    assert moved_days == {1: date(2025, 3, 5), 3: date(2025, 3, 5), 5: date(2025, 3, 10), 9: date(2025, 3, 6)}
    moved_at = [row[0] for row in query(mariadb, "SELECT moved_at FROM attendance_duplicates")]
    assert all(isinstance(when, datetime) for when in moved_at)
    # Counts and balances stay as they were: rewards already granted stay.
    assert query(mariadb, "SELECT * FROM employees ORDER BY id") == employees


def test_the_database_refuses_a_second_check_in_of_the_day(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    migrator.app.handler({}, None)
    insert = "INSERT INTO attendance (employee_id, check_in_time, check_in_date) VALUES (1, NOW(6), '2025-03-05')"
    with pytest.raises(pymysql.err.IntegrityError) as refused:
        query(mariadb, insert)
    assert refused.value.args[0] == 1062 and "uq_attendance_employee_day" in refused.value.args[1]


def test_0003_runs_again_without_changing_anything_and_dates_what_the_old_service_wrote(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    seed_check_ins(mariadb)
    migrator.app.handler({}, None)
    once = snapshot(mariadb), old_rows(mariadb, "attendance_duplicates")

    assert migrator.app.handler({}, None)["applied"] == []
    reapply_0003(mariadb)
    assert migrator.app.handler({}, None)["applied"] == ["0003_one_check_in_per_day"]
    assert (snapshot(mariadb), old_rows(mariadb, "attendance_duplicates")) == once

    # The old service, still serving during a deploy, writes undated rows: one on a free day, one on a
    # taken day, and two of one free day. A run dates them, keeping the earliest of each day.
    seed_check_ins(
        mariadb,
        [
            (11, 1, "2025-03-20 01:00:00", None, None),
            (12, 1, "2025-03-05 12:00:00", None, None),
            (13, 2, "2025-03-21 02:00:00", None, None),
            (14, 2, "2025-03-21 01:00:00", None, None),
        ],
    )
    reapply_0003(mariadb)
    migrator.app.handler({}, None)

    kept, moved = old_rows(mariadb, "attendance"), old_rows(mariadb, "attendance_duplicates")
    assert len(kept) + len(moved) == 14
    assert {11, 14} <= set(kept) and {12, 13} <= set(moved)
    assert query(mariadb, "SELECT COUNT(*) FROM attendance WHERE check_in_date IS NULL") == [(0,)]


def test_many_rows_are_dated_and_moved_in_batches(mariadb, aws_env, migrator):
    """More rows than one batch (1000): 1200 days of employee 3, each checked in twice."""
    reset_old_database(mariadb)
    rows = []
    for day in range(1200):
        first = datetime(2022, 1, 1, 0, 30) + (datetime(2022, 1, 2) - datetime(2022, 1, 1)) * day
        rows += [(100 + 2 * day, 3, first, None, None), (101 + 2 * day, 3, first.replace(hour=9), None, None)]
    seed_check_ins(mariadb, rows)

    migrator.app.handler({}, None)

    assert query(mariadb, "SELECT COUNT(*), COUNT(DISTINCT check_in_date) FROM attendance WHERE employee_id = 3") == [
        (1200, 1200)
    ]
    assert query(mariadb, "SELECT COUNT(*), MIN(MOD(id, 2)) FROM attendance_duplicates") == [(1200, 1)]


def test_the_day_is_the_one_in_business_timezone(mariadb, aws_env, migrator, monkeypatch):
    monkeypatch.setenv("BUSINESS_TIMEZONE", "UTC")
    reset_old_database(mariadb)
    seed_check_ins(mariadb)

    migrator.app.handler({}, None)

    # In UTC, ids 4 and 5 are different days and ids 6 and 7 the same one: the opposite of Seoul.
    assert {4, 5, 6} <= set(old_rows(mariadb, "attendance"))
    assert 7 in old_rows(mariadb, "attendance_duplicates")


def test_rolling_0003_back_returns_every_row_to_attendance(mariadb, aws_env, migrator):
    reset_old_database(mariadb)
    seed_check_ins(mariadb)
    before = old_rows(mariadb, "attendance")
    columns_before = snapshot(mariadb)["columns"]
    migrator.app.handler({}, None)
    master = json.loads(aws_env.client.get_secret_value(SecretId=aws_env.master_arn)["SecretString"])
    backend = migrator.app._backend(migrator.app.connect_kwargs(master, DATABASE, False, ""))
    try:
        migrations = migrator.app.read_migrations(str(migrator.app.MIGRATIONS))
        with backend.lock():
            backend.rollback_migrations(
                backend.to_rollback(migrations.filter(lambda m: m.id == "0003_one_check_in_per_day"))
            )
    finally:
        backend.connection.close()

    assert old_rows(mariadb, "attendance") == before
    assert [c[:4] for c in snapshot(mariadb)["columns"]] == [c[:4] for c in columns_before]
    assert migrator.app.handler({}, None)["applied"] == ["0003_one_check_in_per_day"]

"""The migration function against the real server: adopts the old database in place, builds a
fresh one identical to Hibernate's, is idempotent, keeps the per-consumer users least-privileged,
and fails loudly (so the Trigger fails the deploy)."""

import json
import ssl

import pymysql
import pytest

from tests.handlers import conftest
from tests.handlers.conftest import APP_USER, TABLES

DATABASE = "erp_migrate"  # not the database the employee tests are served from


@pytest.fixture(autouse=True)
def own_database(aws_env, monkeypatch):
    monkeypatch.setenv("DB_NAME", DATABASE)


def reset_old_database(mariadb) -> None:
    conftest.reset_old_database(mariadb, DATABASE)


@pytest.fixture
def adopted(mariadb, migrator):
    """An adopted old database, re-made only when a previous test left something else behind."""
    try:
        done = (
            applied_ids(mariadb) == ["0001_baseline", "0002_lookup_indexes"]
            and len(snapshot(mariadb)["rows"]["employees"]) == 3
        )
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

    assert result["applied"] == ["0001_baseline", "0002_lookup_indexes"]
    after = snapshot(mariadb)
    assert after["rows"] == before["rows"]
    # Names, types, nullability and auto_increment unchanged (the new indexes only add MUL keys).
    assert len(before["columns"]) == 39  # 7 + 8 + 8 + 8 + 8
    assert [c[:4] + c[5:] for c in after["columns"]] == [c[:4] + c[5:] for c in before["columns"]]
    assert applied_ids(mariadb) == ["0001_baseline", "0002_lookup_indexes"]


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

    assert result["applied"] == ["0001_baseline", "0002_lookup_indexes"]
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

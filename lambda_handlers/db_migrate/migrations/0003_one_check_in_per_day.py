"""One check-in per employee per calendar day, enforced by a unique key the handler relies on.

The Java service took every check-in call, so one employee could check in many times a day and
reach the 30th-check-in reward early. This migration:
1. adds attendance.check_in_date (DATE NULL): the calendar day of check_in_time (UTC) in
   BUSINESS_TIMEZONE (default Asia/Seoul, the value the employee function uses too), backfilled
   here with Python's zoneinfo (RDS has no named-time-zone tables to rely on), in batches;
2. creates attendance_duplicates (attendance's columns plus moved_at) and MOVES into it every
   check-in of an employee and day except the earliest: those rows are kept, not merged or lost.
   employees.attendance_count and the leave balances stay as they are (rewards already granted stay);
3. adds UNIQUE KEY uq_attendance_employee_day (employee_id, check_in_date).

Every part checks the state first and a moved row is inserted and deleted in one transaction, so a
run that died half-way (MySQL DDL is not transactional) finishes on the next deploy, and a run on a
migrated database changes nothing. Rows the old service writes while this runs are dated by a last
pass after the key exists (moved if their day is taken). check_in_date stays nullable: rows written
by an old version later still fit, and NULL is outside the key.
"""

import os
from collections import defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from yoyo import step

__depends__ = {"0002_lookup_indexes"}
__transactional__ = False  # DDL commits anyway; each batch below is its own transaction

KEY = "uq_attendance_employee_day"  # the employee function's attendance.ONE_PER_DAY_KEY
BATCH = 1000
ATTENDANCE_COLUMNS = "id, check_in_time, check_out_time, created_at, employee_id, status, work_hours, check_in_date"
DUPLICATES_TABLE = """CREATE TABLE IF NOT EXISTS attendance_duplicates (
    id bigint NOT NULL,
    check_in_time datetime(6) NOT NULL,
    check_out_time datetime(6),
    created_at datetime(6),
    employee_id bigint NOT NULL,
    status varchar(255),
    work_hours float(53),
    check_in_date date,
    moved_at datetime(6) NOT NULL,
    PRIMARY KEY (id),
    KEY ix_attendance_duplicates_employee (employee_id, check_in_date)
) ENGINE=InnoDB"""


def business_timezone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("BUSINESS_TIMEZONE") or "Asia/Seoul")


def _exists(cur, kind: str, table: str, name: str | None = None) -> bool:
    """Whether a table, or a column or index of it, is there: each part of this migration runs only once."""
    if kind == "table":
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
            (table,),
        )
        return cur.fetchone()[0] > 0
    view, column = {"column": ("columns", "column_name"), "index": ("statistics", "index_name")}[kind]
    cur.execute(
        f"SELECT COUNT(*) FROM information_schema.{view}"
        f" WHERE table_schema = DATABASE() AND table_name = %s AND {column} = %s",
        (table, name),
    )
    return cur.fetchone()[0] > 0


def _in(ids) -> str:
    return ", ".join(["%s"] * len(ids))


def _now():
    return datetime.now(UTC).replace(tzinfo=None)


def _move(conn, ids: list[int], back: bool = False) -> None:
    """Move rows `ids` from attendance to attendance_duplicates (or `back`) in one transaction: a row is
    in exactly one of them at any time. A plain INSERT, so an id already in the target (an id re-used by
    an old server's AUTO_INCREMENT) fails the run loudly instead of dropping a row."""
    if not ids:
        return
    source, target = ("attendance_duplicates", "attendance") if back else ("attendance", "attendance_duplicates")
    columns, values, args = ATTENDANCE_COLUMNS, ATTENDANCE_COLUMNS, list(ids)
    if not back:
        columns, values, args = f"{columns}, moved_at", f"{values}, %s", [_now(), *ids]
    cur = conn.cursor()
    conn.begin()
    try:
        cur.execute(f"INSERT INTO {target} ({columns}) SELECT {values} FROM {source} WHERE id IN ({_in(ids)})", args)
        cur.execute(f"DELETE FROM {source} WHERE id IN ({_in(ids)})", ids)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def backfill(conn, zone: ZoneInfo) -> None:
    """Date every undated row, a batch per transaction. Once the unique key exists (the last pass, a re-run),
    the rows still undated are ones the old service wrote meanwhile: a row whose day is already taken, or
    taken by an earlier row of its batch, is moved instead of dated."""
    cur = conn.cursor()
    keyed = _exists(cur, "index", "attendance", KEY)
    after = 0
    while True:
        cur.execute(
            "SELECT id, employee_id, check_in_time FROM attendance WHERE check_in_date IS NULL AND id > %s"
            " ORDER BY id LIMIT %s",
            (after, BATCH),
        )
        rows = cur.fetchall()
        if not rows:
            return
        after = rows[-1][0]
        days = {row_id: when.replace(tzinfo=UTC).astimezone(zone).date() for row_id, _, when in rows}
        if keyed:
            taken = _taken_days(cur, rows, days)
            _move(conn, [row_id for row_id in days if row_id in taken])
            days = {row_id: day for row_id, day in days.items() if row_id not in taken}
        by_day = defaultdict(list)
        for row_id, day in days.items():
            by_day[day].append(row_id)
        conn.begin()
        try:
            for day, ids in by_day.items():
                cur.execute(f"UPDATE attendance SET check_in_date = %s WHERE id IN ({_in(ids)})", [day, *ids])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def _taken_days(cur, rows, days) -> set[int]:
    """Ids of undated rows whose (employee, day) is already dated, or repeated earlier in this batch."""
    taken, seen = set(), set()
    for row_id, employee_id, _ in sorted(rows, key=lambda r: (r[2], r[0])):
        slot = (employee_id, days[row_id])
        cur.execute(
            "SELECT COUNT(*) FROM attendance WHERE employee_id = %s AND check_in_date = %s", (employee_id, slot[1])
        )
        if slot in seen or cur.fetchone()[0] > 0:
            taken.add(row_id)
        seen.add(slot)
    return taken


def move_duplicates(conn) -> None:
    """Every dated check-in but the earliest (by check_in_time, then id) of its employee and day.

    A window function, not a self-join: before the unique key there is no index on the day, and a
    self-join would compare every pair of an employee's check-ins.
    """
    cur = conn.cursor()
    cur.execute(
        "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY employee_id, check_in_date"
        " ORDER BY check_in_time, id) AS nth FROM attendance WHERE check_in_date IS NOT NULL) AS ranked"
        " WHERE nth > 1 ORDER BY id"
    )
    ids = [row[0] for row in cur.fetchall()]
    for start in range(0, len(ids), BATCH):
        _move(conn, ids[start : start + BATCH])


def apply(conn):
    zone = business_timezone()
    cur = conn.cursor()
    if not _exists(cur, "column", "attendance", "check_in_date"):
        cur.execute("ALTER TABLE attendance ADD COLUMN check_in_date date NULL")
    cur.execute(DUPLICATES_TABLE)
    backfill(conn, zone)
    move_duplicates(conn)
    if not _exists(cur, "index", "attendance", KEY):
        cur.execute(f"ALTER TABLE attendance ADD CONSTRAINT {KEY} UNIQUE (employee_id, check_in_date)")
    backfill(conn, zone)  # rows the old service wrote meanwhile


def rollback(conn):
    """Back to the Hibernate schema (yoyo rollback): the moved rows return to attendance, nothing is lost.
    In this order, so a rollback that died half-way also finishes when run again."""
    cur = conn.cursor()
    if _exists(cur, "index", "attendance", KEY):
        cur.execute(f"ALTER TABLE attendance DROP INDEX {KEY}")
    if _exists(cur, "table", "attendance_duplicates"):
        cur.execute("SELECT id FROM attendance_duplicates ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
        for start in range(0, len(ids), BATCH):
            _move(conn, ids[start : start + BATCH], back=True)
        cur.execute("DROP TABLE attendance_duplicates")
    if _exists(cur, "column", "attendance", "check_in_date"):
        cur.execute("ALTER TABLE attendance DROP COLUMN check_in_date")


steps = [step(apply, rollback)]

"""SQL for the employees table.

Values only ever travel as query parameters; the column names interpolated into
UPDATE statements come from the fixed WRITABLE_COLUMNS tuple, never from the request.
The SQL sticks to what both MySQL 8 and MariaDB accept.
"""

from contextlib import contextmanager
from datetime import datetime

import pymysql
from pymysql.constants import ER

WRITABLE_COLUMNS = ("email", "name", "department", "title")

# Timestamps are DATETIME in UTC (the connection pins time_zone to +00:00): TIMESTAMP
# would stop at 2038. utf8mb4_unicode_ci exists on both MySQL and MariaDB.
SCHEMA = """
CREATE TABLE IF NOT EXISTS employees (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    email VARCHAR(254) NOT NULL,
    name VARCHAR(100) NOT NULL,
    department VARCHAR(100) NOT NULL,
    title VARCHAR(100) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY uq_employees_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""

_SELECT = "SELECT id, email, name, department, title, created_at, updated_at FROM employees"


class DuplicateEmail(Exception):
    """Another employee already has this email address."""


def create_schema(conn: pymysql.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(SCHEMA)


def get(conn: pymysql.Connection, employee_id: int) -> dict | None:
    with conn.cursor() as cur:
        cur.execute(f"{_SELECT} WHERE id = %s", (employee_id,))
        row = cur.fetchone()
    return _to_api(row) if row else None


def list_after(conn: pymysql.Connection, after_id: int, limit: int) -> list[dict]:
    """Keyset page: stable under concurrent inserts and deletes, unlike OFFSET."""
    with conn.cursor() as cur:
        cur.execute(f"{_SELECT} WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit))
        return [_to_api(row) for row in cur.fetchall()]


def create(conn: pymysql.Connection, fields: dict) -> dict:
    columns = [c for c in WRITABLE_COLUMNS if c in fields]
    placeholders = ", ".join(["%s"] * len(columns))
    with _unique_email(), conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO employees ({', '.join(columns)}) VALUES ({placeholders})",
            [fields[c] for c in columns],
        )
        employee_id = cur.lastrowid
    return get(conn, employee_id)


def update(conn: pymysql.Connection, employee_id: int, fields: dict) -> bool:
    """Set the given writable fields; False if there is no such employee."""
    columns = [c for c in WRITABLE_COLUMNS if c in fields]
    assignments = ", ".join([f"{c} = %s" for c in columns] + ["updated_at = CURRENT_TIMESTAMP(3)"])
    with _unique_email(), conn.cursor() as cur:
        matched = cur.execute(
            f"UPDATE employees SET {assignments} WHERE id = %s",
            [fields[c] for c in columns] + [employee_id],
        )
    # The connection reports matched rather than changed rows, so a no-op update still counts.
    return matched == 1


def delete(conn: pymysql.Connection, employee_id: int) -> bool:
    with conn.cursor() as cur:
        return cur.execute("DELETE FROM employees WHERE id = %s", (employee_id,)) == 1


@contextmanager
def _unique_email():
    try:
        yield
    except pymysql.err.IntegrityError as exc:
        if exc.args[0] == ER.DUP_ENTRY:  # email is the only unique key besides the id
            raise DuplicateEmail from exc
        raise


def _to_api(row: dict) -> dict:
    return {**row, "created_at": _iso_utc(row["created_at"]), "updated_at": _iso_utc(row["updated_at"])}


def _iso_utc(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds") + "Z"

"""SQL over the five tables Hibernate created for the Spring employee service (never DDL here):
employees and leaves, plus what every domain module shares (errors, clock, transactions).
Attendance and quests live in attendance.py and quests.py, which build on this module.

Values only ever travel as query parameters. Every change to a leave balance or a quest's
state runs in a transaction that first locks the rows it reads (SELECT ... FOR UPDATE), so
concurrent deductions, claims and approvals are serialized: a balance never goes below zero
and a reward is never paid twice. NULLs in old rows (balance, count, status) read as the
Java defaults the old service would have used (0.0, 0).
"""

from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus

import pymysql
from validation import ApiError


class Conflict(ApiError):
    """A business rule refused the change (answered 400 with "error", as the old service did)."""

    def __init__(self, message: str):
        super().__init__(HTTPStatus.BAD_REQUEST, message)


class SeparationOfDuties(ApiError):
    """403: nobody decides their own leave or quest progress, nor takes part in a quest they created.

    Raised inside the transaction that locked the row, so the owner checked is the one decided on."""

    def __init__(self, message: str):
        super().__init__(HTTPStatus.FORBIDDEN, message)


class DuplicateEmail(ApiError):
    def __init__(self):
        super().__init__(HTTPStatus.CONFLICT, "An employee with this email already exists", "email")


def not_found(what: str, ident) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, f"{what} not found: {ident}")


def now() -> datetime:
    """The clock, naive UTC: DATETIME(6) columns hold UTC. One function so tests can move it."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value) -> str | None:
    return value.isoformat() if value is not None else None


@contextmanager
def transaction(conn: pymysql.Connection):
    conn.begin()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


# --- employees ----------------------------------------------------------------------------

_EMPLOYEE = (
    "SELECT id, name, email, department, position, annual_leave_balance, attendance_count, created_at FROM employees"
)


def _employee(row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "department": row["department"],
        "position": row["position"],
        "annualLeaveBalance": row["annual_leave_balance"],
        "attendanceCount": row["attendance_count"],
        "createdAt": iso(row["created_at"]),
    }


def list_employees(conn, department: str | None, position: str | None, after_id: int, limit: int | None) -> list:
    where, args = ["id > %s"], [after_id]
    if department is not None:
        where.append("department = %s")
        args.append(department)
    if position is not None:
        where.append("position = %s")
        args.append(position)
    sql = f"{_EMPLOYEE} WHERE {' AND '.join(where)} ORDER BY id"
    if limit is not None:
        sql += " LIMIT %s"
        args.append(limit)
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [_employee(r) for r in cur.fetchall()]


def get_employee(conn, employee_id: int) -> dict:
    with conn.cursor() as cur:
        cur.execute(f"{_EMPLOYEE} WHERE id = %s", (employee_id,))
        row = cur.fetchone()
    if row is None:
        raise not_found("Employee", employee_id)
    return _employee(row)


def employee_email(conn, employee_id: int) -> str | None:
    """The record's email (lower case), for ownership checks; 404 if there is no such employee."""
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM employees WHERE id = %s", (employee_id,))
        row = cur.fetchone()
    if row is None:
        raise not_found("Employee", employee_id)
    return row["email"].strip().lower() if row["email"] else None


def employee_id_by_email(conn, email: str) -> int | None:
    """The id of the record whose email is `email` (already lower case), if any: a caller's own record.

    The one lookup behind "own employee ids" (app._own_ids). The unique key on email makes it one row;
    the column's collation (MySQL 8's default utf8mb4_0900_ai_ci, which Hibernate's tables inherit)
    is case-insensitive, and this service writes emails in lower case anyway.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM employees WHERE email = %s ORDER BY id LIMIT 1", (email,))
        row = cur.fetchone()
    return row["id"] if row else None


def create_employee(conn, name: str, department: str, position: str, email: str | None) -> dict:
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO employees (name, email, department, position, annual_leave_balance, attendance_count,"
                " created_at) VALUES (%s, %s, %s, %s, 0.0, 0, %s)",
                (name, email, department, position, now()),
            )
            employee_id = cur.lastrowid
    except pymysql.err.IntegrityError as exc:
        if exc.args[0] == 1062:  # ER_DUP_ENTRY: email is the only unique key besides the id
            raise DuplicateEmail from None
        raise
    return get_employee(conn, employee_id)


def update_employee(conn, employee_id: int, fields: dict, *, only_without_email: bool = False) -> dict:
    """Set `fields`; with `only_without_email`, only while the record has no email (a linked user claiming
    their legacy record: the condition sits in the UPDATE, so two claims cannot both win)."""
    columns = [c for c in ("name", "email", "department", "position") if c in fields]
    if columns:
        condition = " AND email IS NULL" if only_without_email else ""
        try:
            with conn.cursor() as cur:
                matched = cur.execute(
                    f"UPDATE employees SET {', '.join(f'{c} = %s' for c in columns)} WHERE id = %s{condition}",
                    [fields[c] for c in columns] + [employee_id],
                )
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] == 1062:
                raise DuplicateEmail from None
            raise
        if matched != 1:
            employee_email(conn, employee_id)  # 404 if it is gone
            raise ApiError(HTTPStatus.CONFLICT, "The employee record already has an email", "email")
    return get_employee(conn, employee_id)


def delete_employee(conn, employee_id: int) -> None:
    with conn.cursor() as cur:
        if cur.execute("DELETE FROM employees WHERE id = %s", (employee_id,)) != 1:
            raise not_found("Employee", employee_id)


def team(conn, department: str) -> list:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, name, position, annual_leave_balance FROM employees WHERE department = %s ORDER BY id",
            (department,),
        )
        return [
            {"id": r["id"], "name": r["name"], "position": r["position"], "leaveBalance": r["annual_leave_balance"]}
            for r in cur.fetchall()
        ]


def locked_employee(cur, employee_id: int) -> dict:
    """The employee row, locked for the rest of the transaction: balance and count as numbers; 404 if none."""
    cur.execute(
        "SELECT id, department, COALESCE(annual_leave_balance, 0) AS balance,"
        " COALESCE(attendance_count, 0) AS attendance FROM employees WHERE id = %s FOR UPDATE",
        (employee_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise not_found("Employee", employee_id)
    return row


def leave_balance(conn, employee_id: int) -> float:
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(annual_leave_balance, 0) AS balance FROM employees WHERE id = %s", (employee_id,))
        row = cur.fetchone()
    if row is None:
        raise not_found("Employee", employee_id)
    return float(row["balance"])


def adjust_balance(conn, employee_id: int, adjustment: int) -> float:
    """Add `adjustment` (may be negative, never below zero); the new balance."""
    with transaction(conn) as cur:
        balance = float(locked_employee(cur, employee_id)["balance"])
        new_balance = balance + adjustment
        if new_balance < 0:
            raise Conflict(f"Adjustment would make the leave balance negative (balance {balance})")
        cur.execute("UPDATE employees SET annual_leave_balance = %s WHERE id = %s", (new_balance, employee_id))
    return new_balance


def deduct_leave(conn, employee_id: int, days: float) -> float:
    """Take `days` off the balance, or change nothing and refuse when it is short; the remainder."""
    with transaction(conn) as cur:
        balance = float(locked_employee(cur, employee_id)["balance"])
        if balance < days:
            raise Conflict(f"Insufficient leave balance: {balance} < {days}")
        remaining = balance - days
        cur.execute("UPDATE employees SET annual_leave_balance = %s WHERE id = %s", (remaining, employee_id))
    return remaining


# --- leaves -------------------------------------------------------------------------------

_LEAVE = "SELECT id, employee_id, start_date, end_date, days, reason, status, created_at FROM leaves"


def _leave(r: dict) -> dict:
    return {
        "id": r["id"],
        "employeeId": r["employee_id"],
        "startDate": iso(r["start_date"]),
        "endDate": iso(r["end_date"]),
        "days": r["days"],
        "reason": r["reason"],
        "status": r["status"],
        "createdAt": iso(r["created_at"]),
    }


def _get_leave(cur, leave_id: int) -> dict:
    cur.execute(f"{_LEAVE} WHERE id = %s", (leave_id,))
    row = cur.fetchone()
    if row is None:
        raise not_found("Leave", leave_id)
    return _leave(row)


def create_leave(conn, employee_id: int, start: str, end: str, days: int, reason: str | None) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM employees WHERE id = %s", (employee_id,))
        if cur.fetchone() is None:
            raise not_found("Employee", employee_id)
        cur.execute(
            "INSERT INTO leaves (employee_id, start_date, end_date, days, reason, status, created_at)"
            " VALUES (%s, %s, %s, %s, %s, 'PENDING', %s)",
            (employee_id, start, end, days, reason, now()),
        )
        return _get_leave(cur, cur.lastrowid)


def list_leaves(conn, employee_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute(f"{_LEAVE} WHERE employee_id = %s ORDER BY created_at DESC, id DESC", (employee_id,))
        return [_leave(r) for r in cur.fetchall()]


def decide_leave(conn, leave_id: int, status: str, not_for: frozenset[int] = frozenset()) -> dict:
    """PENDING -> `status`; refused (403) when the leave belongs to one of `not_for`, the decider's own ids."""
    with transaction(conn) as cur:
        cur.execute("SELECT employee_id, status FROM leaves WHERE id = %s FOR UPDATE", (leave_id,))
        row = cur.fetchone()
        if row is None:
            raise not_found("Leave", leave_id)
        if row["employee_id"] in not_for:
            raise SeparationOfDuties("You may not approve or reject your own leave")
        if row["status"] not in (None, "PENDING"):
            raise Conflict(f"Leave is already {row['status']}")
        cur.execute("UPDATE leaves SET status = %s WHERE id = %s", (status, leave_id))
        return _get_leave(cur, leave_id)


def leave_summary(conn, employee_id: int) -> dict:
    total = leave_balance(conn, employee_id)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(SUM(days), 0) AS used FROM leaves WHERE employee_id = %s AND status = 'APPROVED'",
            (employee_id,),
        )
        used = int(cur.fetchone()["used"])
    return {"totalLeave": total, "usedLeave": used, "remainingLeave": total - used}

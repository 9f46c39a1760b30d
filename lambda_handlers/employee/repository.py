"""SQL over the five tables Hibernate created for the Spring employee service (never DDL here).

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


class DuplicateEmail(ApiError):
    def __init__(self):
        super().__init__(HTTPStatus.CONFLICT, "An employee with this email already exists", "email")


def not_found(what: str, ident) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, f"{what} not found: {ident}")


REWARD_EVERY = 30  # every 30th check-in adds a leave day


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # DATETIME(6) columns hold UTC


def _iso(value) -> str | None:
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
        "createdAt": _iso(row["created_at"]),
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


def create_employee(conn, name: str, department: str, position: str, email: str | None) -> dict:
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO employees (name, email, department, position, annual_leave_balance, attendance_count,"
                " created_at) VALUES (%s, %s, %s, %s, 0.0, 0, %s)",
                (name, email, department, position, _now()),
            )
            employee_id = cur.lastrowid
    except pymysql.err.IntegrityError as exc:
        if exc.args[0] == 1062:  # ER_DUP_ENTRY: email is the only unique key besides the id
            raise DuplicateEmail from None
        raise
    return get_employee(conn, employee_id)


def update_employee(conn, employee_id: int, fields: dict) -> dict:
    columns = [c for c in ("name", "email", "department", "position") if c in fields]
    if columns:
        try:
            with conn.cursor() as cur:
                matched = cur.execute(
                    f"UPDATE employees SET {', '.join(f'{c} = %s' for c in columns)} WHERE id = %s",
                    [fields[c] for c in columns] + [employee_id],
                )
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] == 1062:
                raise DuplicateEmail from None
            raise
        if matched != 1:
            raise not_found("Employee", employee_id)
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


def _locked_employee(cur, employee_id: int) -> dict:
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
        balance = float(_locked_employee(cur, employee_id)["balance"])
        new_balance = balance + adjustment
        if new_balance < 0:
            raise Conflict(f"Adjustment would make the leave balance negative (balance {balance})")
        cur.execute("UPDATE employees SET annual_leave_balance = %s WHERE id = %s", (new_balance, employee_id))
    return new_balance


def deduct_leave(conn, employee_id: int, days: float) -> float:
    """Take `days` off the balance, or change nothing and refuse when it is short; the remainder."""
    with transaction(conn) as cur:
        balance = float(_locked_employee(cur, employee_id)["balance"])
        if balance < days:
            raise Conflict(f"Insufficient leave balance: {balance} < {days}")
        remaining = balance - days
        cur.execute("UPDATE employees SET annual_leave_balance = %s WHERE id = %s", (remaining, employee_id))
    return remaining


# --- attendance ---------------------------------------------------------------------------


def check_in(conn, employee_id: int) -> dict:
    with transaction(conn) as cur:
        row = _locked_employee(cur, employee_id)
        count = int(row["attendance"]) + 1
        reward = count % REWARD_EVERY == 0
        balance = float(row["balance"]) + (1.0 if reward else 0.0)
        now = _now()
        cur.execute(
            "INSERT INTO attendance (employee_id, check_in_time, status, created_at) VALUES (%s, %s, 'COMPLETED', %s)",
            (employee_id, now, now),
        )
        cur.execute(
            "UPDATE employees SET attendance_count = %s, annual_leave_balance = %s WHERE id = %s",
            (count, balance, employee_id),
        )
    return {
        "attendanceCount": count,
        "questProgress": (count % REWARD_EVERY) * 100 // REWARD_EVERY,
        "rewardEarned": reward,
        "currentLeaveBalance": balance,
    }


def attendance_progress(conn, employee_id: int) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(attendance_count, 0) AS n FROM employees WHERE id = %s", (employee_id,))
        row = cur.fetchone()
    if row is None:
        raise not_found("Employee", employee_id)
    current = int(row["n"]) % REWARD_EVERY
    return {
        "attendanceCount": current,
        "targetCount": REWARD_EVERY,
        "progress": current * 100 // REWARD_EVERY,
        "nextRewardAt": REWARD_EVERY - current,
    }


def attendance_history(conn, employee_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, employee_id, check_in_time, check_out_time, work_hours, status, created_at FROM attendance"
            " WHERE employee_id = %s ORDER BY check_in_time DESC, id DESC",
            (employee_id,),
        )
        return [
            {
                "id": r["id"],
                "employeeId": r["employee_id"],
                "checkInTime": _iso(r["check_in_time"]),
                "checkOutTime": _iso(r["check_out_time"]),
                "workHours": r["work_hours"],
                "status": r["status"],
                "createdAt": _iso(r["created_at"]),
            }
            for r in cur.fetchall()
        ]


# --- quests -------------------------------------------------------------------------------


def _names(cur, ids) -> dict:
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    cur.execute(f"SELECT id, name FROM employees WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
    return {r["id"]: r["name"] for r in cur.fetchall()}


def list_quests(conn) -> list:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, title, description, reward_days, department, created_by, status FROM quests"
            " WHERE status IS NULL OR status <> 'DELETED' ORDER BY id"
        )
        quests = cur.fetchall()
        progress: dict[int, list] = {q["id"]: [] for q in quests}
        if quests:
            cur.execute(
                "SELECT id, quest_id, employee_id, status FROM quest_progress"
                f" WHERE quest_id IN ({', '.join(['%s'] * len(quests))}) ORDER BY id",
                [q["id"] for q in quests],
            )
            for p in cur.fetchall():
                progress[p["quest_id"]].append(p)
        names = _names(
            cur, [q["created_by"] for q in quests] + [p["employee_id"] for ps in progress.values() for p in ps]
        )
    return [
        {
            "id": q["id"],
            "title": q["title"],
            "description": q["description"],
            "rewardDays": q["reward_days"],
            "department": q["department"],
            "createdBy": q["created_by"],
            "createdByName": names.get(q["created_by"], "Unknown"),
            "status": q["status"],
            "progressList": [
                {
                    "id": p["id"],
                    "employeeId": p["employee_id"],
                    "employeeName": names.get(p["employee_id"], "Unknown"),
                    "status": p["status"],
                }
                for p in progress[q["id"]]
            ],
        }
        for q in quests
    ]


def available_quests(conn, employee_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute("SELECT department FROM employees WHERE id = %s", (employee_id,))
        row = cur.fetchone()
        if row is None:
            raise not_found("Employee", employee_id)
        cur.execute(
            "SELECT id, title, description, reward_days FROM quests WHERE department = %s AND status = 'AVAILABLE'"
            " ORDER BY id",
            (row["department"],),
        )
        return [
            {
                "id": q["id"],
                "title": q["title"],
                "description": q["description"],
                "rewardDays": q["reward_days"],
                "status": "AVAILABLE",
            }
            for q in cur.fetchall()
        ]


def my_quests(conn, employee_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT p.id, p.quest_id, p.status, q.title, q.reward_days FROM quest_progress p"
            " LEFT JOIN quests q ON q.id = p.quest_id WHERE p.employee_id = %s ORDER BY p.id",
            (employee_id,),
        )
        return [
            {
                "id": r["id"],
                "questId": r["quest_id"],
                "title": r["title"] if r["title"] is not None else "",
                "rewardDays": r["reward_days"] if r["reward_days"] is not None else 0,
                "status": r["status"],
            }
            for r in cur.fetchall()
        ]


def my_created(conn, manager_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute("SELECT id, title, reward_days FROM quests WHERE created_by = %s ORDER BY id", (manager_id,))
        quests = cur.fetchall()
        waiting: dict[int, int] = {}
        if quests:
            cur.execute(
                "SELECT quest_id, employee_id FROM quest_progress WHERE status = 'WAITING_APPROVAL'"
                f" AND quest_id IN ({', '.join(['%s'] * len(quests))}) ORDER BY id",
                [q["id"] for q in quests],
            )
            for p in cur.fetchall():
                waiting.setdefault(p["quest_id"], p["employee_id"])
        names = _names(cur, waiting.values())
    return [
        {
            "id": q["id"],
            "title": q["title"],
            "acceptedBy": names.get(waiting[q["id"]], "Unknown") if q["id"] in waiting else "",
            "status": "WAITING_APPROVAL" if q["id"] in waiting else "AVAILABLE",
            "rewardDays": q["reward_days"],
        }
        for q in quests
    ]


def create_quest(conn, title, description, reward_days, department, created_by) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO quests (title, description, reward_days, department, created_by, status, created_at)"
            " VALUES (%s, %s, %s, %s, %s, 'AVAILABLE', %s)",
            (title, description, reward_days, department, created_by, _now()),
        )
        return cur.lastrowid


def _locked_quest(cur, quest_id: int) -> dict:
    cur.execute("SELECT id, reward_days, status FROM quests WHERE id = %s FOR UPDATE", (quest_id,))
    row = cur.fetchone()
    if row is None or row["status"] == "DELETED":
        raise not_found("Quest", quest_id)
    return row


def _locked_progress(cur, quest_id: int, employee_id: int) -> dict:
    cur.execute(
        "SELECT id, status FROM quest_progress WHERE quest_id = %s AND employee_id = %s ORDER BY id DESC LIMIT 1"
        " FOR UPDATE",
        (quest_id, employee_id),
    )
    row = cur.fetchone()
    if row is None:
        raise not_found("Quest progress", f"quest {quest_id}, employee {employee_id}")
    return row


def accept_quest(conn, quest_id: int, employee_id: int) -> None:
    with transaction(conn) as cur:
        _locked_quest(cur, quest_id)  # the quest row lock serializes two accepts by the same employee
        cur.execute("SELECT id FROM employees WHERE id = %s", (employee_id,))
        if cur.fetchone() is None:
            raise not_found("Employee", employee_id)
        cur.execute(
            "SELECT id FROM quest_progress WHERE quest_id = %s AND employee_id = %s AND status <> 'REJECTED'",
            (quest_id, employee_id),
        )
        if cur.fetchone() is not None:
            raise Conflict("Quest already accepted by this employee")
        cur.execute(
            "INSERT INTO quest_progress (quest_id, employee_id, status, accepted_at) VALUES (%s, %s, 'IN_PROGRESS', %s)",
            (quest_id, employee_id, _now()),
        )


def complete_quest(conn, quest_id: int, employee_id: int) -> None:
    with transaction(conn) as cur:
        progress = _locked_progress(cur, quest_id, employee_id)
        if progress["status"] != "IN_PROGRESS":
            raise Conflict(f"Quest is {progress['status']}, not IN_PROGRESS")
        cur.execute(
            "UPDATE quest_progress SET status = 'WAITING_APPROVAL', completed_at = %s WHERE id = %s",
            (_now(), progress["id"]),
        )


def claim_quest(conn, quest_id: int, employee_id: int) -> float:
    """Pay rewardDays once: the progress row lock makes a second, concurrent claim see CLAIMED."""
    with transaction(conn) as cur:
        progress = _locked_progress(cur, quest_id, employee_id)
        if progress["status"] != "APPROVED":
            raise Conflict("Quest is not approved (or its reward was already claimed)")
        cur.execute("SELECT reward_days FROM quests WHERE id = %s", (quest_id,))
        quest = cur.fetchone()
        if quest is None:
            raise not_found("Quest", quest_id)
        employee = _locked_employee(cur, employee_id)
        new_balance = float(employee["balance"]) + float(quest["reward_days"])
        cur.execute("UPDATE employees SET annual_leave_balance = %s WHERE id = %s", (new_balance, employee_id))
        cur.execute(
            "UPDATE quest_progress SET status = 'CLAIMED', claimed_at = %s WHERE id = %s", (_now(), progress["id"])
        )
    return new_balance


def decide_quest(conn, quest_id: int, approve: bool) -> None:
    """The first progress waiting for approval becomes APPROVED or REJECTED."""
    with transaction(conn) as cur:
        _locked_quest(cur, quest_id)
        cur.execute(
            "SELECT id FROM quest_progress WHERE quest_id = %s AND status = 'WAITING_APPROVAL' ORDER BY id LIMIT 1"
            " FOR UPDATE",
            (quest_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise Conflict("No progress is waiting for approval on this quest")
        if approve:
            cur.execute(
                "UPDATE quest_progress SET status = 'APPROVED', approved_at = %s WHERE id = %s", (_now(), row["id"])
            )
        else:
            cur.execute("UPDATE quest_progress SET status = 'REJECTED' WHERE id = %s", (row["id"],))


def delete_quest(conn, quest_id: int) -> None:
    with conn.cursor() as cur:
        if cur.execute("UPDATE quests SET status = 'DELETED' WHERE id = %s", (quest_id,)) != 1:
            raise not_found("Quest", quest_id)


# --- leaves -------------------------------------------------------------------------------

_LEAVE = "SELECT id, employee_id, start_date, end_date, days, reason, status, created_at FROM leaves"


def _leave(r: dict) -> dict:
    return {
        "id": r["id"],
        "employeeId": r["employee_id"],
        "startDate": _iso(r["start_date"]),
        "endDate": _iso(r["end_date"]),
        "days": r["days"],
        "reason": r["reason"],
        "status": r["status"],
        "createdAt": _iso(r["created_at"]),
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
            (employee_id, start, end, days, reason, _now()),
        )
        return _get_leave(cur, cur.lastrowid)


def list_leaves(conn, employee_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute(f"{_LEAVE} WHERE employee_id = %s ORDER BY created_at DESC, id DESC", (employee_id,))
        return [_leave(r) for r in cur.fetchall()]


def decide_leave(conn, leave_id: int, status: str) -> dict:
    with transaction(conn) as cur:
        cur.execute("SELECT status FROM leaves WHERE id = %s FOR UPDATE", (leave_id,))
        row = cur.fetchone()
        if row is None:
            raise not_found("Leave", leave_id)
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

"""Quests: managers post them, employees accept, complete and claim, managers approve or reject.

Separation of duties (the Java service had none): who may act is app.py's business, but the
approval check needs the progress row that is actually decided, which is only known inside the
transaction that locks it, so decide_quest takes the decider's own ids and refuses there.
"""

import repository
from repository import Conflict, SeparationOfDuties, not_found, transaction


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
            (title, description, reward_days, department, created_by, repository.now()),
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


def _refuse_own_quest(cur, quest_id: int, not_for: frozenset[int]) -> None:
    """403 when the quest was created by one of `not_for` (the caller's own ids): nobody earns a reward
    from a quest they posted themselves."""
    if not not_for:
        return
    cur.execute("SELECT created_by FROM quests WHERE id = %s", (quest_id,))
    row = cur.fetchone()
    if row is not None and row["created_by"] in not_for:
        raise SeparationOfDuties("You may not take part in a quest you created")


def accept_quest(conn, quest_id: int, employee_id: int, not_for: frozenset[int] = frozenset()) -> None:
    with transaction(conn) as cur:
        _locked_quest(cur, quest_id)  # the quest row lock serializes two accepts by the same employee
        _refuse_own_quest(cur, quest_id, not_for)
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
            (quest_id, employee_id, repository.now()),
        )


def complete_quest(conn, quest_id: int, employee_id: int, not_for: frozenset[int] = frozenset()) -> None:
    with transaction(conn) as cur:
        _refuse_own_quest(cur, quest_id, not_for)
        progress = _locked_progress(cur, quest_id, employee_id)
        if progress["status"] != "IN_PROGRESS":
            raise Conflict(f"Quest is {progress['status']}, not IN_PROGRESS")
        cur.execute(
            "UPDATE quest_progress SET status = 'WAITING_APPROVAL', completed_at = %s WHERE id = %s",
            (repository.now(), progress["id"]),
        )


def claim_quest(conn, quest_id: int, employee_id: int, not_for: frozenset[int] = frozenset()) -> float:
    """Pay rewardDays once: the progress row lock makes a second, concurrent claim see CLAIMED."""
    with transaction(conn) as cur:
        _refuse_own_quest(cur, quest_id, not_for)
        progress = _locked_progress(cur, quest_id, employee_id)
        if progress["status"] != "APPROVED":
            raise Conflict("Quest is not approved (or its reward was already claimed)")
        cur.execute("SELECT reward_days FROM quests WHERE id = %s", (quest_id,))
        quest = cur.fetchone()
        if quest is None:
            raise not_found("Quest", quest_id)
        employee = repository.locked_employee(cur, employee_id)
        new_balance = float(employee["balance"]) + float(quest["reward_days"])
        cur.execute("UPDATE employees SET annual_leave_balance = %s WHERE id = %s", (new_balance, employee_id))
        cur.execute(
            "UPDATE quest_progress SET status = 'CLAIMED', claimed_at = %s WHERE id = %s",
            (repository.now(), progress["id"]),
        )
    return new_balance


def decide_quest(
    conn, quest_id: int, approve: bool, employee_id: int | None = None, not_for: frozenset[int] = frozenset()
) -> int:
    """The waiting progress of `employee_id` (when given), else the first one waiting for approval,
    becomes APPROVED or REJECTED; the employee whose progress it was.

    The Java service ignored the body and took the first waiting progress, so a manager could not tell
    which employee they were deciding for; the frontend sends {managerId, employeeId}, and employeeId
    now picks the progress. Refused (403, nothing changed) when that progress is one of `not_for`.
    """
    with transaction(conn) as cur:
        _locked_quest(cur, quest_id)
        sql = "SELECT id, employee_id FROM quest_progress WHERE quest_id = %s AND status = 'WAITING_APPROVAL'"
        args: list = [quest_id]
        if employee_id is not None:
            sql += " AND employee_id = %s"
            args.append(employee_id)
        cur.execute(sql + " ORDER BY id LIMIT 1 FOR UPDATE", args)
        row = cur.fetchone()
        if row is None:
            who = f" for employee {employee_id}" if employee_id is not None else ""
            raise Conflict(f"No progress{who} is waiting for approval on this quest")
        if row["employee_id"] in not_for:
            raise SeparationOfDuties("You may not approve or reject your own quest progress")
        if approve:
            cur.execute(
                "UPDATE quest_progress SET status = 'APPROVED', approved_at = %s WHERE id = %s",
                (repository.now(), row["id"]),
            )
        else:
            cur.execute("UPDATE quest_progress SET status = 'REJECTED' WHERE id = %s", (row["id"],))
    return row["employee_id"]


def delete_quest(conn, quest_id: int) -> None:
    with conn.cursor() as cur:
        if cur.execute("UPDATE quests SET status = 'DELETED' WHERE id = %s", (quest_id,)) != 1:
            raise not_found("Quest", quest_id)

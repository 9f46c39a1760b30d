"""Races the old service lost: concurrent deductions, claims, check-ins, approvals and leave decisions on the
real server.

Each thread is its own "container": an independent copy of the app module (its own resolver,
Database and MySQL session), released together by a barrier so the requests overlap.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from tests.handlers.conftest import call, load_app_copy

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

WORKERS = 12


@pytest.fixture(scope="module")
def containers(employee):
    return [load_app_copy(employee, f"race{i}") for i in range(WORKERS)]


def fire(containers, method: str, path: str | list[str], **options) -> list:
    """The same request from every container at (nearly) the same instant; a list of paths: one per container."""
    paths = path if isinstance(path, list) else [path] * len(containers)
    barrier = threading.Barrier(len(containers))

    def one(app_module, request_path):
        app_module.db.connection()  # log in before the race: the race is about the request
        barrier.wait()
        return call(app_module, method, request_path, **options)

    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        return list(pool.map(one, containers, paths))


def balance(mariadb, employee_id: int) -> float:
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT annual_leave_balance, attendance_count FROM employees WHERE id = %s", (employee_id,))
        return cur.fetchone()


def test_concurrent_deductions_never_overdraw(containers, clean_database, mariadb):
    # Employee 1 has 5.0 days; 12 simultaneous 1-day deductions.
    responses = fire(containers, "POST", "/api/employees/1/deduct-leave", role="internal", json_body={"days": 1})

    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 5 + [400] * (WORKERS - 5)
    assert sorted(r.body["remainingLeave"] for r in responses if r.status == 200) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert balance(mariadb, 1)[0] == 0.0


def test_concurrent_claims_pay_once(containers, clean_database, mariadb):
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO quest_progress (quest_id, employee_id, status) VALUES (1, 1, 'APPROVED')")

    responses = fire(containers, "POST", "/api/quests/1/claim", role="owner", json_body={"employeeId": 1})

    assert sorted(r.status for r in responses) == [200] + [400] * (WORKERS - 1)
    assert balance(mariadb, 1)[0] == 5.0 + 1.5


def test_concurrent_check_ins_of_one_day_count_once(containers, clean_database, mariadb, employee, monkeypatch):
    # Employee 1 is at 29 check-ins: the one check-in the database lets through is the 30th. The clock is
    # stopped (every container shares the repository module), so the race cannot straddle midnight in Seoul.
    monkeypatch.setattr(employee.repository, "now", lambda: datetime(2026, 3, 2, 14, 59, 59, 999000))
    responses = fire(containers, "POST", "/api/attendance/check-in/1", role="owner")

    assert sorted(r.status for r in responses) == [200] + [409] * (WORKERS - 1)
    winner = next(r for r in responses if r.status == 200)
    assert (winner.body["attendanceCount"], winner.body["rewardEarned"]) == (30, True)
    assert all(r.body["message"] == "Already checked in today" for r in responses if r.status == 409)
    assert balance(mariadb, 1) == (6.0, 30)
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM attendance WHERE employee_id = 1 AND check_in_date IS NOT NULL")
        assert cur.fetchone() == (1,)


def test_concurrent_approvals_approve_one_progress_each(containers, clean_database, mariadb):
    # Employees 1 and 3 (not the approving manager, employee 2: nobody decides their own progress).
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        for employee_id in (1, 3):
            cur.execute(
                "INSERT INTO quest_progress (quest_id, employee_id, status) VALUES (1, %s, 'WAITING_APPROVAL')",
                (employee_id,),
            )

    responses = fire(containers, "PUT", "/api/quests/1/approve", role="manager")

    assert sorted(r.status for r in responses) == [200] * 2 + [400] * (WORKERS - 2)
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, COUNT(*) FROM quest_progress WHERE quest_id = 1 GROUP BY status")
        assert dict(cur.fetchall()) == {"APPROVED": 2}


def test_concurrent_approvals_of_one_named_employee_approve_once(containers, clean_database, mariadb):
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        for employee_id in (1, 3):
            cur.execute(
                "INSERT INTO quest_progress (quest_id, employee_id, status) VALUES (1, %s, 'WAITING_APPROVAL')",
                (employee_id,),
            )

    body = {"managerId": 2, "employeeId": 3}
    responses = fire(containers, "PUT", "/api/quests/1/approve", role="manager", json_body=body)

    assert sorted(r.status for r in responses) == [200] + [400] * (WORKERS - 1)
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT employee_id, status FROM quest_progress WHERE quest_id = 1 ORDER BY employee_id")
        assert cur.fetchall() == ((1, "WAITING_APPROVAL"), (3, "APPROVED"))


def test_concurrent_decisions_decide_a_leave_once(containers, clean_database, mariadb):
    """Leave 2 (employee 1's, PENDING): half the managers approve it, half reject it, at once. Without the row
    lock every decider reads PENDING and every UPDATE lands: all answer 200 and the last write wins."""
    paths = [f"/api/leaves/2/{'approve' if i % 2 else 'reject'}" for i in range(WORKERS)]
    responses = fire(containers, "PUT", paths, role="manager")

    assert sorted(r.status for r in responses) == [200] + [400] * (WORKERS - 1)
    (winner,) = [r for r in responses if r.status == 200]
    assert winner.body["status"] in ("APPROVED", "REJECTED")
    assert {r.body["error"] for r in responses if r.status == 400} == {f"Leave is already {winner.body['status']}"}
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM leaves WHERE id = 2")
        assert cur.fetchone() == (winner.body["status"],)

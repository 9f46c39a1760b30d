"""Races the old service lost: concurrent deductions, claims and check-ins on the real server.

Each thread is its own "container": an independent copy of the app module (its own resolver,
Database and MySQL session), released together by a barrier so the requests overlap.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.handlers.conftest import call, load_app_copy

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

WORKERS = 12


@pytest.fixture(scope="module")
def containers(employee):
    return [load_app_copy(employee, f"race{i}") for i in range(WORKERS)]


def fire(containers, method: str, path: str, **options) -> list:
    """The same request from every container at (nearly) the same instant."""
    barrier = threading.Barrier(len(containers))

    def one(app_module):
        app_module.db.connection()  # log in before the race: the race is about the request
        barrier.wait()
        return call(app_module, method, path, **options)

    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        return list(pool.map(one, containers))


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


def test_concurrent_check_ins_count_every_one_and_reward_once(containers, clean_database, mariadb):
    # Employee 1 is at 29 check-ins: exactly one of these is the 30th.
    responses = fire(containers, "POST", "/api/attendance/check-in/1", role="owner")

    assert all(r.status == 200 for r in responses)
    assert sorted(r.body["attendanceCount"] for r in responses) == list(range(30, 30 + WORKERS))
    assert sum(r.body["rewardEarned"] for r in responses) == 1
    assert balance(mariadb, 1) == (6.0, 29 + WORKERS)


def test_concurrent_approvals_approve_one_progress_each(containers, clean_database, mariadb):
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        for employee_id in (1, 2, 3):
            cur.execute(
                "INSERT INTO quest_progress (quest_id, employee_id, status) VALUES (1, %s, 'WAITING_APPROVAL')",
                (employee_id,),
            )

    responses = fire(containers, "PUT", "/api/quests/1/approve", role="manager")

    assert sorted(r.status for r in responses) == [200] * 3 + [400] * (WORKERS - 3)
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, COUNT(*) FROM quest_progress WHERE quest_id = 1 GROUP BY status")
        assert dict(cur.fetchall()) == {"APPROVED": 3}

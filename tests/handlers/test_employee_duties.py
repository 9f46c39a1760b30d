"""Rules the Java service did not have: a verified identity to read, an administrator's link to a
legacy record, and separation of duties (no manager or admin acts on their own record, leave or
quest), plus the cap and audit trail on the in-cluster deduct-leave path.

The seed (conftest.SEED): employee 1 owner@example.com (STAFF, 5.0 days), employee 2
manager@example.com (MANAGER, 10.0 days, creator of quest 1), employee 3 without an email (legacy).
"""

import json

import pytest

from tests.handlers import conftest
from tests.handlers.conftest import MANAGER_EMAIL, OWNER_EMAIL

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ADMIN = ["erp/admin"]
MANAGER = ["erp/manager"]


@pytest.fixture
def caller(api):
    """caller(claims, scopes) -> request(method, path, ...) signed in with exactly those claims."""

    def make(claims: dict, scopes: list[str] | None = None):
        def request(method: str, path: str, **options):
            original = conftest.authorizer_for
            conftest.authorizer_for = lambda _role: {"jwt": {"claims": {"sub": "s", **claims}, "scopes": scopes}}
            try:
                return api(method, path, **options)
            finally:
                conftest.authorizer_for = original

        return request

    return make


def sql(mariadb, statement: str, args=None) -> list:
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return list(cur.fetchall())


def progress(mariadb, quest_id: int = 1) -> dict:
    return dict(sql(mariadb, "SELECT employee_id, status FROM quest_progress WHERE quest_id = %s", (quest_id,)))


def add_progress(mariadb, employee_id: int, status: str, quest_id: int = 1) -> None:
    sql(
        mariadb,
        "INSERT INTO quest_progress (quest_id, employee_id, status) VALUES (%s, %s, %s)",
        (quest_id, employee_id, status),
    )


def employee_row(api, employee_id: int) -> dict:
    return api("GET", f"/api/employees/{employee_id}").body


# --- identity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "expected"),
    [("3", 3), ("0042", 42), ("9223372036854775807", 2**63 - 1)]
    + [(bad, None) for bad in ("", "0", "-1", "+3", "1.5", "3a", " 3", "１", "²", "9223372036854775808", None)],
)
def test_the_linked_employee_id_claim_is_digits_only(employee, claim, expected):
    claims = {"sub": "s"} | ({"custom:employeeId": claim} if claim is not None else {})
    principal = employee.authz.principal_from({"requestContext": {"authorizer": {"jwt": {"claims": claims}}}})
    assert principal.employee_id == expected
    assert principal.is_verified is (expected is not None)


def test_an_unverified_account_may_not_even_read(api):
    for method, path in (("GET", "/api/employees"), ("GET", "/api/quests"), ("GET", "/api/employees/1")):
        response = api(method, path, role="unverified")
        assert response.status == 403
        assert response.body["error"] == response.body["message"]
        assert "open the link in your sign-up mail" in response.body["message"]
    assert api("GET", "/api/employees", role="anonymous").status == 401
    assert api("GET", "/api/employees/1", role="internal").status == 200


def test_a_linked_account_acts_as_its_legacy_record_only(api):
    assert api("GET", "/api/employees", role="linked").status == 200
    assert api("POST", "/api/attendance/check-in/3", role="linked").status == 200
    assert api("GET", "/api/employees/3").body["attendanceCount"] == 1
    assert api("POST", "/api/attendance/check-in/1", role="linked").status == 403
    assert api("PUT", "/api/employees/3", role="linked", json_body={"email": "park@example.com"}).status == 403


def test_journey_2_a_linked_user_claims_the_legacy_record_with_their_email(api, caller):
    park = caller({"email": "park@example.com", "custom:employeeId": "3"})
    body = {"name": "Park Legacy", "department": "SALES", "position": "STAFF", "email": "Park@Example.com"}

    response = park("PUT", "/api/employees/3", json_body=body)

    assert response.status == 200 and response.body["email"] == "park@example.com"
    # From now on the email alone makes the record theirs, as for anyone who signed up.
    assert caller({"email": "park@example.com"})("POST", "/api/attendance/check-in/3").status == 200
    # Sending the (now own) email again changes nothing and is fine.
    assert park("PUT", "/api/employees/3", json_body=body).status == 200


def test_claiming_a_record_needs_the_link_the_own_email_and_a_record_without_one(api, caller, mariadb):
    claim = {"name": "P", "department": "SALES", "position": "STAFF"}
    # No link: the email-less record is nobody's.
    assert caller({"email": "park@example.com"})("PUT", "/api/employees/3", json_body=claim).status == 403
    # Linked, but another address than the verified one.
    linked = caller({"email": "park@example.com", "custom:employeeId": "3"})
    assert linked("PUT", "/api/employees/3", json_body=claim | {"email": "boss@example.com"}).status == 403
    # Linked without a verified email: nothing to claim with.
    assert (
        caller({"custom:employeeId": "3"})("PUT", "/api/employees/3", json_body=claim | {"email": "x@y.z"}).status
        == 403
    )
    # Linked to a record that has an email already: changing it stays admin-only.
    other = caller({"email": "new@example.com", "custom:employeeId": "1"})
    assert other("PUT", "/api/employees/1", json_body={"email": "new@example.com"}).status == 403
    assert sql(mariadb, "SELECT id, email FROM employees ORDER BY id") == [
        (1, OWNER_EMAIL),
        (2, MANAGER_EMAIL),
        (3, None),
    ]


# --- records and balances -----------------------------------------------------------------


def test_no_manager_or_admin_adjusts_or_deletes_their_own_record(api, caller):
    refused = [
        api("PUT", "/api/employees/2/leave-balance", role="manager", json_body={"adjustment": 5}),
        api("DELETE", "/api/employees/2", role="manager"),
        caller({"email": OWNER_EMAIL}, ADMIN)("PUT", "/api/employees/1/leave-balance", json_body={"adjustment": 5}),
        caller({"email": OWNER_EMAIL}, ADMIN)("DELETE", "/api/employees/1"),
        caller({"custom:employeeId": "3"}, ADMIN)("DELETE", "/api/employees/3"),
    ]

    assert [r.status for r in refused] == [403] * 5
    assert all(r.body["error"] == r.body["message"] and "your own" in r.body["message"] for r in refused)
    assert [employee_row(api, i)["annualLeaveBalance"] for i in (1, 2, 3)] == [5.0, 10.0, None]
    # Another manager's record is theirs to manage, as before.
    assert api("PUT", "/api/employees/1/leave-balance", role="manager", json_body={"adjustment": 1}).status == 200


def test_deduct_leave_is_for_the_approval_service_and_admins_not_on_themselves(api, caller):
    days = {"days": 1}
    manager = api("POST", "/api/employees/1/deduct-leave", role="manager", json_body=days)
    assert manager.status == 403 and manager.body["message"]
    own = caller({"email": OWNER_EMAIL}, ADMIN)("POST", "/api/employees/1/deduct-leave", json_body=days)
    assert own.status == 403
    assert employee_row(api, 1)["annualLeaveBalance"] == 5.0

    assert api("POST", "/api/employees/1/deduct-leave", role="admin", json_body=days).body["remainingLeave"] == 4.0
    assert api("POST", "/api/employees/1/deduct-leave", role="internal", json_body=days).body["remainingLeave"] == 3.0


def test_internal_deductions_are_capped(api, employee, mariadb, monkeypatch):
    sql(mariadb, "UPDATE employees SET annual_leave_balance = 100 WHERE id = 1")
    deduct = "/api/employees/1/deduct-leave"

    over = api("POST", deduct, role="internal", json_body={"days": 25.5})
    assert over.status == 400 and over.body["field"] == "days" and "25" in over.body["message"]
    assert employee_row(api, 1)["annualLeaveBalance"] == 100.0
    assert api("POST", deduct, role="internal", json_body={"days": 25}).body["remainingLeave"] == 75.0
    # An admin is not capped: the cap bounds what one approval in another service can take.
    assert api("POST", deduct, role="admin", json_body={"days": 30}).body["remainingLeave"] == 45.0

    monkeypatch.setattr(employee.app, "MAX_LEAVE_DEDUCTION_DAYS", 2.0)
    assert api("POST", deduct, role="internal", json_body={"days": 3}).status == 400
    assert employee_row(api, 1)["annualLeaveBalance"] == 45.0


def test_the_cap_comes_from_the_environment(employee):
    parse = employee.app._max_deduction
    assert (parse(None), parse(""), parse("15"), parse("7.5")) == (25.0, 25.0, 15.0, 7.5)
    for bad in ("0", "-1", "inf", "nan", "many"):
        with pytest.raises(ValueError):
            parse(bad)


def test_internal_deductions_leave_an_audit_line_and_a_metric(api, employee, caplog, capsys):
    assert api("POST", "/api/employees/1/deduct-leave", role="internal", json_body={"days": 1.5}).status == 200
    assert api("POST", "/api/employees/1/deduct-leave", role="internal", json_body={"days": 9}).status == 400

    lines = [
        json.loads(employee.app.logger.registered_formatter.format(r))
        for r in caplog.records
        if r.getMessage().startswith("Internal leave deduction")
    ]
    assert [(line["level"], line["employee_id"], line["days"]) for line in lines] == [
        ("INFO", 1, 1.5),
        ("WARNING", 1, 9.0),
    ]
    assert lines[0]["remaining_leave"] == 3.5 and "Insufficient" in lines[1]["reason"]
    assert all(line["audit"] == "internal-leave-deduction" for line in lines)
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    published = [m for m in metrics if "InternalLeaveDeductions" in m]
    assert len(published) == 1 and published[0]["InternalLeaveDeductions"] == [1.0]


# --- quests -------------------------------------------------------------------------------

QUEST = {"title": "T", "rewardDays": 1, "department": "HR"}


def test_a_quest_is_created_as_the_caller(api, caller):
    assert api("POST", "/api/quests", role="manager", json_body=QUEST | {"createdBy": 1}).status == 403
    assert api("POST", "/api/quests", role="manager", json_body=QUEST | {"createdBy": 2}).status == 200
    assert api("POST", "/api/quests", role="manager", json_body=QUEST).status == 200
    no_record = api("POST", "/api/quests", role="admin", json_body=QUEST)
    assert no_record.status == 403 and no_record.body["field"] == "createdBy"
    assert api("POST", "/api/quests", role="admin", json_body=QUEST | {"createdBy": 1}).status == 200
    assert api("POST", "/api/quests", role="admin", json_body=QUEST | {"createdBy": 99}).status == 404
    linked_manager = caller({"custom:employeeId": "3"}, MANAGER)
    assert linked_manager("POST", "/api/quests", json_body=QUEST).status == 200

    assert [q["createdBy"] for q in api("GET", "/api/quests").body] == [2, 2, 2, 1, 3]


def test_nobody_takes_part_in_a_quest_they_created(api, mariadb):
    # Quest 1 was created by the manager (employee 2).
    accept = api("POST", "/api/quests/1/accept", role="manager", json_body={"employeeId": 2})
    assert accept.status == 403 and "you created" in accept.body["message"]
    add_progress(mariadb, 2, "IN_PROGRESS")
    assert api("POST", "/api/quests/1/complete", role="manager", json_body={"employeeId": 2}).status == 403
    sql(mariadb, "UPDATE quest_progress SET status = 'APPROVED' WHERE employee_id = 2")
    assert api("POST", "/api/quests/1/claim", role="manager", json_body={"employeeId": 2}).status == 403
    assert progress(mariadb) == {2: "APPROVED"}
    assert employee_row(api, 2)["annualLeaveBalance"] == 10.0
    # Anyone else takes part as before.
    assert api("POST", "/api/quests/1/accept", role="owner", json_body={"employeeId": 1}).status == 200


def test_approve_and_reject_decide_the_named_employees_progress(api, mariadb):
    add_progress(mariadb, 1, "WAITING_APPROVAL")
    add_progress(mariadb, 3, "WAITING_APPROVAL")

    assert (
        api("PUT", "/api/quests/1/approve", role="manager", json_body={"managerId": 2, "employeeId": 3}).status == 200
    )
    assert progress(mariadb) == {1: "WAITING_APPROVAL", 3: "APPROVED"}
    nothing = api("PUT", "/api/quests/1/reject", role="manager", json_body={"managerId": 2, "employeeId": 3})
    assert nothing.status == 400 and "employee 3" in nothing.body["message"]
    assert api("PUT", "/api/quests/1/approve", role="manager", json_body={"employeeId": 99}).status == 400
    assert api("PUT", "/api/quests/1/reject", role="manager", json_body={"employeeId": "1"}).status == 400
    assert api("PUT", "/api/quests/1/reject", role="manager", json_body={"managerId": 2, "employeeId": 1}).status == 200
    assert progress(mariadb) == {1: "REJECTED", 3: "APPROVED"}


def test_no_manager_decides_their_own_quest_progress(api, mariadb):
    add_progress(mariadb, 2, "WAITING_APPROVAL")
    add_progress(mariadb, 1, "WAITING_APPROVAL")

    for verb in ("approve", "reject"):
        named = api("PUT", f"/api/quests/1/{verb}", role="manager", json_body={"managerId": 2, "employeeId": 2})
        assert named.status == 403 and "your own" in named.body["message"]
        assert api("PUT", f"/api/quests/1/{verb}", role="manager").status == 403  # the first waiting is theirs
    assert progress(mariadb) == {2: "WAITING_APPROVAL", 1: "WAITING_APPROVAL"}
    assert api("PUT", "/api/quests/1/approve", role="admin", json_body={"employeeId": 2}).status == 200


# --- leaves -------------------------------------------------------------------------------


def test_no_manager_decides_their_own_leave(api, mariadb):
    leave = {"employeeId": 2, "startDate": "2026-12-01", "endDate": "2026-12-01", "days": 1}
    created = api("POST", "/api/leaves", role="manager", json_body=leave)
    assert created.status == 200

    for verb in ("approve", "reject"):
        response = api("PUT", f"/api/leaves/{created.body['id']}/{verb}", role="manager")
        assert response.status == 403 and "your own leave" in response.body["message"]
    assert sql(mariadb, "SELECT status FROM leaves WHERE id = %s", (created.body["id"],)) == [("PENDING",)]
    assert api("PUT", f"/api/leaves/{created.body['id']}/approve", role="admin").status == 200

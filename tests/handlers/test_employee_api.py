"""Every route of the employee service, end to end through the handler into MariaDB, over the
old (Hibernate) database after migration: shapes the frontend and the approval service read,
success codes, and the business rules of erp-services.md section 2."""

from datetime import datetime

import pytest

from tests.handlers.conftest import OWNER_EMAIL

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

EMPLOYEE_KEYS = {
    "id",
    "name",
    "email",
    "department",
    "position",
    "annualLeaveBalance",
    "attendanceCount",
    "createdAt",
}


# --- employees ----------------------------------------------------------------------------


def test_list_is_a_plain_array_of_the_old_rows_with_the_old_field_names(api):
    response = api("GET", "/api/employees", role="user")

    assert response.status == 200
    assert isinstance(response.body, list)
    assert [e["id"] for e in response.body] == [1, 2, 3]
    first = response.body[0]
    assert set(first) == EMPLOYEE_KEYS
    assert first == {
        "id": 1,
        "name": "Kim Minji",
        "email": OWNER_EMAIL,
        "department": "DEVELOPMENT",
        "position": "STAFF",
        "annualLeaveBalance": 5.0,
        "attendanceCount": 29,
        "createdAt": "2025-03-01T09:00:00.123456",
    }
    legacy = response.body[2]
    assert (legacy["email"], legacy["annualLeaveBalance"], legacy["attendanceCount"], legacy["createdAt"]) == (
        None,
        None,
        None,
        None,
    )


def test_list_filters_by_department_and_position(api):
    assert [e["id"] for e in api("GET", "/api/employees", query={"department": "DEVELOPMENT"}).body] == [1, 2]
    assert [e["id"] for e in api("GET", "/api/employees", query={"position": "MANAGER"}).body] == [2]
    assert api("GET", "/api/employees", query={"department": "SALES", "position": "MANAGER"}).body == []


def test_pagination_is_opt_in_and_keeps_the_array_shape(api):
    first = api("GET", "/api/employees", query={"limit": "2"})
    assert [e["id"] for e in first.body] == [1, 2]
    cursor = first.headers["X-Next-Cursor"]
    second = api("GET", "/api/employees", query={"limit": "2", "cursor": cursor})
    assert [e["id"] for e in second.body] == [3]
    assert "X-Next-Cursor" not in second.headers


def test_get_one_and_unknown_id(api):
    assert api("GET", "/api/employees/2").body["name"] == "Lee Manager"
    missing = api("GET", "/api/employees/99")
    assert missing.status == 404
    assert missing.body["error"] == missing.body["message"] == "Employee not found: 99"


def test_create_answers_200_with_the_new_employee_and_balance_zero(api):
    response = api(
        "POST",
        "/api/employees",
        role="admin",
        json_body={"name": "Choi", "department": "HR", "position": "STAFF", "email": "Choi@Example.com"},
    )

    assert response.status == 200
    assert response.body["id"] == 4
    assert (response.body["annualLeaveBalance"], response.body["attendanceCount"]) == (0.0, 0)
    assert response.body["email"] == "choi@example.com"
    assert api("GET", "/api/employees/4").body == response.body


def test_self_registration_takes_the_token_email(api):
    response = api(
        "POST", "/api/employees", role="user", json_body={"name": "New", "department": "HR", "position": "STAFF"}
    )
    assert response.status == 200
    assert response.body["email"] == "someone@example.com"
    again = api(
        "POST", "/api/employees", role="user", json_body={"name": "New", "department": "HR", "position": "STAFF"}
    )
    assert again.status == 409


@pytest.mark.parametrize("missing", ["name", "department", "position"])
def test_create_without_a_required_field_is_400(api, missing):
    body = {"name": "X", "department": "HR", "position": "STAFF"}
    del body[missing]
    response = api("POST", "/api/employees", role="admin", json_body=body)
    assert response.status == 400
    assert response.body["field"] == missing


def test_update_changes_department_and_position_only(api):
    response = api(
        "PUT",
        "/api/employees/1",
        role="owner",
        json_body={"department": "SALES", "position": "LEAD", "email": OWNER_EMAIL, "annualLeaveBalance": 99},
    )
    assert response.status == 200
    assert (response.body["department"], response.body["position"]) == ("SALES", "LEAD")
    assert response.body["annualLeaveBalance"] == 5.0


def test_update_unknown_is_404(api):
    assert api("PUT", "/api/employees/99", role="admin", json_body={"department": "X"}).status == 404


def test_delete_answers_204_then_404(api):
    response = api("DELETE", "/api/employees/3", role="manager")
    assert (response.status, response.body) == (204, None)
    assert api("GET", "/api/employees/3").status == 404
    assert api("DELETE", "/api/employees/3", role="manager").status == 404


def test_team_lists_a_department(api):
    response = api("GET", "/api/employees/team", query={"department": "DEVELOPMENT"})
    assert response.body == [
        {"id": 1, "name": "Kim Minji", "position": "STAFF", "leaveBalance": 5.0},
        {"id": 2, "name": "Lee Manager", "position": "MANAGER", "leaveBalance": 10.0},
    ]


def test_team_needs_a_department(api):
    response = api("GET", "/api/employees/team")
    assert response.status == 400
    assert response.body["field"] == "department"


def test_leave_balance_get_and_adjust(api):
    assert api("GET", "/api/employees/1/leave-balance").body == {"totalLeave": 5.0, "remainingLeave": 5.0}
    adjusted = api("PUT", "/api/employees/1/leave-balance", role="manager", json_body={"adjustment": 2.9})
    assert adjusted.status == 200
    assert adjusted.body["newBalance"] == 7.0  # int-truncated, added
    assert "message" in adjusted.body
    assert (
        api("PUT", "/api/employees/1/leave-balance", role="manager", json_body={"adjustment": -7}).body["newBalance"]
        == 0.0
    )
    below = api("PUT", "/api/employees/1/leave-balance", role="manager", json_body={"adjustment": -1})
    assert below.status == 400


def test_legacy_null_balance_reads_as_zero(api):
    assert api("GET", "/api/employees/3/leave-balance").body == {"totalLeave": 0.0, "remainingLeave": 0.0}
    adjusted = api("PUT", "/api/employees/3/leave-balance", role="manager", json_body={"adjustment": 3})
    assert adjusted.body["newBalance"] == 3.0


def test_deduct_leave(api):
    response = api("POST", "/api/employees/1/deduct-leave", role="internal", json_body={"days": 1.5})
    assert response.status == 200
    assert response.body["remainingLeave"] == 3.5
    assert "message" in response.body


def test_deduct_leave_short_balance_is_400_and_changes_nothing(api):
    response = api("POST", "/api/employees/1/deduct-leave", role="internal", json_body={"days": 6})
    assert response.status == 400
    assert response.body["error"] and response.body["message"]
    assert api("GET", "/api/employees/1").body["annualLeaveBalance"] == 5.0


@pytest.mark.parametrize("body", [{}, {"days": None}, {"days": "2"}, {"days": 0}, {"days": -3}, {"days": True}])
def test_deduct_leave_bad_days_is_400(api, body):
    assert api("POST", "/api/employees/1/deduct-leave", role="internal", json_body=body).status == 400


def test_deduct_leave_unknown_employee_is_404(api):
    assert api("POST", "/api/employees/99/deduct-leave", role="internal", json_body={"days": 1}).status == 404


# --- attendance ---------------------------------------------------------------------------


def at(employee, monkeypatch, utc: str) -> None:
    """Stop the handler's clock at a UTC instant (the repository's clock is naive UTC)."""
    monkeypatch.setattr(employee.repository, "now", lambda: datetime.fromisoformat(utc))


def test_check_in_30th_adds_a_day(api, employee, monkeypatch):
    at(employee, monkeypatch, "2026-03-02 00:30:00")  # Seoul 03-02 09:30; employee 1 is at 29
    response = api("POST", "/api/attendance/check-in/1", role="owner", body=None)
    assert response.status == 200
    assert response.body == {
        "attendanceCount": 30,
        "questProgress": 0,
        "rewardEarned": True,
        "currentLeaveBalance": 6.0,
    }
    at(employee, monkeypatch, "2026-03-02 15:00:00")  # Seoul 03-03 00:00: the next day
    again = api("POST", "/api/attendance/check-in/1", role="owner")
    assert again.body == {"attendanceCount": 31, "questProgress": 3, "rewardEarned": False, "currentLeaveBalance": 6.0}


def test_one_check_in_per_seoul_day(api, employee, monkeypatch):
    at(employee, monkeypatch, "2026-03-01 15:30:00")  # Seoul 03-02 00:30
    assert api("POST", "/api/attendance/check-in/1", role="owner").status == 200

    at(employee, monkeypatch, "2026-03-02 14:59:59")  # another UTC day, still Seoul 03-02 (23:59:59)
    second = api("POST", "/api/attendance/check-in/1", role="owner")
    assert second.status == 409
    assert second.body["error"] == second.body["message"] == "Already checked in today"
    assert (api("GET", "/api/employees/1").body["attendanceCount"], len(history(api))) == (30, 2)
    assert api("GET", "/api/employees/1").body["annualLeaveBalance"] == 6.0  # the 30th reward, once

    at(employee, monkeypatch, "2026-03-02 15:00:00")  # the same UTC day, but Seoul 03-03
    assert api("POST", "/api/attendance/check-in/1", role="owner").body["attendanceCount"] == 31
    assert [h["checkInTime"] for h in history(api)][:2] == ["2026-03-02T15:00:00", "2026-03-01T15:30:00"]


def test_check_ins_of_different_employees_on_one_day(api, employee, monkeypatch):
    at(employee, monkeypatch, "2026-03-05 01:00:00")
    assert api("POST", "/api/attendance/check-in/1", role="admin").status == 200
    assert api("POST", "/api/attendance/check-in/3", role="admin").status == 200


def history(api) -> list:
    return api("GET", "/api/attendance/history/1").body


def test_check_in_legacy_nulls_and_unknown(api):
    assert api("POST", "/api/attendance/check-in/3", role="admin").body["attendanceCount"] == 1
    assert api("POST", "/api/attendance/check-in/99", role="admin").status == 404


def test_progress_and_history(api):
    assert api("GET", "/api/attendance/progress/1").body == {
        "attendanceCount": 29,
        "targetCount": 30,
        "progress": 96,
        "nextRewardAt": 1,
    }
    assert api("GET", "/api/attendance/progress/99").status == 404
    api("POST", "/api/attendance/check-in/1", role="owner")
    history = api("GET", "/api/attendance/history/1").body
    assert len(history) == 2
    assert set(history[0]) == {"id", "employeeId", "checkInTime", "checkOutTime", "workHours", "status", "createdAt"}
    assert history[0]["status"] == "COMPLETED" and history[1]["checkInTime"] == "2025-03-05T08:55:00"
    assert api("GET", "/api/attendance/history/99").body == []


# --- quests -------------------------------------------------------------------------------


def test_quest_list_hides_deleted_and_carries_progress(api):
    quests = api("GET", "/api/quests").body
    assert [q["id"] for q in quests] == [1]
    assert quests[0] == {
        "id": 1,
        "title": "Fix login bug",
        "description": "SRP flow",
        "rewardDays": 1.5,
        "department": "DEVELOPMENT",
        "createdBy": 2,
        "createdByName": "Lee Manager",
        "status": "AVAILABLE",
        "progressList": [],
    }


def test_create_quest_and_lists(api):
    created = api(
        "POST",
        "/api/quests",
        role="manager",
        json_body={"title": "Docs", "description": "write", "rewardDays": 0.5, "department": "SALES", "createdBy": 2},
    )
    assert created.status == 200
    assert set(created.body) == {"id", "message"}
    assert [q["id"] for q in api("GET", "/api/quests/available", query={"employeeId": "3"}).body] == [
        created.body["id"]
    ]
    assert api("GET", "/api/quests/available", query={"employeeId": "1"}).body == [
        {"id": 1, "title": "Fix login bug", "description": "SRP flow", "rewardDays": 1.5, "status": "AVAILABLE"}
    ]
    default_creator = api(
        "POST", "/api/quests", role="manager", json_body={"title": "T", "rewardDays": 1, "department": "HR"}
    )
    assert default_creator.status == 200
    assert api("GET", "/api/quests").body[-1]["createdBy"] == 2  # the caller's own id (Java: always 1)


def test_quest_lifecycle_pays_once(api):
    body = {"employeeId": 1}
    assert api("POST", "/api/quests/1/accept", role="owner", json_body=body).status == 200
    assert api("POST", "/api/quests/1/accept", role="owner", json_body=body).status == 400  # no duplicate
    assert api("GET", "/api/quests/my-quests", query={"employeeId": "1"}).body[-1] == {
        "id": 2,
        "questId": 1,
        "title": "Fix login bug",
        "rewardDays": 1.5,
        "status": "IN_PROGRESS",
    }
    assert api("POST", "/api/quests/1/claim", role="owner", json_body=body).status == 400  # not approved
    assert api("PUT", "/api/quests/1/approve", role="manager").status == 400  # nothing waiting
    assert api("POST", "/api/quests/1/complete", role="owner", json_body=body).status == 200
    created = api("GET", "/api/quests/my-created", query={"managerId": "2"}).body
    assert created[0] == {
        "id": 1,
        "title": "Fix login bug",
        "acceptedBy": "Kim Minji",
        "status": "WAITING_APPROVAL",
        "rewardDays": 1.5,
    }
    assert api("PUT", "/api/quests/1/approve", role="manager", json_body={"managerId": 2}).status == 200
    claimed = api("POST", "/api/quests/1/claim", role="owner", json_body=body)
    assert claimed.status == 200
    assert claimed.body["newLeaveBalance"] == 6.5
    second = api("POST", "/api/quests/1/claim", role="owner", json_body=body)
    assert second.status == 400 and second.body["error"]
    assert api("GET", "/api/employees/1").body["annualLeaveBalance"] == 6.5


def test_quest_reject_and_unknown_progress(api):
    body = {"employeeId": 1}
    assert api("POST", "/api/quests/1/complete", role="owner", json_body=body).status == 404
    api("POST", "/api/quests/1/accept", role="owner", json_body=body)
    api("POST", "/api/quests/1/complete", role="owner", json_body=body)
    assert api("PUT", "/api/quests/1/reject", role="manager").status == 200
    assert api("GET", "/api/quests").body[0]["progressList"][0]["status"] == "REJECTED"


def test_delete_quest(api):
    assert api("DELETE", "/api/quests/1", role="manager").status == 200
    assert api("GET", "/api/quests").body == []
    assert api("DELETE", "/api/quests/99", role="manager").status == 404
    assert api("POST", "/api/quests/1/accept", role="owner", json_body={"employeeId": 1}).status == 404


def test_quest_queries_need_their_parameter(api):
    for path, name in (("available", "employeeId"), ("my-quests", "employeeId"), ("my-created", "managerId")):
        response = api("GET", f"/api/quests/{path}")
        assert response.status == 400
        assert response.body["field"] == name


# --- leaves -------------------------------------------------------------------------------

LEAVE = {"employeeId": 1, "startDate": "2026-12-01", "endDate": "2026-12-02", "days": 2, "reason": "rest"}


def test_create_and_list_leaves(api):
    created = api("POST", "/api/leaves", role="owner", json_body=LEAVE)
    assert created.status == 200
    assert {k: created.body[k] for k in LEAVE} == LEAVE
    assert created.body["status"] == "PENDING"
    assert set(created.body) == {"id", "employeeId", "startDate", "endDate", "days", "reason", "status", "createdAt"}
    listed = api("GET", "/api/leaves/1").body
    assert [leave["id"] for leave in listed] == [created.body["id"], 2, 1]  # newest first


@pytest.mark.parametrize("missing", ["employeeId", "startDate", "endDate", "days"])
def test_leave_missing_field_is_400(api, missing):
    body = {k: v for k, v in LEAVE.items() if k != missing}
    assert api("POST", "/api/leaves", role="owner", json_body=body).status == 400


def test_leave_approve_reject_and_balance(api):
    assert api("GET", "/api/leaves/balance/1").body == {"totalLeave": 5.0, "usedLeave": 2, "remainingLeave": 3.0}
    approved = api("PUT", "/api/leaves/2/approve", role="manager")
    assert approved.status == 200 and approved.body["status"] == "APPROVED"
    assert api("GET", "/api/leaves/balance/1").body["usedLeave"] == 3
    assert api("PUT", "/api/leaves/2/reject", role="manager").status == 400  # already decided
    assert api("PUT", "/api/leaves/99/approve", role="manager").status == 404
    assert api("GET", "/api/leaves/balance/99").status == 404
    # Approving a leave never lowers the balance: only deduct-leave does.
    assert api("GET", "/api/employees/1").body["annualLeaveBalance"] == 5.0


def test_unknown_route_is_404_json(api):
    response = api("GET", "/api/employees/1/nothing")
    assert response.status == 404
    assert response.body["error"] == response.body["message"]

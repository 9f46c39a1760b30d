"""Authorization matrix: every route x every kind of caller.

Roles (see conftest.authorizer_for): anonymous (no authorizer), unverified (signed in, never
opened the sign-up link: no email, no link), user (signed in, verified email of no employee),
owner (email of employee 1), linked (only custom:employeeId 3, the legacy record without email),
manager (group "manager", email of employee 2), admin (scope "erp/admin", no employee record),
internal (function URL, IAM). Every JWT carries custom:position MANAGER, which must grant
nothing. A refused call is 401 (anonymous) or 403, with a JSON error body; an allowed one may
still be 4xx for its own reasons (404, 409, ...), never 401/403.
"""

import pytest

from tests.handlers.conftest import ROLES

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

READERS = {"user", "owner", "linked", "manager", "admin"}  # a verified identity: not "unverified"
MANAGERS = {"manager", "admin"}
SELF = {"owner", "admin"}  # acting as employee 1
LINKED = {"linked", "admin"}  # acting as employee 3

EMP = {"name": "N", "department": "HR", "position": "STAFF"}
ONE = {"employeeId": 1}
LEAVE = {"employeeId": 1, "startDate": "2026-12-01", "endDate": "2026-12-01", "days": 1}
QUEST = {"title": "T", "rewardDays": 1, "department": "HR", "createdBy": 2}

# (method, path, query, body, roles allowed). Destructive calls target rows no later check needs.
MATRIX = [
    ("GET", "/api/employees", None, None, READERS),
    ("GET", "/api/employees/team", {"department": "DEVELOPMENT"}, None, READERS),
    ("GET", "/api/employees/1", None, None, READERS | {"internal"}),
    ("POST", "/api/employees", None, EMP, READERS - {"linked"}),  # a record needs the caller's email
    ("PUT", "/api/employees/1", None, {"position": "STAFF"}, SELF),
    ("GET", "/api/employees/1/leave-balance", None, None, READERS),
    ("PUT", "/api/employees/1/leave-balance", None, {"adjustment": 1}, MANAGERS),
    ("POST", "/api/employees/1/deduct-leave", None, {"days": 1}, {"admin", "internal"}),
    ("POST", "/api/attendance/check-in/1", None, None, SELF),
    ("GET", "/api/attendance/progress/1", None, None, READERS),
    ("GET", "/api/attendance/history/1", None, None, READERS),
    ("GET", "/api/quests", None, None, READERS),
    ("GET", "/api/quests/available", {"employeeId": "1"}, None, READERS),
    ("GET", "/api/quests/my-quests", {"employeeId": "1"}, None, READERS),
    ("GET", "/api/quests/my-created", {"managerId": "2"}, None, READERS),
    ("POST", "/api/quests", None, QUEST, MANAGERS),
    ("POST", "/api/quests/1/accept", None, ONE, SELF),
    ("POST", "/api/quests/1/complete", None, ONE, SELF),
    ("PUT", "/api/quests/1/approve", None, None, MANAGERS),
    ("POST", "/api/quests/1/claim", None, ONE, SELF),
    ("PUT", "/api/quests/1/reject", None, None, MANAGERS),
    ("POST", "/api/leaves", None, LEAVE, SELF),
    ("GET", "/api/leaves/1", None, None, READERS),
    ("GET", "/api/leaves/balance/1", None, None, READERS),
    ("PUT", "/api/leaves/2/approve", None, None, MANAGERS),
    ("PUT", "/api/leaves/2/reject", None, None, MANAGERS),
    ("DELETE", "/api/quests/1", None, None, MANAGERS),
    ("DELETE", "/api/employees/3", None, None, MANAGERS),
]
# Acting as the legacy record 3 through an administrator's link; run before the deletions above.
AS_LINKED = [
    ("PUT", "/api/employees/3", None, {"position": "STAFF"}, LINKED),
    ("POST", "/api/attendance/check-in/3", None, None, LINKED),
    ("POST", "/api/quests/1/accept", None, {"employeeId": 3}, LINKED),
    ("POST", "/api/leaves", None, LEAVE | {"employeeId": 3}, LINKED),
]
ROWS = MATRIX[:-2] + AS_LINKED + MATRIX[-2:]


def test_matrix_covers_every_route(employee):
    resolver = employee.app.app
    registered = {(route.method, route.path) for route in resolver._static_routes + resolver._dynamic_routes}
    assert len(registered) == len(MATRIX) == 28, sorted(registered)


@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(api, role):
    wrong = []
    for method, path, query, body, allowed in ROWS:
        response = api(method, path, role=role, query=query, json_body=body)
        if role in allowed:
            ok = response.status not in (401, 403)
        else:
            ok = response.status == (401 if role == "anonymous" else 403) and response.body["error"]
        if not ok:
            wrong.append((method, path, response.status, response.body))
    assert wrong == []


def claims_event_role(api, claims: dict, scopes=None, **kwargs):
    """Call with hand-made claims (the roles above cover the usual ones)."""
    from tests.handlers import conftest

    original = conftest.authorizer_for
    conftest.authorizer_for = lambda role: {"jwt": {"claims": {"sub": "x", **claims}, "scopes": scopes}}
    try:
        return api(**kwargs)
    finally:
        conftest.authorizer_for = original


def test_custom_position_manager_grants_nothing(api):
    response = claims_event_role(
        api,
        {"email": "boss@example.com", "custom:position": "MANAGER", "custom:department": "HR"},
        method="DELETE",
        path="/api/employees/3",
    )
    assert response.status == 403


def test_groups_claim_in_the_authorizers_string_form(api):
    response = claims_event_role(
        api,
        {"email": "hr@example.com", "cognito:groups": "[staff hr-admins]"},
        method="PUT",
        path="/api/leaves/2/approve",
    )
    assert response.status == 200  # hr-admins is an admin group in this test's config


def test_manager_scope_without_groups_claim(api):
    response = claims_event_role(
        api, {"email": "lead@example.com"}, scopes=["erp/manager"], method="PUT", path="/api/leaves/2/approve"
    )
    assert response.status == 200


def test_a_group_without_a_verified_identity_grants_nothing(api):
    """A token of an account that never opened its sign-up link reaches nothing, whatever its groups."""
    response = claims_event_role(api, {"cognito:groups": "[admin]"}, method="GET", path="/api/employees")
    assert response.status == 403
    assert "link in your sign-up mail" in response.body["message"]


def test_unverified_email_does_not_make_an_owner(api):
    response = claims_event_role(
        api,
        {"email": "owner@example.com", "email_verified": "false"},
        method="POST",
        path="/api/attendance/check-in/1",
    )
    assert response.status == 403


def test_user_without_email_cannot_create_a_record(api):
    response = claims_event_role(api, {}, method="POST", path="/api/employees", json_body=EMP)
    assert response.status == 403


def test_user_cannot_create_a_record_for_another_email(api):
    body = EMP | {"email": "victim@example.com"}
    assert api("POST", "/api/employees", role="user", json_body=body).status == 403


def test_owner_cannot_change_their_email_nor_act_for_others(api):
    assert api("PUT", "/api/employees/1", role="owner", json_body={"email": "new@example.com"}).status == 403
    assert api("PUT", "/api/employees/2", role="owner", json_body={"position": "X"}).status == 403
    assert api("POST", "/api/quests/1/accept", role="owner", json_body={"employeeId": 2}).status == 403
    assert api("POST", "/api/leaves", role="owner", json_body=LEAVE | {"employeeId": 2}).status == 403


def test_email_less_legacy_record_is_only_for_admins(api):
    assert api("PUT", "/api/employees/3", role="user", json_body={"position": "X"}).status == 403
    assert api("PUT", "/api/employees/3", role="admin", json_body={"email": "park@example.com"}).status == 200


def test_function_url_event_from_the_in_cluster_proxy(employee, clean_database, new_container):
    """The shape a Lambda function URL (AWS_IAM auth) delivers: routeKey $default, authorizer.iam only."""
    import json

    from tests.handlers.conftest import lambda_context

    new_container()

    def url_event(method: str, path: str, body: str | None = None) -> dict:
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json", "host": "abc.lambda-url.ap-northeast-2.on.aws"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc",
                "authorizer": {
                    "iam": {
                        "accessKeyId": "ASIA0000",
                        "accountId": "123456789012",
                        "callerId": "AROA0000:proxy",
                        "userArn": "arn:aws:sts::123456789012:assumed-role/erp-employee-proxy/x",
                        "userId": "AROA0000:proxy",
                    }
                },
                "domainName": "abc.lambda-url.ap-northeast-2.on.aws",
                "domainPrefix": "abc",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "10.0.1.5"},
                "requestId": "r",
                "routeKey": "$default",
                "stage": "$default",
                "time": "29/Nov/2026:19:00:00 +0000",
                "timeEpoch": 1795979000000,
            },
            "isBase64Encoded": False,
        }
        if body is not None:
            event["body"] = body
        result = employee.app.handler(event, lambda_context())
        return result["statusCode"], json.loads(result["body"]) if result.get("body") else None

    status, body = url_event("GET", "/api/employees/1")
    assert status == 200 and body["annualLeaveBalance"] == 5.0
    status, body = url_event("POST", "/api/employees/1/deduct-leave", '{"days": 2}')
    assert status == 200 and body["remainingLeave"] == 3.0
    assert url_event("GET", "/api/employees")[0] == 403
    assert url_event("DELETE", "/api/employees/1")[0] == 403
    assert url_event("PUT", "/api/employees/1/leave-balance", '{"adjustment": 5}')[0] == 403

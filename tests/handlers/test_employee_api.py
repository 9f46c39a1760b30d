"""HTTP behaviour of the employee service, end to end through the Lambda handler into MariaDB."""

import base64
import json
import re

import pytest

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
INJECTION = "Robert'); DROP TABLE employees;--"

# Reads publish no metrics by design.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


# --- happy paths -------------------------------------------------------------------------


def test_create_returns_201_with_body_and_location(api):
    response = api(
        "POST",
        "/api/employees",
        json_body={"email": " Kim.Minji@Example.COM ", "name": "Kim Minji", "department": "Finance"},
    )

    assert response.status == 201
    employee = response.body
    assert employee["email"] == "kim.minji@example.com"
    assert (employee["name"], employee["department"], employee["title"]) == ("Kim Minji", "Finance", None)
    assert isinstance(employee["id"], int)
    assert ISO_UTC.fullmatch(employee["created_at"]) and ISO_UTC.fullmatch(employee["updated_at"])
    assert response.headers["Location"] == f"/api/employees/{employee['id']}"
    assert response.headers["Content-Type"] == "application/json"


def test_get_returns_the_created_employee(api, make_employee):
    created = make_employee(name="이서연", title="회계 팀장")

    response = api("GET", f"/api/employees/{created['id']}")

    assert response.status == 200
    assert response.body == created


def test_base64_encoded_body_is_decoded(api):
    payload = {"email": "b64@example.com", "name": "Park Jisoo", "department": "HR"}

    response = api("POST", "/api/employees", json_body=payload, base64_body=True)

    assert response.status == 201
    assert response.body["name"] == "Park Jisoo"


def test_list_of_empty_table(api):
    response = api("GET", "/api/employees")

    assert response.status == 200
    assert response.body == {"items": [], "next_cursor": None}


def test_list_pages_through_everything_once(api, make_employee):
    created_ids = [make_employee()["id"] for _ in range(7)]

    seen, pages, cursor = [], [], None
    while True:
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        response = api("GET", "/api/employees", query=query)
        assert response.status == 200
        pages.append(len(response.body["items"]))
        seen += [item["id"] for item in response.body["items"]]
        cursor = response.body["next_cursor"]
        if cursor is None:
            break

    assert pages == [3, 3, 1]
    assert seen == created_ids


def test_list_has_no_empty_trailing_page(api, make_employee):
    for _ in range(4):
        make_employee()

    first = api("GET", "/api/employees", query={"limit": "2"}).body
    second = api("GET", "/api/employees", query={"limit": "2", "cursor": first["next_cursor"]}).body

    assert len(second["items"]) == 2
    assert second["next_cursor"] is None


def test_list_default_limit_is_20(api, make_employee):
    for _ in range(21):
        make_employee()

    body = api("GET", "/api/employees").body

    assert len(body["items"]) == 20
    assert body["next_cursor"] is not None


def test_put_replaces_every_field(api, make_employee):
    created = make_employee(title="Accountant")

    response = api(
        "PUT",
        f"/api/employees/{created['id']}",
        json_body={"email": "NEW@example.com", "name": "Lee Jiwoo", "department": "Sales"},
    )

    assert response.status == 200
    assert response.body["email"] == "new@example.com"
    assert (response.body["name"], response.body["department"]) == ("Lee Jiwoo", "Sales")
    assert response.body["title"] is None  # omitted in a full replace
    assert response.body["created_at"] == created["created_at"]
    assert response.body["updated_at"] >= created["updated_at"]
    assert api("GET", f"/api/employees/{created['id']}").body == response.body


def test_put_with_unchanged_values_succeeds(api, make_employee):
    created = make_employee()
    fields = {k: created[k] for k in ("email", "name", "department", "title")}

    assert api("PUT", f"/api/employees/{created['id']}", json_body=fields).status == 200


def test_patch_changes_only_the_given_fields(api, make_employee):
    created = make_employee(title="Accountant")

    response = api("PATCH", f"/api/employees/{created['id']}", json_body={"department": "Audit"})

    assert response.status == 200
    assert response.body["department"] == "Audit"
    assert {k: response.body[k] for k in ("email", "name", "title")} == {
        k: created[k] for k in ("email", "name", "title")
    }


def test_patch_null_clears_the_optional_title(api, make_employee):
    created = make_employee(title="Accountant")

    response = api("PATCH", f"/api/employees/{created['id']}", json_body={"title": None})

    assert response.status == 200
    assert response.body["title"] is None


def test_delete_then_get_is_404(api, make_employee):
    created = make_employee()

    response = api("DELETE", f"/api/employees/{created['id']}")

    assert response.status == 204
    assert response.body is None
    assert api("GET", f"/api/employees/{created['id']}").status == 404
    assert api("DELETE", f"/api/employees/{created['id']}").status == 404


def test_mutations_emit_metrics(api, make_employee, capsys):
    employee_id = make_employee()["id"]
    api("PATCH", f"/api/employees/{employee_id}", json_body={"name": "Renamed"})
    api("DELETE", f"/api/employees/{employee_id}")

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    emitted = {
        metric["Name"]: blob[metric["Name"]]
        for blob in blobs
        for directive in blob["_aws"]["CloudWatchMetrics"]
        if directive["Namespace"] == "ERP"
        for metric in directive["Metrics"]
    }
    assert emitted["EmployeesCreated"] == [1.0]
    assert emitted["EmployeesUpdated"] == [1.0]
    assert emitted["EmployeesDeleted"] == [1.0]


# --- validation: 400 naming the field ------------------------------------------------------

VALID = {"email": "valid@example.com", "name": "Kim Minji", "department": "Finance", "title": "Clerk"}


def _without(field):
    return {k: v for k, v in VALID.items() if k != field}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_without("email"), "email"),
        (_without("name"), "name"),
        (_without("department"), "department"),
        (VALID | {"name": ""}, "name"),
        (VALID | {"name": "   "}, "name"),
        (VALID | {"name": "x" * 101}, "name"),
        (VALID | {"name": None}, "name"),
        (VALID | {"name": 123}, "name"),
        (VALID | {"department": ""}, "department"),
        (VALID | {"department": "x" * 101}, "department"),
        (VALID | {"department": ["Finance"]}, "department"),
        (VALID | {"title": "x" * 101}, "title"),
        (VALID | {"title": 5}, "title"),
        (VALID | {"email": "not-an-email"}, "email"),
        (VALID | {"email": "two@@example.com"}, "email"),
        (VALID | {"email": "no-domain-dot@example"}, "email"),
        (VALID | {"email": "spaces in@example.com"}, "email"),
        (VALID | {"email": ""}, "email"),
        (VALID | {"email": True}, "email"),
        (VALID | {"email": "a" * 250 + "@example.com"}, "email"),
        (VALID | {"salary": 1000}, "salary"),
        (VALID | {"id": 7}, "id"),
        (VALID | {"created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_create_rejects_invalid_field(api, payload, field):
    response = api("POST", "/api/employees", json_body=payload)

    assert response.status == 400
    assert response.body["field"] == field
    assert response.body["message"]


def test_boundary_lengths_are_accepted(api):
    payload = {"email": "edge@example.com", "name": "n" * 100, "department": "d" * 100, "title": "t" * 100}

    response = api("POST", "/api/employees", json_body=payload)

    assert response.status == 201
    assert response.body["name"] == "n" * 100


def test_put_requires_every_required_field(api, make_employee):
    employee_id = make_employee()["id"]

    response = api("PUT", f"/api/employees/{employee_id}", json_body={"name": "Only Name"})

    assert response.status == 400
    assert response.body["field"] == "email"


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"nickname": "Minji"}, "nickname"), ({"name": None}, "name"), ({"email": "bad"}, "email"), ({"id": 1}, "id")],
)
def test_patch_rejects_invalid_field(api, make_employee, payload, field):
    employee_id = make_employee()["id"]

    response = api("PATCH", f"/api/employees/{employee_id}", json_body=payload)

    assert response.status == 400
    assert response.body["field"] == field


def test_patch_with_no_fields_is_rejected(api, make_employee):
    employee_id = make_employee()["id"]

    response = api("PATCH", f"/api/employees/{employee_id}", json_body={})

    assert response.status == 400
    assert "field" not in response.body


@pytest.mark.parametrize(
    ("body", "base64_body"),
    [
        ("{not json", False),
        ("", False),
        ('{"email": "a@example.com",}', False),
        (b"\xff\xfe{}", True),  # not UTF-8
    ],
)
def test_malformed_body_is_400(api, body, base64_body):
    response = api("POST", "/api/employees", body=body, base64_body=base64_body)

    assert response.status == 400
    assert response.body["message"]


def test_invalid_base64_body_is_400(api):
    response = api("POST", "/api/employees", body="%%%not base64%%%", event_overrides={"isBase64Encoded": True})

    assert response.status == 400
    assert response.body["message"] == "Request body is not valid base64"


@pytest.mark.parametrize("body", ["[]", '[{"email": "a@example.com"}]', '"text"', "42", "null"])
def test_non_object_json_is_400(api, body):
    response = api("POST", "/api/employees", body=body)

    assert response.status == 400
    assert response.body["message"] == "Request body must be a JSON object"


# --- 409 / 413 / 404 ----------------------------------------------------------------------


def test_duplicate_email_is_409(api, make_employee):
    make_employee(email="dup@example.com")

    response = api("POST", "/api/employees", json_body=VALID | {"email": "dup@example.com"})

    assert response.status == 409
    assert response.body["field"] == "email"


def test_duplicate_email_is_case_insensitive(api, make_employee):
    make_employee(email="case@example.com")

    response = api("POST", "/api/employees", json_body=VALID | {"email": "CASE@Example.Com"})

    assert response.status == 409


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_to_anothers_email_is_409(api, make_employee, method):
    make_employee(email="taken@example.com")
    mine = make_employee()
    payload = {"email": "Taken@example.com"} | (
        {"name": mine["name"], "department": mine["department"]} if method == "PUT" else {}
    )

    response = api(method, f"/api/employees/{mine['id']}", json_body=payload)

    assert response.status == 409
    assert response.body["field"] == "email"
    assert api("GET", f"/api/employees/{mine['id']}").body["email"] == mine["email"]


def test_body_over_the_limit_is_413(api):
    limit = 16 * 1024
    padding = "x" * (limit - len(json.dumps(VALID | {"title": ""})))
    at_limit = json.dumps(VALID | {"title": padding})
    assert len(at_limit.encode()) == limit

    assert api("POST", "/api/employees", body=at_limit).status == 400  # read, then title too long
    assert api("POST", "/api/employees", body=at_limit + " ").status == 413
    assert api("POST", "/api/employees", body=at_limit + " ", base64_body=True).status == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, method):
    body = VALID if method in {"PUT", "PATCH"} else None

    response = api(method, "/api/employees/999999", json_body=body)

    assert response.status == 404
    assert response.body == {"message": "Employee not found", "field": "id"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/departments"),
        ("GET", "/api/employees/1/manager"),
        ("GET", "/api/employees/"),
        ("POST", "/api/employees/1"),  # the resolver has no 405: an unrouted method is a 404
    ],
)
def test_unknown_route_is_404(api, method, path):
    response = api(method, path)

    assert response.status == 404
    assert response.body == {"message": "Route not found"}


# --- query parameters and ids -------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "", "1.5", "10 ", "1,2", "0020x"])
def test_bad_limit_is_400(api, limit):
    response = api("GET", "/api/employees", query={"limit": limit})

    assert response.status == 400
    assert response.body["field"] == "limit"


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_bounds_are_accepted(api, limit):
    assert api("GET", "/api/employees", query={"limit": limit}).status == 200


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        INJECTION,
        "한글",
        _cursor({"after": "1 OR 1=1"}),
        _cursor({"after": -1}),
        _cursor({"after": True}),
        _cursor({"before": 1}),
        _cursor([1]),
        _cursor(5),
    ],
)
def test_bad_cursor_is_400(api, cursor):
    response = api("GET", "/api/employees", query={"cursor": cursor})

    assert response.status == 400
    assert response.body["field"] == "cursor"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("employee_id", ["abc", "1.5", "-1", "1e3", "1 OR 1=1", INJECTION, "1" * 20, "١"])
def test_non_integer_id_is_400(api, method, employee_id):
    body = VALID if method in {"PUT", "PATCH"} else None

    response = api(method, f"/api/employees/{employee_id}", json_body=body)

    assert response.status == 400
    assert response.body["field"] == "id"


# --- SQL injection ------------------------------------------------------------------------


def test_injection_strings_are_stored_verbatim(api, make_employee, mariadb):
    tricky_title = "\\'; DELETE FROM employees; -- %s %(name)s \" `"
    created = make_employee(name=INJECTION, department="x' OR '1'='1", title=tricky_title, email="o'brien@example.com")

    fetched = api("GET", f"/api/employees/{created['id']}").body

    assert fetched["name"] == INJECTION
    assert fetched["department"] == "x' OR '1'='1"
    assert fetched["title"] == tricky_title
    assert fetched["email"] == "o'brien@example.com"
    patched = api("PATCH", f"/api/employees/{created['id']}", json_body={"name": INJECTION + " again"}).body
    assert patched["name"] == INJECTION + " again"
    assert api("GET", "/api/employees", query={"cursor": INJECTION}).status == 400
    assert api("DELETE", f"/api/employees/{INJECTION}").status == 400
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM employees")
        assert cur.fetchone() == (1,)

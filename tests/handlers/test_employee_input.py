"""Hostile and malformed input: each is a 4xx with a JSON body naming the problem, never a 500."""

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

CREATE = "/api/employees"
DEDUCT = "/api/employees/1/deduct-leave"


def assert_client_error(response, status: int = 400, contains: str = "") -> None:
    assert response.status == status, response.body
    assert response.body["error"] == response.body["message"]
    assert contains.lower() in response.body["message"].lower()


def test_lone_surrogate_escaped_in_json(api):
    body = '{"name": "\\ud800", "department": "HR", "position": "STAFF"}'
    assert_client_error(api("POST", CREATE, body=body), contains="surrogate")


def test_lone_surrogate_in_the_raw_body(api):
    body = '{"name": "\ud800", "department": "HR", "position": "STAFF"}'  # not encodable as UTF-8
    assert_client_error(api("POST", CREATE, body=body), contains="UTF-8")


def test_invalid_utf8_bytes_base64_encoded(api):
    assert_client_error(api("POST", CREATE, body=b'{"name": "\xff"}', base64_body=True), contains="UTF-8")


def test_json_nested_thousands_deep(api):
    body = '{"name": ' + "[" * 5000 + "]" * 5000 + "}"
    assert_client_error(api("POST", CREATE, body=body), contains="nested")


def test_moderately_deep_json_is_refused_too(api):
    body = '{"days": 1, "x": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}"
    assert_client_error(api("POST", DEDUCT, role="internal", body=body), contains="nested")


def test_nul_byte_in_a_string(api):
    body = '{"name": "Kim\\u0000", "department": "HR", "position": "STAFF"}'
    assert_client_error(api("POST", CREATE, body=body), contains="NUL")


def test_nul_byte_in_a_query_parameter(api):
    assert_client_error(api("GET", "/api/employees/team", query={"department": "HR\x00"}), contains="department")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "", "application/xml"])
def test_non_json_content_type(api, content_type):
    response = api("POST", CREATE, json_body={"name": "a"}, headers={"content-type": content_type})
    assert_client_error(response, 415, "Content-Type")


def test_json_with_a_charset_parameter_is_fine(api):
    response = api(
        "POST",
        DEDUCT,
        role="internal",
        json_body={"days": 1},
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status == 200


@pytest.mark.parametrize("number", ["9223372036854775808", "-9223372036854775809", "1" * 400])
def test_integers_past_64_bits(api, number):
    body = f'{{"employeeId": {number}, "startDate": "2026-01-01", "endDate": "2026-01-01", "days": 1}}'
    assert_client_error(api("POST", "/api/leaves", body=body), contains="range")


@pytest.mark.parametrize("number", ["1e400", "-1e999"])
def test_floats_past_double(api, number):
    assert_client_error(api("POST", DEDUCT, role="internal", body=f'{{"days": {number}}}'), contains="range")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants(api, constant):
    assert_client_error(api("POST", DEDUCT, role="internal", body=f'{{"days": {constant}}}'))


@pytest.mark.parametrize(
    "path",
    [
        "/api/employees/007",
        "/api/employees/-1",
        "/api/employees/0",
        "/api/employees/1e3",
        "/api/employees/99999999999999999999",
        "/api/employees/9223372036854775808",
        "/api/employees/%31",
        "/api/employees/１",
    ],
)
def test_ids_that_are_not_canonical_positive_integers(api, path):
    assert_client_error(api("GET", path), contains="positive integer")


def test_query_id_with_leading_zero(api):
    assert_client_error(api("GET", "/api/quests/available", query={"employeeId": "007"}), contains="employeeId")


def test_body_id_must_be_a_json_integer(api):
    for value in ('"1"', "1.0", "true", "-1", "0", "[1]"):
        response = api("POST", "/api/quests/1/accept", role="admin", body=f'{{"employeeId": {value}}}')
        assert_client_error(response, contains="employeeId")


def test_duplicate_keys(api):
    body = '{"days": 1, "days": 100}'
    assert_client_error(api("POST", DEDUCT, role="internal", body=body), contains="Duplicate key")


def test_body_that_is_not_an_object(api):
    for body in ("[]", '"x"', "1", "null"):
        assert_client_error(api("POST", DEDUCT, role="internal", body=body), contains="object")


def test_empty_and_broken_bodies(api):
    assert_client_error(api("POST", DEDUCT, role="internal", body=""), contains="JSON")
    assert_client_error(api("POST", DEDUCT, role="internal", body='{"days": 1'), contains="JSON")
    assert_client_error(api("POST", DEDUCT, role="internal", body="not base64!", base64_body=False), contains="JSON")


def test_oversized_body(api):
    body = '{"name": "' + "x" * 20000 + '"}'
    assert_client_error(api("POST", CREATE, body=body), 413, "exceeds")


def test_wrong_types_and_overlong_strings(api):
    assert_client_error(
        api("POST", CREATE, json_body={"name": 1, "department": "HR", "position": "S"}), contains="name"
    )
    assert_client_error(
        api("POST", CREATE, json_body={"name": "x" * 101, "department": "HR", "position": "S"}), contains="name"
    )
    assert_client_error(
        api("POST", CREATE, json_body={"name": " ", "department": "HR", "position": "S"}), contains="blank"
    )


def test_bad_dates(api):
    base = {"employeeId": 1, "days": 1}
    for start in ("2026-02-30", "2026/01/01", "tomorrow", "2026-1-1", None):
        response = api("POST", "/api/leaves", json_body=base | {"startDate": start, "endDate": "2026-03-01"})
        assert_client_error(response, contains="startDate")
    backwards = api("POST", "/api/leaves", json_body=base | {"startDate": "2026-03-02", "endDate": "2026-03-01"})
    assert_client_error(backwards, contains="endDate")


def test_bad_pagination(api):
    for query in ({"limit": "0"}, {"limit": "101"}, {"limit": "01"}, {"limit": "1", "cursor": "@@@"}):
        assert api("GET", "/api/employees", query=query).status == 400


def test_sql_metacharacters_are_just_data(api):
    name = "Robert'); DROP TABLE employees;--"
    created = api("POST", CREATE, json_body={"name": name, "department": "HR", "position": "S"})
    assert created.status == 200 and created.body["name"] == name
    assert api("GET", "/api/employees").status == 200

"""The pre-token-generation (V2) trigger: for a verified address only, the verified-identity scope, group
scopes and the email claim in ACCESS tokens; the admin-set employee link always.

Shared contract: every gateway route needs f"{project}/verified" or a f"{project}/{group}" scope, and the
employee Lambda trusts `email` only because this trigger adds it for verified addresses.
"""

import copy
import importlib.util
from pathlib import Path

import pytest

HANDLER = Path(__file__).resolve().parents[2] / "lambda_handlers" / "pretoken" / "app.py"


def load(monkeypatch, project="erp", name="pretoken_app"):
    monkeypatch.setenv("PROJECT", project)
    spec = importlib.util.spec_from_file_location(name, HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pretoken(monkeypatch):
    return load(monkeypatch)


def token_event(groups=(), email="kim@example.com", verified="true", trigger="TokenGeneration_HostedAuth") -> dict:
    """A version-2 event as Cognito sends it (shape from the Cognito developer guide)."""
    attributes = {"sub": "3f0a2b1c-7d4e-4f5a-9b8c-1d2e3f4a5b6c", "cognito:user_status": "CONFIRMED"}
    if email is not None:
        attributes["email"] = email
    if verified is not None:
        attributes["email_verified"] = verified
    return {
        "version": "2",
        "triggerSource": trigger,
        "region": "ap-northeast-2",
        "userPoolId": "ap-northeast-2_Example",
        "userName": attributes["sub"],
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client"},
        "request": {
            "userAttributes": attributes,
            "groupConfiguration": {"groupsToOverride": list(groups), "iamRolesToOverride": [], "preferredRole": None},
            "scopes": ["openid", "email", "profile"],
        },
        "response": {"claimsAndScopeOverrideDetails": None},
    }


def access(module, event) -> dict:
    return module.handler(copy.deepcopy(event), None)["response"]["claimsAndScopeOverrideDetails"][
        "accessTokenGeneration"
    ]


def test_every_group_of_a_verified_user_becomes_a_project_scope(pretoken):
    result = access(pretoken, token_event(groups=["manager", "admin", "auditors"]))
    assert result["scopesToAdd"] == ["erp/verified", "erp/admin", "erp/auditors", "erp/manager"]


def test_project_comes_from_the_environment(monkeypatch):
    module = load(monkeypatch, project="acme", name="pretoken_acme")
    assert access(module, token_event(groups=["admin"]))["scopesToAdd"] == ["acme/verified", "acme/admin"]


@pytest.mark.parametrize("groups", [[], None, "admin", [None, 3, "", "bad group"], ["verified"]])
def test_no_or_malformed_groups_add_no_group_scope(pretoken, groups):
    event = token_event()
    event["request"]["groupConfiguration"]["groupsToOverride"] = groups
    assert access(pretoken, event)["scopesToAdd"] == ["erp/verified"]


def test_a_self_registered_user_has_no_privilege_scope(pretoken):
    """Sign-up never puts anyone in a group, so a fresh account's token carries only the identity scope."""
    assert access(pretoken, token_event(groups=[]))["scopesToAdd"] == ["erp/verified"]


@pytest.mark.parametrize("verified", ["false", None, "True", "1"])
def test_an_unproved_address_gets_no_scope_at_all_not_even_its_groups(pretoken, verified):
    """Every gateway route needs erp/verified (or a group scope): this token reaches nothing."""
    assert access(pretoken, token_event(groups=["admin", "manager"], verified=verified))["scopesToAdd"] == []


def test_the_admin_set_employee_link_becomes_a_claim(pretoken):
    event = token_event()
    event["request"]["userAttributes"]["custom:employeeId"] = "42"
    assert access(pretoken, event)["claimsToAddOrOverride"] == {"email": "kim@example.com", "custom:employeeId": "42"}


@pytest.mark.parametrize("value", ["", "0", "-3", "4.5", "42 ", "٤٢", None])
def test_a_malformed_employee_link_is_not_claimed(pretoken, value):
    event = token_event()
    event["request"]["userAttributes"]["custom:employeeId"] = value
    assert "custom:employeeId" not in access(pretoken, event)["claimsToAddOrOverride"]


def test_verified_email_is_added_as_a_claim(pretoken):
    result = access(pretoken, token_event(email="kim@example.com", verified="true"))
    assert result["claimsToAddOrOverride"] == {"email": "kim@example.com"}
    assert "email" not in result["claimsToSuppress"]


@pytest.mark.parametrize("verified", ["false", None, "True", True, "1", ""])
def test_unverified_email_is_never_claimed(pretoken, verified):
    result = access(pretoken, token_event(email="ceo@example.com", verified=verified))
    assert "email" not in result["claimsToAddOrOverride"]
    assert result["claimsToSuppress"] == ["email"]


def test_verified_flag_without_a_usable_email_adds_nothing(pretoken):
    for email in (None, "", "not-an-address", 42):
        event = token_event(email="x@example.com")
        event["request"]["userAttributes"]["email"] = email
        assert "email" not in access(pretoken, event)["claimsToAddOrOverride"]


@pytest.mark.parametrize(
    "trigger",
    [
        "TokenGeneration_HostedAuth",
        "TokenGeneration_Authentication",
        "TokenGeneration_NewPasswordChallenge",
        "TokenGeneration_AuthenticateDevice",
        "TokenGeneration_RefreshTokens",
    ],
)
def test_every_token_source_gets_the_same_rules(pretoken, trigger):
    """Refreshing a token must not keep a scope for a group the user has since left (groups are re-read)."""
    result = access(pretoken, token_event(groups=["admin"], trigger=trigger))
    assert result["scopesToAdd"] == ["erp/verified", "erp/admin"]


def test_id_token_is_left_alone_and_event_survives_missing_parts(pretoken):
    details = pretoken.handler(copy.deepcopy(token_event()), None)["response"]["claimsAndScopeOverrideDetails"]
    assert set(details) == {"accessTokenGeneration"}
    bare = pretoken.handler({"triggerSource": "TokenGeneration_HostedAuth"}, None)
    assert bare["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"] == {
        "claimsToAddOrOverride": {},
        "claimsToSuppress": ["email"],
        "scopesToAdd": [],
    }


def test_without_a_project_no_scope_is_invented(monkeypatch):
    module = load(monkeypatch, project="", name="pretoken_noproject")
    assert access(module, token_event(groups=["admin"]))["scopesToAdd"] == []

"""The pre-sign-up trigger: only exact matches of an allowed domain skip Cognito's confirmation, and no
sign-up is ever marked verified without proof (issue 12: it used to set autoVerifyEmail)."""

import copy
import importlib.util
from pathlib import Path

import pytest

HANDLER = Path(__file__).resolve().parents[2] / "lambda_handlers" / "presignup" / "app.py"


@pytest.fixture
def presignup(monkeypatch):
    """Imported under its own name (every function has an app.py), with the domains Lambda would get."""
    monkeypatch.setenv("ALLOWED_SIGNUP_DOMAINS", " Example.com ,corp.example.org")
    spec = importlib.util.spec_from_file_location("presignup_app", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sign_up_event(email=None, trigger="PreSignUp_SignUp") -> dict:
    """The event as Cognito sends it (response flags default to false)."""
    attributes = {} if email is None else {"email": email}
    return {
        "version": "1",
        "region": "ap-northeast-2",
        "userPoolId": "ap-northeast-2_Example",
        "userName": "3f0a2b1c-7d4e-4f5a-9b8c-1d2e3f4a5b6c",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client"},
        "triggerSource": trigger,
        "request": {"userAttributes": attributes, "validationData": None},
        "response": {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False},
    }


def confirmed(module, event: dict) -> bool:
    response = module.handler(copy.deepcopy(event), None)["response"]
    assert response["autoVerifyEmail"] is False, "an address is verified only by Cognito's code"
    assert response["autoVerifyPhone"] is False
    return response["autoConfirmUser"]


def test_domains_come_from_the_environment_normalized(presignup):
    assert sorted(presignup.ALLOWED_DOMAINS) == ["corp.example.org", "example.com"]


@pytest.mark.parametrize("email", ["kim.minji@example.com", "a@corp.example.org", "x+tag@example.com"])
def test_allowed_domain_is_auto_confirmed_but_never_verified(presignup, email):
    assert confirmed(presignup, sign_up_event(email)) is True


@pytest.mark.parametrize("email", ["Kim.Minji@EXAMPLE.COM", "kim@Example.Com", "kim@CORP.Example.ORG"])
def test_domain_match_ignores_case(presignup, email):
    assert confirmed(presignup, sign_up_event(email)) is True


def test_other_domain_follows_normal_confirmation(presignup):
    event = sign_up_event("someone@gmail.com")
    result = presignup.handler(copy.deepcopy(event), None)
    assert result == event  # untouched: Cognito sends its verification code as usual


@pytest.mark.parametrize(
    "email",
    [
        "mallory@evil-example.com",
        "mallory@notexample.com",
        "mallory@example.com.evil.io",
        "mallory@sub.example.com",  # subdomains are not the company's mail domain
        "mallory@example.co",
        "mallory@example.com.",
        "mallory@example.com ",
        "mallory@ example.com",
        "mallory@example.org",
        "mallory@evil.io@example.co",
        "example.com@evil.io",
        "mallory@example\u2024com",  # one-dot leader, looks like a dot
        "mallory@exаmple.com",  # Cyrillic "а"
    ],
)
def test_look_alike_domains_are_not_confirmed(presignup, email):
    assert confirmed(presignup, sign_up_event(email)) is False


@pytest.mark.parametrize("email", [None, "", "@example.com", "example.com", "mallory@", 42, ["a@example.com"]])
def test_missing_or_malformed_email_is_not_confirmed(presignup, email):
    event = sign_up_event()
    event["request"]["userAttributes"]["email"] = email
    if email is None:
        del event["request"]["userAttributes"]["email"]
    assert confirmed(presignup, event) is False


def test_event_without_request_or_response_does_not_fail(presignup):
    assert presignup.handler({"triggerSource": "PreSignUp_SignUp"}, None) == {"triggerSource": "PreSignUp_SignUp"}
    event = {"triggerSource": "PreSignUp_SignUp", "request": {"userAttributes": {"email": "a@example.com"}}}
    assert presignup.handler(event, None)["response"] == {"autoConfirmUser": True, "autoVerifyEmail": False}


@pytest.mark.parametrize("trigger", ["PreSignUp_AdminCreateUser", "PreSignUp_ExternalProvider"])
def test_other_trigger_sources_are_left_alone(presignup, trigger):
    assert confirmed(presignup, sign_up_event("kim@example.com", trigger=trigger)) is False


def test_no_allowed_domains_confirms_nobody(monkeypatch):
    monkeypatch.setenv("ALLOWED_SIGNUP_DOMAINS", "")
    spec = importlib.util.spec_from_file_location("presignup_app_empty", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.ALLOWED_DOMAINS
    assert confirmed(module, sign_up_event("kim@example.com")) is False

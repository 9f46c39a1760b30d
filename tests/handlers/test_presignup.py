"""The pre-sign-up trigger: only exact matches of an allowed domain may sign up at all (issue 17: other
addresses used to go through code confirmation and then read everything), and nobody is confirmed or
verified here: the link in the sign-up mail does both (issue 12: it used to set autoVerifyEmail)."""

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


def admitted(module, event: dict) -> bool:
    """True when sign-up may go on; never with the account confirmed or its address verified."""
    try:
        response = module.handler(copy.deepcopy(event), None)["response"]
    except module.SignUpRefused:
        return False
    assert response["autoConfirmUser"] is False, "only the link in the sign-up mail confirms an account"
    assert response["autoVerifyEmail"] is False, "only the link in the sign-up mail verifies an address"
    assert response["autoVerifyPhone"] is False
    return True


def refusal_of(module, event: dict) -> str:
    with pytest.raises(module.SignUpRefused) as refused:
        module.handler(copy.deepcopy(event), None)
    return str(refused.value)


def test_domains_come_from_the_environment_normalized(presignup):
    assert sorted(presignup.ALLOWED_DOMAINS) == ["corp.example.org", "example.com"]


@pytest.mark.parametrize("email", ["kim.minji@example.com", "a@corp.example.org", "x+tag@example.com"])
def test_allowed_domain_may_sign_up_but_is_not_confirmed(presignup, email):
    assert admitted(presignup, sign_up_event(email)) is True


@pytest.mark.parametrize("email", ["Kim.Minji@EXAMPLE.COM", "kim@Example.Com", "kim@CORP.Example.ORG"])
def test_domain_match_ignores_case(presignup, email):
    assert admitted(presignup, sign_up_event(email)) is True


def test_other_domain_is_refused_with_a_message_the_frontend_shows(presignup):
    """The frontend prints err.message: Cognito's "PreSignUp failed with error <this>."."""
    message = refusal_of(presignup, sign_up_event("someone@gmail.com"))
    assert message == "Sign up with your company address (@corp.example.org, @example.com)"


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
def test_look_alike_domains_are_refused(presignup, email):
    assert admitted(presignup, sign_up_event(email)) is False


@pytest.mark.parametrize("email", [None, "", "@example.com", "example.com", "mallory@", 42, ["a@example.com"]])
def test_missing_or_malformed_email_is_refused(presignup, email):
    event = sign_up_event()
    event["request"]["userAttributes"]["email"] = email
    if email is None:
        del event["request"]["userAttributes"]["email"]
    assert admitted(presignup, event) is False


def test_event_without_request_or_response_is_refused_not_crashed(presignup):
    with pytest.raises(presignup.SignUpRefused):
        presignup.handler({"triggerSource": "PreSignUp_SignUp"}, None)
    event = {"triggerSource": "PreSignUp_SignUp", "request": {"userAttributes": {"email": "a@example.com"}}}
    assert presignup.handler(event, None)["response"] == {"autoConfirmUser": False, "autoVerifyEmail": False}


def test_federated_sign_up_follows_the_domain_rule(presignup):
    assert admitted(presignup, sign_up_event("kim@example.com", trigger="PreSignUp_ExternalProvider")) is True
    assert admitted(presignup, sign_up_event("kim@gmail.com", trigger="PreSignUp_ExternalProvider")) is False


def test_administrators_create_any_address_unconfirmed(presignup):
    """AdminCreateUser is IAM-guarded already (make user ... CREATE=1); Cognito confirms it by the invitation."""
    assert admitted(presignup, sign_up_event("contractor@gmail.com", trigger="PreSignUp_AdminCreateUser")) is True


def test_no_allowed_domains_means_no_self_sign_up(monkeypatch):
    monkeypatch.setenv("ALLOWED_SIGNUP_DOMAINS", "")
    spec = importlib.util.spec_from_file_location("presignup_app_empty", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.ALLOWED_DOMAINS
    assert refusal_of(module, sign_up_event("kim@example.com")) == (
        "Self sign-up is off: ask an administrator to create your account"
    )
    assert admitted(module, sign_up_event("kim@example.com", trigger="PreSignUp_AdminCreateUser")) is True

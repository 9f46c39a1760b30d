"""Cognito pre-sign-up trigger: only the company's own mail domains may sign up, and nobody is confirmed here.

Only an exact, case-insensitive match of the part after the last "@" counts, so
`evil-example.com`, `example.com.evil.io` and `sub.example.com` are all refused. A refusal
raises: Cognito answers the client with "PreSignUp failed with error <message>." and the ERP
frontend shows that text. With no allowed domain at all, self sign-up is off in the pool too;
this refuses it anyway, so the rule holds even if that switch is flipped by hand.

Nothing is auto-confirmed and no address is auto-verified: the account is confirmed, and the
address verified, only when the person opens the link Cognito mails (a squatter who signs up with a
colleague's address never gets in without that mailbox). Accounts an administrator creates
(`PreSignUp_AdminCreateUser`) pass: creating them is already an IAM-guarded act.
"""

import os

ALLOWED_DOMAINS = frozenset(
    domain.strip().lower() for domain in os.environ.get("ALLOWED_SIGNUP_DOMAINS", "").split(",") if domain.strip()
)


class SignUpRefused(Exception):
    """Its message is what the person reads."""


def allowed_domain(email: object, allowed: frozenset[str] = ALLOWED_DOMAINS) -> bool:
    """True only for `local@domain` whose domain is exactly one of `allowed`."""
    if not isinstance(email, str):
        return False
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain) and domain.lower() in allowed


def refusal(allowed: frozenset[str] = ALLOWED_DOMAINS) -> str:
    if not allowed:
        return "Self sign-up is off: ask an administrator to create your account"
    return f"Sign up with your company address ({', '.join('@' + d for d in sorted(allowed))})"


def handler(event: dict, _context) -> dict:
    response = event.setdefault("response", {})
    response["autoConfirmUser"] = False
    response["autoVerifyEmail"] = False
    if event.get("triggerSource") == "PreSignUp_AdminCreateUser":
        return event
    email = (event.get("request") or {}).get("userAttributes", {}).get("email")
    if not allowed_domain(email):
        raise SignUpRefused(refusal())
    return event

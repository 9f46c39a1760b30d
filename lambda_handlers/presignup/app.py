"""Cognito pre-sign-up trigger: colleagues on the company's own mail domains skip the confirmation step.

Only an exact, case-insensitive match of the part after the last "@" counts, so
`evil-example.com`, `example.com.evil.io` and `sub.example.com` all go through the
normal confirmation flow. Anything unexpected (no email, another trigger source)
leaves the event untouched: the fallback is Cognito's own confirmation, never a
rejection and never an automatic confirmation.

Auto-verifying trusts the address without proof that the person can read that
mailbox: anyone may register any address on an allowed domain. That is the
product decision of issue #4; restricting sign-up instead means rejecting here.
"""

import os

ALLOWED_DOMAINS = frozenset(
    domain.strip().lower() for domain in os.environ.get("ALLOWED_SIGNUP_DOMAINS", "").split(",") if domain.strip()
)


def allowed_domain(email: object, allowed: frozenset[str] = ALLOWED_DOMAINS) -> bool:
    """True only for `local@domain` whose domain is exactly one of `allowed`."""
    if not isinstance(email, str):
        return False
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain) and domain.lower() in allowed


def handler(event: dict, _context) -> dict:
    if event.get("triggerSource") != "PreSignUp_SignUp":
        return event  # admin-created and federated users have their own flows
    email = (event.get("request") or {}).get("userAttributes", {}).get("email")
    if allowed_domain(email):
        response = event.setdefault("response", {})
        response["autoConfirmUser"] = True
        response["autoVerifyEmail"] = True
    return event

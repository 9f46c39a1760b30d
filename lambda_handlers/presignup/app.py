"""Cognito pre-sign-up trigger: colleagues on the company's own mail domains may sign in right away.

Only an exact, case-insensitive match of the part after the last "@" counts, so
`evil-example.com`, `example.com.evil.io` and `sub.example.com` all go through the
normal confirmation flow. Anything unexpected (no email, another trigger source)
leaves the event untouched: the fallback is Cognito's own confirmation, never a
rejection and never an automatic confirmation.

An allowed-domain sign-up is CONFIRMED (the SPA has no code-entry screen, so the
person can sign in at once) but its email is NEVER marked verified here: that needs
proof that the person reads the mailbox (Cognito's verification code). Until then
the pre-token-generation trigger leaves the `email` claim out of the access token,
and no group is ever granted at sign-up, so an unverified account can reach nothing
tied to an address or a privilege.
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
        # Never autoVerifyEmail: an address counts as the user's only after Cognito's code proves it.
        response["autoVerifyEmail"] = False
    return event

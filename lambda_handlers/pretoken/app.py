"""Cognito pre-token-generation trigger (event version 2): what an ACCESS token may claim.

Only a proved address earns anything: when the user's `email_verified` attribute is the string "true"
(the sign-up link was opened, or an administrator created the account with a verified address), the
access token gets
- scope f"{PROJECT}/verified": every gateway route needs it (or a group scope), so a token of an
  unproved account reaches nothing;
- scope f"{PROJECT}/{group}" for every Cognito group the user is in (groups are granted by an
  administrator with `make user`, never at sign-up); the gateway's group routes require these;
- claim `email`, so the employee Lambda can match "own record" by it.
Otherwise none of these, and any `email` claim is suppressed. `custom:employeeId` (written only by
administrators, to link an account to a legacy employee record without an email) is copied as a claim,
as API Gateway passes access-token claims, not ID-token ones, to the Lambda.

Anything unexpected (no request, no groups, no attributes) adds nothing: the fallback is a token with
fewer rights, never more. The ID token is left as Cognito makes it (the frontend reads it).
"""

import os

PROJECT = os.environ.get("PROJECT", "").strip()
VERIFIED = "verified"  # config.sections.VERIFIED_SCOPE (tests/unit/test_one_source.py)
EMPLOYEE_ID = "custom:employeeId"


def scopes_for(groups: object, project: str = PROJECT) -> list[str]:
    """One `project/group` scope per group, in a stable order; nothing for malformed input."""
    if not project or not isinstance(groups, list):
        return []
    names = {g for g in groups if isinstance(g, str) and g and not any(c.isspace() for c in g) and g != VERIFIED}
    return [f"{project}/{g}" for g in sorted(names)]


def verified_email(attributes: object) -> str | None:
    if not isinstance(attributes, dict) or attributes.get("email_verified") != "true":
        return None
    email = attributes.get("email")
    return email if isinstance(email, str) and "@" in email else None


def linked_employee(attributes: object) -> str | None:
    value = attributes.get(EMPLOYEE_ID) if isinstance(attributes, dict) else None
    return value if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0 else None


def handler(event: dict, _context) -> dict:
    request = event.get("request") or {}
    attributes = request.get("userAttributes")
    access: dict = {"claimsToAddOrOverride": {}, "claimsToSuppress": [], "scopesToAdd": []}
    email = verified_email(attributes)
    if email is not None and PROJECT:
        groups = (request.get("groupConfiguration") or {}).get("groupsToOverride")
        access["scopesToAdd"] = [f"{PROJECT}/{VERIFIED}", *scopes_for(groups)]
        access["claimsToAddOrOverride"]["email"] = email
    else:
        access["claimsToSuppress"].append("email")
    employee_id = linked_employee(attributes)
    if employee_id is not None:
        access["claimsToAddOrOverride"][EMPLOYEE_ID] = employee_id
    response = event.get("response")
    if not isinstance(response, dict):
        response = event["response"] = {}
    details = response.get("claimsAndScopeOverrideDetails")
    if not isinstance(details, dict):
        details = response["claimsAndScopeOverrideDetails"] = {}
    details["accessTokenGeneration"] = access
    return event

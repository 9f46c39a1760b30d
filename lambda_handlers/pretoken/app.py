"""Cognito pre-token-generation trigger (event version 2): what an ACCESS token may claim.

- scope: f"{PROJECT}/{group}" for every Cognito group the user is in (groups are assigned by an
  administrator, never at sign-up). The gateway's group-restricted routes require these scopes.
- email: added ONLY when the user's `email_verified` attribute is the string "true", so a caller can
  never name an address they have not proved they own (the employee Lambda matches "own record" by it);
  otherwise any `email` claim is suppressed.

Anything unexpected (no request, no groups, no attributes) adds nothing: the fallback is a token with
fewer rights, never more. The ID token is left as Cognito makes it.
"""

import os

PROJECT = os.environ.get("PROJECT", "").strip()


def scopes_for(groups: object, project: str = PROJECT) -> list[str]:
    """One `project/group` scope per group, in a stable order; nothing for malformed input."""
    if not project or not isinstance(groups, list):
        return []
    names = {g for g in groups if isinstance(g, str) and g and not any(c.isspace() for c in g)}
    return [f"{project}/{g}" for g in sorted(names)]


def verified_email(attributes: object) -> str | None:
    if not isinstance(attributes, dict) or attributes.get("email_verified") != "true":
        return None
    email = attributes.get("email")
    return email if isinstance(email, str) and "@" in email else None


def handler(event: dict, _context) -> dict:
    request = event.get("request") or {}
    groups = (request.get("groupConfiguration") or {}).get("groupsToOverride")
    access: dict = {"claimsToAddOrOverride": {}, "claimsToSuppress": [], "scopesToAdd": scopes_for(groups)}
    email = verified_email(request.get("userAttributes"))
    if email is not None:
        access["claimsToAddOrOverride"]["email"] = email
    else:
        access["claimsToSuppress"].append("email")
    response = event.get("response")
    if not isinstance(response, dict):
        response = event["response"] = {}
    details = response.get("claimsAndScopeOverrideDetails")
    if not isinstance(details, dict):
        details = response["claimsAndScopeOverrideDetails"] = {}
    details["accessTokenGeneration"] = access
    return event

"""Who is calling, from what API Gateway put in requestContext (the handler never sees raw tokens).

- A JWT (HTTP API JWT authorizer, Cognito access token): a signed-in user. Groups come from
  `cognito:groups` (the authorizer passes arrays as a string like "[admin manager]") and from
  the OAuth scopes "<project>/<group>" the pre-token-generation trigger adds. The email claim
  counts only when verified: access tokens carry it only then; an ID-token style
  `email_verified: false` voids it. `custom:employeeId` (digits, set only by an administrator
  to link the account to a legacy employee record that has no email) names a second record the
  user may act as.
- `custom:position` (MANAGER/STAFF) grants nothing: users write it themselves at sign-up.
- IAM (the function URL with AWS_IAM auth) and no JWT: the in-cluster caller.
- Neither: anonymous.
"""

import os
import re
from dataclasses import dataclass, field


def _names(raw: str | None) -> frozenset[str]:
    return frozenset(n.strip() for n in (raw or "").split(",") if n.strip())


ADMIN_GROUPS = _names(os.environ.get("AUTH_ADMIN_GROUPS", "admin"))
MANAGER_GROUPS = _names(os.environ.get("AUTH_MANAGER_GROUPS", "manager"))
SCOPE_PREFIX = os.environ.get("AUTH_SCOPE_PREFIX", "erp")
EMPLOYEE_ID_CLAIM = "custom:employeeId"
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() would also take "１" or "²"
_MAX_BIGINT = 2**63 - 1  # employees.id is a signed BIGINT


@dataclass(frozen=True)
class Principal:
    kind: str  # "user", "internal" or "anonymous"
    subject: str | None = None
    email: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    employee_id: int | None = None  # the legacy record an administrator linked this account to

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and bool(self.groups & ADMIN_GROUPS)

    @property
    def is_manager(self) -> bool:
        """Manager rights: a manager or an admin group."""
        return self.kind == "user" and bool(self.groups & (MANAGER_GROUPS | ADMIN_GROUPS))

    @property
    def is_verified(self) -> bool:
        """A proven identity: a verified email or an administrator's link. Tokens of accounts that
        never opened their sign-up link carry neither, and such callers may not even read."""
        return self.email is not None or self.employee_id is not None


def _list_claim(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part for part in text.replace(",", " ").split() if part]


def _employee_id(value) -> int | None:
    """The linked record's id: a string of ASCII digits naming a positive BIGINT, else None."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if 0 < number <= _MAX_BIGINT else None


def principal_from(event: dict) -> Principal:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    jwt = authorizer.get("jwt") or {}
    claims = jwt.get("claims") or {}
    if claims:
        groups = set(_list_claim(claims.get("cognito:groups")))
        scopes = _list_claim(jwt.get("scopes")) + _list_claim(claims.get("scope"))
        prefix = f"{SCOPE_PREFIX}/"
        groups |= {s[len(prefix) :] for s in scopes if s.startswith(prefix)}
        email = claims.get("email")
        if str(claims.get("email_verified", "true")).lower() != "true" or not isinstance(email, str):
            email = None
        return Principal(
            "user",
            subject=claims.get("sub"),
            email=email.strip().lower() if email and email.strip() else None,
            groups=frozenset(groups),
            employee_id=_employee_id(claims.get(EMPLOYEE_ID_CLAIM)),
        )
    if authorizer.get("iam"):
        return Principal("internal")
    return Principal("anonymous")

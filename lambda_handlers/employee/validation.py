"""Request parsing and validation for the employee API.

Every rejection is an ApiError that names the offending field, so clients can show
the message next to the input that caused it.
"""

import base64
import binascii
import json
import re
from http import HTTPStatus

# Writable fields: (required, minimum length, maximum length). Lengths match the columns.
FIELDS = {
    "email": (True, 3, 254),
    "name": (True, 1, 100),
    "department": (True, 1, 100),
    "title": (False, 0, 100),
}
READ_ONLY_FIELDS = {"id", "created_at", "updated_at"}

# The WHATWG "valid e-mail address" grammar: what browsers accept in <input type=email>,
# minus single-label domains, which no real employee mailbox uses.
_EMAIL = re.compile(
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
)
_ID = re.compile(r"[0-9]{1,19}")  # fits BIGINT UNSIGNED
_LIMIT = re.compile(r"[0-9]{1,3}")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20


class ApiError(Exception):
    """A client error that maps directly onto an HTTP response."""

    def __init__(self, status: HTTPStatus, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def parse_json_object(body: str | None, is_base64_encoded: bool, max_bytes: int) -> dict:
    """Decode an HTTP API request body into a JSON object, enforcing the size limit on the raw bytes."""
    try:
        raw = base64.b64decode(body or "", validate=True) if is_base64_encoded else (body or "").encode()
    except binascii.Error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "Request body is not valid base64") from None
    if len(raw) > max_bytes:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Request body exceeds {max_bytes} bytes")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except ValueError:  # covers JSONDecodeError and UnicodeDecodeError
        raise ApiError(HTTPStatus.BAD_REQUEST, "Request body is not valid UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "Request body must be a JSON object")
    return payload


def validate_employee(payload: dict, *, partial: bool) -> dict:
    """Return the cleaned writable fields of `payload`.

    With partial=False (create, full replace) every required field must be present and a
    missing optional field becomes None; with partial=True (PATCH) only the given fields
    are returned. Required fields may never be null.
    """
    for field in payload:
        if field in READ_ONLY_FIELDS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Field '{field}' is read-only", field)
        if field not in FIELDS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Unknown field '{field}'", field)

    cleaned = {}
    for field, (required, min_len, max_len) in FIELDS.items():
        if field not in payload:
            if required and not partial:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"Field '{field}' is required", field)
            if not partial:
                cleaned[field] = None
            continue
        value = payload[field]
        if value is None and not required:
            cleaned[field] = None
            continue
        if not isinstance(value, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Field '{field}' must be a string", field)
        value = value.strip()
        if not min_len <= len(value) <= max_len:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Field '{field}' must be {min_len} to {max_len} characters", field)
        if field == "email":
            if not _EMAIL.fullmatch(value):
                raise ApiError(HTTPStatus.BAD_REQUEST, "Field 'email' is not a valid email address", field)
            value = value.lower()  # uniqueness is case-insensitive
        cleaned[field] = value
    return cleaned


def parse_id(raw: str) -> int:
    if not _ID.fullmatch(raw):
        raise ApiError(HTTPStatus.BAD_REQUEST, "Employee id must be a positive integer", "id")
    return int(raw)


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    return int(raw)


def encode_cursor(last_id: int) -> str:
    """Opaque keyset cursor, so clients can't come to depend on its contents."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int:
    """Return the id after which the page starts (0 for the first page)."""
    if raw is None:
        return 0
    try:
        padded = raw.encode("ascii") + b"=" * (-len(raw) % 4)
        after = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))["after"]
    except (ValueError, KeyError, TypeError):
        after = None
    if type(after) is not int or after < 0:
        raise ApiError(HTTPStatus.BAD_REQUEST, "cursor is not valid", "cursor")
    return after

"""Strict request parsing for the employee API: every malformed input is a 4xx, never a 500.

JSON is parsed with hooks that refuse what Python's json module would otherwise accept
and the database would later choke on: duplicate keys, integers past 64 bits, NaN and
Infinity, lone surrogates and NUL characters, and nesting deeper than MAX_DEPTH.
"""

import base64
import binascii
import json
import math
import re
from http import HTTPStatus

MAX_DEPTH = 16
MAX_BIGINT = 2**63 - 1  # the id columns are signed BIGINT (Hibernate's Long)
_ID = re.compile(r"[1-9][0-9]{0,18}")  # no sign, no leading zero ("007" is refused)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ApiError(Exception):
    """A client error that maps directly onto an HTTP response."""

    def __init__(self, status: HTTPStatus, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def bad(message: str, field: str | None = None) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, field)


def _no_duplicates(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise bad(f"Duplicate key '{_printable(key)}' in request body", _printable(key))
        result[key] = value
    return result


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(int(text)) > MAX_BIGINT:
        raise bad("Number out of range (64-bit integers only)")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise bad("Number out of range")
    return value


def _constant(name: str):
    raise bad(f"{name} is not valid JSON")


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:64].replace("\x00", "\\0")


def _check(value, depth: int = 0) -> None:
    """Depth, and strings the database can store: valid Unicode scalar values, no NUL."""
    if depth > MAX_DEPTH:
        raise bad(f"Request body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise bad("Request body contains an unpaired surrogate") from None
        if "\x00" in value:
            raise bad("Request body contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def parse_json_object(body: str | None, is_base64_encoded: bool, content_type: str | None, max_bytes: int) -> dict:
    """Decode an HTTP API request body into a JSON object."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
    try:
        raw = base64.b64decode(body or "", validate=True) if is_base64_encoded else (body or "").encode("utf-8")
    except (binascii.Error, UnicodeEncodeError):
        raise bad("Request body is not valid UTF-8") from None
    if len(raw) > max_bytes:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Request body exceeds {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("Request body is not valid UTF-8") from None
    try:
        payload = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_constant,
        )
    except RecursionError:
        raise bad(f"Request body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise bad("Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad("Request body must be a JSON object")
    _check(payload)
    return payload


def parse_id(raw: str | None, field: str = "id") -> int:
    """A path or query id: decimal digits, no leading zero, fits BIGINT."""
    if raw is None:
        raise bad(f"'{field}' is required", field)
    if not _ID.fullmatch(raw) or int(raw) > MAX_BIGINT:
        raise bad(f"'{field}' must be a positive integer without leading zeros", field)
    return int(raw)


def body_id(payload: dict, field: str) -> int:
    value = payload.get(field)
    if value is None:
        raise bad(f"'{field}' is required", field)
    if type(value) is not int or not 1 <= value <= MAX_BIGINT:
        raise bad(f"'{field}' must be a positive integer", field)
    return value


def number(payload: dict, field: str, *, required: bool = True, positive: bool = False) -> float | None:
    value = payload.get(field)
    if value is None:
        if required:
            raise bad(f"'{field}' is required", field)
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"'{field}' must be a number", field)
    if positive and value <= 0:
        raise bad(f"'{field}' must be greater than 0", field)
    if abs(value) > 1_000_000:
        raise bad(f"'{field}' is out of range", field)
    return float(value)


def text(payload: dict, field: str, max_len: int, *, required: bool = True) -> str | None:
    value = payload.get(field)
    if value is None:
        if required:
            raise bad(f"'{field}' is required", field)
        return None
    if not isinstance(value, str):
        raise bad(f"'{field}' must be a string", field)
    value = value.strip()
    if required and not value:
        raise bad(f"'{field}' must not be blank", field)
    if len(value) > max_len:
        raise bad(f"'{field}' must be at most {max_len} characters", field)
    return value


def date(payload: dict, field: str) -> str:
    from datetime import date as _date  # noqa: PLC0415  (only the leave route needs it)

    value = payload.get(field)
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise bad(f"'{field}' must be a date (YYYY-MM-DD)", field)
    try:
        return _date.fromisoformat(value).isoformat()
    except ValueError:
        raise bad(f"'{field}' is not a valid date", field) from None


def query_text(raw: str | None, field: str, max_len: int = 100) -> str | None:
    if raw is None:
        return None
    if "\x00" in raw or len(raw) > max_len:
        raise bad(f"'{field}' is not valid", field)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise bad(f"'{field}' is not valid", field) from None
    return raw


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
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, RecursionError):
        after = None
    if type(after) is not int or not 0 <= after <= MAX_BIGINT:
        raise bad("cursor is not valid", "cursor")
    return after


def parse_limit(raw: str | None, maximum: int = 100) -> int | None:
    if raw is None:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,2}", raw) or int(raw) > maximum:
        raise bad(f"limit must be an integer from 1 to {maximum}", "limit")
    return int(raw)

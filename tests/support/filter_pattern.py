"""A small evaluator for the subset of CloudWatch Logs filter-pattern syntax the platform's metric filters use.

CloudWatch has no local evaluator (``aws logs test-metric-filter`` needs an account), so the patterns
are checked against real log lines with this one, which is itself checked against the examples in
CloudWatch's documentation (tests/unit/test_metric_filter.py). Semantics implemented, per those docs:

* **JSON patterns** ``{ ... }``: the event must parse as a JSON object, else no match. Selectors
  ``$.a.b``, ``$.a[0]``, ``$.a[0][1]``; operators ``=``/``!=`` (strings, numbers, ``%regex%``),
  ``<``/``>``/``<=``/``>=`` (numbers), ``IS NULL``, ``IS TRUE``/``IS FALSE``, ``EXISTS``, ``NOT EXISTS``;
  ``&&`` binds tighter than ``||``; parentheses group. String values match exactly (case-sensitive);
  a ``*`` at the start and/or end of the value is a wildcard, one in the middle is a literal ``*``.
  A selector that is missing or points at an object/array makes ``=`` **and** ``!=`` false
  (only ``NOT EXISTS`` is true for a missing key).
* **Regex** ``%...%`` (alone or as a JSON value): searched anywhere in the text (``^``/``$`` anchor it),
  case-sensitive. CloudWatch rejects characters outside its allowed set (notably spaces, ``(``/``)``,
  ``!``, quotes, multi-byte) and more than two regexes per JSON pattern: so does this evaluator.
* **Terms** (anything else): every plain term must occur (substring, case-sensitive), at least one of
  the ``?term`` terms if any, none of the ``-term`` terms; ``"quoted phrases"`` count as one term.

* **Metric transformations** (``datapoints``): a matching event adds ``MetricValue`` under the
  ``Dimensions`` read from the event's fields (a JSON event whose dimension field is missing or not a
  scalar adds nothing: an assumption, CloudWatch documents no behaviour for it); a non-matching event
  adds ``DefaultValue`` when one is set (CloudWatch refuses a default value next to dimensions).

Not implemented (not used here): space-delimited ``[a, b, ...]`` patterns and metric value extraction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# What CloudWatch accepts inside %...%: letters, digits, these symbols and these operators.
REGEX_ALLOWED = re.compile(r"^[A-Za-z0-9:_#=@/;,\-^$?\[\]{}|\\*+.]*$")
MAX_REGEX_PER_PATTERN = 2
_MISSING = object()


class PatternError(ValueError):
    """A pattern CloudWatch would reject (or this evaluator does not understand)."""


def matches(pattern: str, message: str) -> bool:
    """True when CloudWatch would count `message` (one log event) for `pattern`."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if pattern.startswith("{"):
        return _json_matches(pattern, message)
    if pattern.startswith("["):
        raise PatternError("space-delimited patterns are not supported by this evaluator")
    if len(pattern) > 1 and pattern.startswith("%") and pattern.endswith("%"):
        return _compile_regex(pattern[1:-1]).search(message) is not None
    return _terms_match(pattern, message)


def datapoints(pattern: str, transformation: dict, message: str) -> list[tuple[dict[str, str], float]]:
    """What one event adds to the metric of a filter: [(dimensions, value)], empty for nothing.

    `transformation` is shaped like a template's MetricTransformations entry (MetricValue, DefaultValue,
    Dimensions as [{"Key": ..., "Value": "$.field"}])."""
    dimensions = transformation.get("Dimensions") or []
    if dimensions and transformation.get("DefaultValue") is not None:
        raise PatternError("a metric filter with dimensions cannot have a default value")
    if not matches(pattern, message):
        default = transformation.get("DefaultValue")
        return [] if default is None else [({}, float(default))]
    resolved: dict[str, str] = {}
    if dimensions:
        event = json.loads(message)
        for dimension in dimensions:
            value = _resolve(event, _selector_path(dimension["Value"]))
            if value is _MISSING or isinstance(value, dict | list) or value is None:
                return []
            resolved[dimension["Key"]] = str(value)
    return [(resolved, float(transformation["MetricValue"]))]


def regex_count(pattern: str) -> int:
    """How many %regex% a pattern holds (CloudWatch allows 2 per pattern, 5 regex patterns per log group)."""
    return len(_tokens(pattern.strip()[1:-1])[1]) if pattern.strip().startswith("{") else pattern.count("%") // 2


# --- JSON patterns -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # sel, op, unary, str, regex, bare, and, or, lparen, rparen
    text: str


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<and>&&) | (?P<or>\|\|) | (?P<lparen>\() | (?P<rparen>\)) |
      (?P<unary>IS\s+NULL|IS\s+TRUE|IS\s+FALSE|NOT\s+EXISTS|EXISTS)(?![\w]) |
      (?P<sel>\$(?:\.[A-Za-z0-9_-]+|\[\d+\])*) |
      (?P<op>!=|<=|>=|=|<|>) |
      (?P<str>"(?:[^"\\]|\\.)*") |
      (?P<regex>%[^%]*%) |
      (?P<bare>[^\s()&|"%]+)
    )""",
    re.VERBOSE,
)


def _tokens(body: str) -> tuple[list[_Tok], list[str]]:
    tokens, regexes, pos = [], [], 0
    body = body.rstrip()
    while pos < len(body):
        found = _TOKEN.match(body, pos)
        if not found or found.end() == pos:
            raise PatternError(f"cannot parse JSON pattern at {body[pos:]!r}")
        kind = found.lastgroup
        text = found.group(kind)
        if kind == "regex":
            regexes.append(text[1:-1])
        tokens.append(_Tok(kind, text))
        pos = found.end()
    if len(regexes) > MAX_REGEX_PER_PATTERN:
        raise PatternError(f"{len(regexes)} regexes in one pattern; CloudWatch allows {MAX_REGEX_PER_PATTERN}")
    return tokens, regexes


def _json_matches(pattern: str, message: str) -> bool:
    if not pattern.endswith("}"):
        raise PatternError("a JSON pattern must end with }")
    tokens, _ = _tokens(pattern[1:-1])
    tree, rest = _parse_or(tokens)
    if rest:
        raise PatternError(f"unexpected {rest[0].text!r}")
    try:
        event = json.loads(message)
    except ValueError:
        return False
    return isinstance(event, dict) and tree(event)


def _parse_chain(tokens, operator, parse_operand, combine):
    """Left-associative `operand (operator operand)*`: || over &&, && over units."""
    left, tokens = parse_operand(tokens)
    while tokens and tokens[0].kind == operator:
        right, tokens = parse_operand(tokens[1:])
        left = combine(left, right)
    return left, tokens


def _parse_or(tokens):
    return _parse_chain(tokens, "or", _parse_and, _either)


def _parse_and(tokens):
    return _parse_chain(tokens, "and", _parse_unit, _both)


def _either(a, b):
    return lambda event: a(event) or b(event)


def _both(a, b):
    return lambda event: a(event) and b(event)


def _parse_unit(tokens):
    if not tokens:
        raise PatternError("pattern ends early")
    head = tokens[0]
    if head.kind == "lparen":
        inner, rest = _parse_or(tokens[1:])
        if not rest or rest[0].kind != "rparen":
            raise PatternError("missing )")
        return inner, rest[1:]
    if head.kind != "sel":
        raise PatternError(f"expected a $ selector, got {head.text!r}")
    path = _selector_path(head.text)
    if len(tokens) > 1 and tokens[1].kind == "unary":
        test = " ".join(tokens[1].text.split())
        return _unary(path, test), tokens[2:]
    if len(tokens) < 3 or tokens[1].kind != "op" or tokens[2].kind not in ("str", "regex", "bare"):
        raise PatternError(f"expected `{head.text} <op> <value>`")
    return _comparison(path, tokens[1].text, tokens[2]), tokens[3:]


def _selector_path(selector: str) -> list[str | int]:
    return [
        int(part[1:-1]) if part.startswith("[") else part[1:]
        for part in re.findall(r"\.[A-Za-z0-9_-]+|\[\d+\]", selector[1:])
    ]


def _resolve(event: Any, path: list[str | int]) -> Any:
    value = event
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return _MISSING
            value = value[step]
    return value


def _unary(path, test: str):
    def check(event) -> bool:
        value = _resolve(event, path)
        if test == "NOT EXISTS":
            return value is _MISSING
        if test == "EXISTS":
            return value is not _MISSING
        if test == "IS NULL":
            return value is None
        return isinstance(value, bool) and value is (test == "IS TRUE")

    return check


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _comparison(path, op: str, value: _Tok):
    if value.kind == "regex":
        if op not in ("=", "!="):
            raise PatternError("a regex compares with = or != only")
        regex = _compile_regex(value.text[1:-1])

        def regex_check(event) -> bool:
            found = _resolve(event, path)
            if not isinstance(found, str):
                return False
            return (regex.search(found) is not None) == (op == "=")

        return regex_check

    text = json.loads(value.text) if value.kind == "str" else value.text
    number = float(text) if value.kind == "bare" and _NUMBER.match(text) else None
    if op in ("<", ">", "<=", ">=") and number is None:
        raise PatternError(f"{op} needs a number, got {text!r}")

    def check(event) -> bool:
        found = _resolve(event, path)
        if found is _MISSING or isinstance(found, (dict, list)):
            return False
        if number is not None and isinstance(found, (int, float)) and not isinstance(found, bool):
            return {
                "=": found == number,
                "!=": found != number,
                "<": found < number,
                ">": found > number,
                "<=": found <= number,
                ">=": found >= number,
            }[op]
        if op not in ("=", "!="):
            return False
        if found is None or isinstance(found, bool):
            return False
        equal = _wildcard_equal(str(found) if not isinstance(found, str) else found, text)
        return equal == (op == "=")

    return check


def _wildcard_equal(value: str, wanted: str) -> bool:
    if wanted == "*":
        return True
    leading, trailing = wanted.startswith("*"), wanted.endswith("*")
    core = wanted[1 if leading else 0 : -1 if trailing else None]
    if leading and trailing:
        return core in value
    if leading:
        return value.endswith(core)
    if trailing:
        return value.startswith(core)
    return value == wanted


def _compile_regex(regex: str) -> re.Pattern:
    if not regex.isascii():
        raise PatternError("multi-byte characters are not supported in a regex")
    if not REGEX_ALLOWED.match(regex):
        bad = sorted({c for c in regex if not REGEX_ALLOWED.match(c)})
        raise PatternError(f"CloudWatch rejects {bad!r} in a regex")
    return re.compile(regex)


# --- term patterns ---------------------------------------------------------------------------------------


def _terms_match(pattern: str, message: str) -> bool:
    required, optional, excluded = [], [], []
    for sign, quoted, plain in re.findall(r'\s*([?-]?)\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))', pattern):
        term = json.loads(f'"{quoted}"') if quoted else plain
        {"": required, "?": optional, "-": excluded}[sign].append(term)
    if any(term not in message for term in required):
        return False
    if optional and not any(term in message for term in optional):
        return False
    return not any(term in message for term in excluded)

"""The ERROR-line metric filters, run against real-shaped Fluent Bit events, not compared as strings.

First the evaluator (tests/support/filter_pattern.py) is held to CloudWatch's documented examples; then
the platform's filters (constructs_lib/observability/log_metrics.py) are run against the events Fluent Bit ships: what
each event adds to the total and to which container's series.
"""

from __future__ import annotations

import json

import pytest

from constructs_lib.observability.log_metrics import CONTAINER_DIMENSION, FILTERS, PLAIN_TEXT_ERROR_REGEX, FilterSpec
from tests.support.filter_pattern import PatternError, datapoints, matches, regex_count

# CloudWatch quotas: regex filter patterns per log group, dimensions per filter, pattern length.
MAX_REGEX_FILTERS_PER_LOG_GROUP = 5
MAX_DIMENSIONS = 3
MAX_PATTERN_LENGTH = 1024

# --- the evaluator against CloudWatch's documentation ---------------------------------------------------

# "Filter and pattern syntax": JSON examples, each documented to match this event.
DOC_EVENT = json.dumps(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
    }
)
DOC_MATCHING = [
    '{ $.eventType = "UpdateTrail" }',
    "{ $.sourceIPAddress != 123.123.* }",
    '{ $.arrayKey[0] = "value" }',
    "{ $.objectList[1].id = 2 }",
    "{ $.SomeObject IS NULL }",
    "{ $.SomeOtherObject NOT EXISTS }",
    "{ $.ThisFlag IS TRUE }",
]

# "JSON compound conditions": precedence () > && > ||.
COMPOUND_EVENT = json.dumps(
    {
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
    }
)
COMPOUND = [
    ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', True),
    ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', False),
    ('{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }', True),
    (
        '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }',
        False,
    ),
]


@pytest.mark.parametrize("pattern", DOC_MATCHING)
def test_documented_json_examples_match(pattern):
    assert matches(pattern, DOC_EVENT)


@pytest.mark.parametrize(("pattern", "expected"), COMPOUND)
def test_documented_compound_examples(pattern, expected):
    assert matches(pattern, COMPOUND_EVENT) is expected


def test_documented_json_negatives_and_edge_cases():
    assert not matches('{ $.eventType = "updatetrail" }', DOC_EVENT)  # case-sensitive
    assert not matches("{ $.ThisFlag IS FALSE }", DOC_EVENT)
    assert not matches("{ $.eventType NOT EXISTS }", DOC_EVENT)
    assert not matches('{ $.arrayKey[0] = "value" }', json.dumps({"arrayKey": "value"}))  # not an array
    # A selector pointing at an array or object matches neither = nor != (documented).
    users = json.dumps({"users": [1, 2, 3]})
    assert not matches("{ $.users = 1 }", users)
    assert not matches("{ $.users != 1 }", users)
    # Wildcards: at the start or end only; in the middle the * is literal (documented).
    assert matches("{ $.eventType = *Trail }", DOC_EVENT)
    assert matches("{ $.eventType = Update* }", DOC_EVENT)
    assert not matches("{ $.eventType = Up*Trail }", DOC_EVENT)
    assert matches("{ $.eventType = Up*Trail }", json.dumps({"eventType": "Up*Trail"}))
    # JSON patterns never match non-JSON events.
    assert not matches('{ $.eventType = "UpdateTrail" }', "eventType UpdateTrail")


def test_documented_or_and_numeric_examples():
    assert matches("{$.foo = bar}", '{"foo": "bar"}')
    assert not matches("{$.foo = bar}", '{"foo": "baz"}')
    assert matches("{$.foo = bar || $.foo = baz }", '{"foo": "baz"}')
    event = json.dumps(
        {"latency": 1200, "numbers": [5], "errorCode": 400, "processes": [{}] * 4 + [{"averageRuntime": 50}]}
    )
    for pattern in (
        "{ $.latency >= 500 }",
        "{ $.numbers[0] < 10e3 }",
        "{ $.processes[4].averageRuntime <= 55.5 }",
        "{ $.errorCode = 400 }",
        "{ $.errorCode != 500 }",
        "{ $.latency > +1000 }",
    ):
        assert matches(pattern, event), pattern
    assert not matches("{ $.numbers[0] < 10e-3 }", event)


def test_documented_term_examples():
    fatal, code = "[ERROR] A fatal exception has occurred", "Exiting with ERRORCODE: -1"
    assert matches("ERROR", fatal) and matches("ERROR", code)  # terms match as substrings
    assert matches('"ERROR" -"Exiting"', fatal) and not matches('"ERROR" -"Exiting"', code)
    lines = ["ERROR WARN message", "ERROR message", "WARN message"]
    assert [matches("ERROR", line) for line in lines] == [True, True, False]
    assert [matches("?ERROR ?WARN", line) for line in lines] == [True, True, True]
    assert [matches("ERROR WARN", line) for line in lines] == [True, False, False]
    assert [matches("ERROR -WARN", line) for line in lines] == [False, True, False]
    assert not matches("ERROR", "error")  # case-sensitive


def test_documented_regex_examples():
    assert matches("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST")
    assert matches("%AUTHORIZED%", "[SUCCESS 200] AUTHORIZED REQUEST")
    assert matches(r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%", "from 10.0.12.7 port 443")
    assert matches("%[Ee]rror|[Ff]ail%", "request failed")
    assert matches("%colou?r%", "color") and matches("%colou?r%", "colour")
    assert matches("{ $.message = %bind:\\s+address% }", '{"message": "bind:  address already in use"}')
    # Rejected by CloudWatch: unsupported symbol, parentheses, spaces, multi-byte characters.
    for bad in ("%something!%", "%(ERROR)%", "%an error%", "%\u00e9rror%"):
        with pytest.raises(PatternError):
            matches(bad, "anything")
    with pytest.raises(PatternError, match="2"):
        matches("{ $.a = %a% || $.b = %b% || $.c = %c% }", "{}")


# --- the platform's patterns against Fluent Bit events ---------------------------------------------------

NAMESPACE = "erp-dev"


def fluent_bit_event(container: str, *, log_line: str | None = None, app_json: dict | None = None) -> str:
    """One CloudWatch event as Fluent Bit's cloudwatch_logs output writes it (cri parser + kubernetes filter)."""
    record = {"time": "2026-11-22T01:15:30.123456789Z", "stream": "stdout", "_p": "F"}
    if app_json is not None:
        record.update(app_json)  # Merge_Log On, Keep_Log Off: the JSON line's keys at the top, no `log`
    else:
        record["log"] = log_line
    pod = f"{container}-0" if container == "kafka" else f"{container}-7d9f8b6c5-x2x9k"
    record["kubernetes"] = {
        "pod_name": pod,
        "namespace_name": NAMESPACE,
        "pod_id": "0b6d0c67-4d0c-4a5e-9e4b-3b2f0f0f5a11",
        "host": "ip-10-10-1-23.ap-northeast-2.compute.internal",
        "container_name": container,
        "docker_id": "5f0e0c7a1b",
        "container_hash": "sha256:4c1d",
        "container_image": f"111111111111.dkr.ecr.ap-northeast-2.amazonaws.com/erp/{container}:1.0.0",
    }
    return json.dumps(record)


def logback_json(level: str, message: str, **extra) -> dict:
    """What logstash-logback-encoder's LogstashEncoder writes for one Spring Boot log call."""
    return {
        "@timestamp": "2026-11-22T10:15:30.123+09:00",
        "@version": "1",
        "message": message,
        "logger_name": "com.example.erp.approval.ApprovalService",
        "thread_name": "http-nio-8082-exec-1",
        "level": level,
        "level_value": {"ERROR": 40000, "WARN": 30000, "INFO": 20000}.get(level.upper(), 10000),
        **extra,
    }


SERVICE = "approval-request-service"
OTHER = "notification-service"

ERROR_EVENTS = {
    "logback JSON ERROR": fluent_bit_event(
        SERVICE,
        app_json=logback_json(
            "ERROR",
            "Failed to persist approval 42",
            stack_trace="java.lang.IllegalStateException: boom\n\tat com.example.erp.approval.ApprovalService",
        ),
    ),
    "Spring Boot 3 plain ERROR": fluent_bit_event(
        SERVICE,
        log_line="2026-11-22T10:15:30.123+09:00 ERROR 1 --- [approval-request-service] [nio-8082-exec-1] "
        "c.e.e.a.ApprovalController               : Request failed",
    ),
    "Spring Boot 2 plain ERROR": fluent_bit_event(
        SERVICE,
        log_line="2026-11-22 10:15:30.123 ERROR 1 --- [nio-8082-exec-1] c.e.e.a.ApprovalController : Request failed",
    ),
}
NOT_ERROR_EVENTS = {
    "logback JSON INFO mentioning error": fluent_bit_event(
        SERVICE, app_json=logback_json("INFO", "retrying after a transient error; ERROR budget fine")
    ),
    "logback JSON WARN": fluent_bit_event(SERVICE, app_json=logback_json("WARN", "slow query")),
    "JSON level in lower case": fluent_bit_event(SERVICE, app_json=logback_json("error", "lower-case level")),
    "JSON with an error field only": fluent_bit_event(
        SERVICE, app_json=logback_json("INFO", "handled", error="ERROR", errorCode="ERROR_42")
    ),
    "plain INFO mentioning ERROR in the message": fluent_bit_event(
        SERVICE,
        log_line="2026-11-22 10:15:30.123  INFO 1 --- [main] c.e.e.a.Client : upstream said ERROR 503, retrying",
    ),
    "plain INFO mentioning error in lower case": fluent_bit_event(
        SERVICE, log_line="2026-11-22 10:15:30.123  INFO 1 --- [main] c.e.e.a.Client : error budget at 3 %"
    ),
    "plain WARN": fluent_bit_event(
        SERVICE, log_line="2026-11-22 10:15:30.123  WARN 1 --- [main] c.e.e.a.Client : falling back"
    ),
    "stack-trace continuation line": fluent_bit_event(
        SERVICE, log_line="\tat com.example.erp.approval.ApprovalService.persist(ApprovalService.java:42)"
    ),
    "exception header line": fluent_bit_event(
        SERVICE, log_line="java.lang.IllegalStateException: ERROR while persisting approval 42"
    ),
    "raw text event (not from Fluent Bit)": "2026-11-22 10:15:30.123 ERROR 1 --- [main] c.e.Foo : raw",
}


def transformation(spec: FilterSpec) -> dict:
    """The spec as the template's MetricTransformations entry (the construct renders exactly these fields)."""
    dims = [{"Key": k, "Value": v} for k, v in (spec.dimensions or {}).items()]
    return {"MetricValue": "1", "DefaultValue": spec.default_value, **({"Dimensions": dims} if dims else {})}


TOTAL, BY_CONTAINER = FILTERS


def added(spec: FilterSpec, event: str) -> list[tuple[dict[str, str], float]]:
    return datapoints(spec.pattern, transformation(spec), event)


def test_the_evaluator_emits_defaults_and_dimensions_as_documented():
    plain = {"MetricValue": "1", "DefaultValue": 0}
    assert datapoints('{ $.a = "x" }', plain, '{"a": "x"}') == [({}, 1.0)]
    assert datapoints('{ $.a = "x" }', plain, '{"a": "y"}') == [({}, 0.0)]
    dimensioned = {"MetricValue": "1", "Dimensions": [{"Key": "Who", "Value": "$.who.name"}]}
    assert datapoints('{ $.a = "x" }', dimensioned, '{"a": "x", "who": {"name": "n1"}}') == [({"Who": "n1"}, 1.0)]
    assert datapoints('{ $.a = "x" }', dimensioned, '{"a": "y", "who": {"name": "n1"}}') == []
    assert datapoints('{ $.a = "x" }', dimensioned, '{"a": "x"}') == []
    with pytest.raises(PatternError, match="default value"):
        datapoints('{ $.a = "x" }', {**dimensioned, "DefaultValue": 0}, "{}")


@pytest.mark.parametrize("name", sorted(ERROR_EVENTS))
def test_error_lines_count_in_the_total_and_under_their_own_container(name):
    event = ERROR_EVENTS[name]
    assert added(TOTAL, event) == [({}, 1.0)]
    assert added(BY_CONTAINER, event) == [({CONTAINER_DIMENSION: SERVICE}, 1.0)]


@pytest.mark.parametrize("name", sorted(NOT_ERROR_EVENTS))
def test_non_error_lines_count_nowhere(name):
    event = NOT_ERROR_EVENTS[name]
    assert added(TOTAL, event) == [({}, 0.0)]  # "no errors" is data for the alarm
    assert added(BY_CONTAINER, event) == []


def test_every_container_gets_its_own_series():
    for container in (SERVICE, OTHER, "svc-12"):
        event = fluent_bit_event(container, app_json=logback_json("ERROR", "boom"))
        assert added(BY_CONTAINER, event) == [({CONTAINER_DIMENSION: container}, 1.0)]


def test_kafka_log4j_errors_count_in_the_total_and_under_kafka_only():
    event = fluent_bit_event(
        "kafka", log_line="[2026-11-22 10:15:30,123] ERROR [Controller id=0] Unexpected error (kafka.controller)"
    )
    info = fluent_bit_event("kafka", log_line="[2026-11-22 10:15:30,123] INFO [KafkaServer id=0] started (error=none)")
    assert added(TOTAL, event) == [({}, 1.0)] and added(TOTAL, info) == [({}, 0.0)]
    assert added(BY_CONTAINER, event) == [({CONTAINER_DIMENSION: "kafka"}, 1.0)]
    assert added(BY_CONTAINER, info) == []


def test_filters_fit_cloudwatch_quotas_whatever_the_number_of_services():
    """A fixed set of filters: the count of services no longer multiplies regex filters on the log group."""
    assert len(FILTERS) <= MAX_REGEX_FILTERS_PER_LOG_GROUP
    assert len({spec.id for spec in FILTERS}) == len({spec.filter_name for spec in FILTERS}) == len(FILTERS)
    for spec in FILTERS:
        assert len(spec.pattern) <= MAX_PATTERN_LENGTH
        assert regex_count(spec.pattern) <= 2
        assert len(spec.dimensions or {}) <= MAX_DIMENSIONS
        assert spec.dimensions is None or spec.default_value is None  # CloudWatch refuses both
        matches(spec.pattern, "{}")  # parses, and the regex uses only characters CloudWatch accepts
    assert " " not in PLAIN_TEXT_ERROR_REGEX and "(" not in PLAIN_TEXT_ERROR_REGEX

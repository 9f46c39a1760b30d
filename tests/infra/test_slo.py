"""The API's SLOs (constructs_lib/observability/slo.py) as synthesized: metric filters that count the right access-log
lines, burn-rate math that uses each objective's budget, composite alarms that page only when both windows burn,
the dashboard's budget, and config that refuses a gateway route outside every objective."""

from __future__ import annotations

import json
import math
import re

import pytest

from config.sections import SloObjective
from constructs_lib.observability.slo import (
    MAX_PATTERN_LENGTH,
    MAX_REGEX_FILTERS_PER_LOG_GROUP,
    SLIS,
    SPEEDS,
    access_log_group_name,
    greater_than_regex,
    sli_filters,
)
from tests.config.test_config import assert_refused
from tests.conftest import resources_of
from tests.support.filter_pattern import datapoints, matches, regex_count

ENVS = ("dev", "prod")
HEALTH_PATH = "/api/health"


# --- templates --------------------------------------------------------------------------------------------------


def observability(stack_templates, env) -> dict:
    return stack_templates[f"erp-{env}-observability"]


def the_stage(stack_templates, env) -> dict:
    (stage,) = resources_of(stack_templates[f"erp-{env}-api"], "AWS::ApiGatewayV2::Stage").values()
    return stage["Properties"]


def access_log_group(stack_templates, env) -> str:
    """The name of the log group the stage writes its access log to, read from the Api template."""
    api = stack_templates[f"erp-{env}-api"]
    group_id = the_stage(stack_templates, env)["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    return api["Resources"][group_id]["Properties"]["LogGroupName"]


def slo_filters(stack_templates, env) -> dict[str, tuple[str, dict]]:
    """Metric name -> (pattern, transformation) of every filter on the access-log group."""
    found = {}
    for metric_filter in resources_of(observability(stack_templates, env), "AWS::Logs::MetricFilter").values():
        props = metric_filter["Properties"]
        if props["LogGroupName"] != access_log_group(stack_templates, env):
            continue
        (transformation,) = props["MetricTransformations"]
        found[transformation["MetricName"]] = (props["FilterPattern"], transformation)
    return found


def by_name(template: dict, resource_type: str, name_key: str) -> dict[str, tuple[str, dict]]:
    return {r["Properties"][name_key]: (k, r["Properties"]) for k, r in resources_of(template, resource_type).items()}


def topic_ref(template: dict, env: str) -> dict:
    (topic_id,) = [
        k
        for k, r in resources_of(template, "AWS::SNS::Topic").items()
        if r["Properties"].get("TopicName") == f"erp-{env}-alarms"
    ]
    return {"Ref": topic_id}


def flatten(value) -> str:
    """An Fn::Join of strings and references as one string, each reference written <logical id>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(flatten(p) for p in parts)
    if "Fn::GetAtt" in value:
        return f"<{value['Fn::GetAtt'][0]}>"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return "<?>"


# --- access-log lines in the stage's own format ------------------------------------------------------------------


def access_log_line(stack_templates, env, *, method="GET", path, status=200, latency=12) -> str:
    """One access-log event exactly as API Gateway writes it: the synthesized stage's format with every
    $context variable replaced by its value (as text, inside the format's quotes), "-" when it has none."""
    values = {
        "$context.httpMethod": method,
        "$context.path": path,
        "$context.routeKey": f"{method} {path}",
        "$context.status": str(status),
        "$context.responseLatency": str(latency),
        "$context.requestId": "Zq1x2AbCdEfGhIj=",
        "$context.requestTime": "22/Nov/2026:10:15:30 +0000",
        "$context.protocol": "HTTP/1.1",
    }
    line_format = the_stage(stack_templates, env)["AccessLogSettings"]["Format"]

    def value(found: re.Match) -> str:
        return json.dumps(values.get(found.group(0), "-"))[1:-1]

    line = re.sub(r"\$context(?:\.[A-Za-z0-9_]+)+", value, line_format)
    assert isinstance(json.loads(line), dict)
    return line


def counted(filters: dict[str, tuple[str, dict]], line: str) -> dict[str, float]:
    """Metric name -> what the line adds to it (every filter defaults to 0, so every metric gets a point)."""
    added = {}
    for name, (pattern, transformation) in filters.items():
        ((dimensions, value),) = datapoints(pattern, transformation, line)
        assert dimensions == {}
        added[name] = value
    return added


def concrete_path(route_path: str) -> str:
    """A request path that the route serves: path variables filled in."""
    return route_path.replace("{proxy+}", "reports/7").replace("{id}", "42")


def owner(objectives: list[SloObjective], path: str) -> str | None:
    owners = [o.name for o in objectives if any(path == p or path.startswith(p + "/") for p in o.paths)]
    assert len(owners) <= 1
    return owners[0] if owners else None


# --- filters -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_filters_sit_on_the_api_access_log_addressed_by_name(stack_templates, configs, env, cdk_out):
    """No export from the Api stack (its log group stays replaceable); the stack is ordered after it instead."""
    name = access_log_group(stack_templates, env)
    assert name == access_log_group_name(configs[env].resource_prefix) == f"/aws/apigateway/erp-{env}-http-api"
    filters = slo_filters(stack_templates, env)
    assert len(filters) == 3 * len(configs[env].observability.slo.objectives)
    # The template names the group literally: no Fn::ImportValue, no GetStackOutput.
    assert "ImportValue" not in json.dumps(
        [
            f["Properties"]["LogGroupName"]
            for f in resources_of(observability(stack_templates, env), "AWS::Logs::MetricFilter").values()
        ]
    )
    assert f"erp-{env}-api" in stack_dependencies(cdk_out, f"erp-{env}-observability")


def stack_dependencies(cdk_out, stack_name: str) -> set[str]:
    """Stack names this stack deploys after (the cloud assembly's manifests)."""
    names, deps = {}, {}
    for manifest_path in cdk_out.rglob("manifest.json"):
        for artifact_id, artifact in json.loads(manifest_path.read_text()).get("artifacts", {}).items():
            if artifact["type"] == "aws:cloudformation:stack":
                names[artifact_id] = artifact["properties"].get("stackName", artifact_id)
                deps[artifact_id] = artifact.get("dependencies", [])
    (own,) = [a for a, n in names.items() if n == stack_name]
    return {names[d] for d in deps[own] if d in names}


@pytest.mark.parametrize("env", ENVS)
def test_each_objective_has_three_count_filters_within_cloudwatch_quotas(stack_templates, configs, env):
    filters = slo_filters(stack_templates, env)
    for objective in configs[env].observability.slo.objectives:
        for kind in ("requests", "errors", "slow"):
            pattern, transformation = filters[f"{objective.name}-{kind}"]
            assert transformation["MetricNamespace"] == f"erp/{env}/slo"
            assert (transformation["MetricValue"], transformation["DefaultValue"]) == ("1", 0)
            assert not transformation.get("Dimensions")
            assert len(pattern) <= MAX_PATTERN_LENGTH == 1024  # CloudWatch: PutMetricFilter filterPattern
    with_regex = [name for name, (pattern, _) in filters.items() if regex_count(pattern)]
    assert len(with_regex) <= MAX_REGEX_FILTERS_PER_LOG_GROUP == 5


@pytest.mark.parametrize("env", ENVS)
def test_stage_format_is_what_the_filters_read(stack_templates, env):
    """The patterns compare strings and read path without a stage segment: that holds for this stage only."""
    stage = the_stage(stack_templates, env)
    assert stage["StageName"] == "$default"  # $context.path carries no /{stage} prefix
    log_format = json.loads(stage["AccessLogSettings"]["Format"])
    assert (log_format["path"], log_format["status"], log_format["responseLatency"]) == (
        "$context.path",
        "$context.status",
        "$context.responseLatency",
    )


@pytest.mark.parametrize("env", ENVS)
def test_every_gateway_route_is_counted_by_exactly_one_objective(stack_templates, configs, env):
    """Real route keys from the synthesized API, as real access-log lines: each request counts once, in the
    objective whose paths cover it; the health check and near-miss paths count nowhere."""
    objectives = configs[env].observability.slo.objectives
    filters = slo_filters(stack_templates, env)
    route_keys = [
        r["Properties"]["RouteKey"]
        for r in resources_of(stack_templates[f"erp-{env}-api"], "AWS::ApiGatewayV2::Route").values()
    ]
    assert len(route_keys) > 10
    for key in route_keys:
        method, route_path = key.split(" ", 1)
        path = concrete_path(route_path)
        added = counted(filters, access_log_line(stack_templates, env, method=method, path=path))
        requests = {name.removesuffix("-requests") for name, v in added.items() if name.endswith("-requests") and v}
        if route_path == HEALTH_PATH:
            assert requests == set(), key
            continue
        assert requests == {owner(objectives, route_path)}, key
        assert sum(added.values()) == 1, key  # a 200 in 12 ms is neither an error nor slow
    for near_miss in ("/api/approvalsx", "/api/processing-old/1", "/api", "/api/notification", "/approvals/1"):
        assert sum(counted(filters, access_log_line(stack_templates, env, path=near_miss)).values()) == 0, near_miss


@pytest.mark.parametrize("env", ENVS)
def test_5xx_and_slow_requests_are_bad_and_nothing_else_is(stack_templates, configs, env):
    filters = slo_filters(stack_templates, env)
    for objective in configs[env].observability.slo.objectives:
        path = objective.paths[-1] + "/42"
        name = objective.name
        limit = objective.p99_latency_ms

        def added(status=200, latency=12, path=path):
            line = access_log_line(stack_templates, env, method="POST", path=path, status=status, latency=latency)
            return {k: v for k, v in counted(filters, line).items() if v}

        for status in (500, 502, 503, 504):
            assert added(status=status) == {f"{name}-requests": 1, f"{name}-errors": 1}, status
        for status in (200, 201, 204, 301, 400, 401, 403, 404, 429):
            assert added(status=status) == {f"{name}-requests": 1}, status
        for latency in (limit + 1, limit + 10, 10 * limit, 29999 if limit < 29999 else 30001, 123456):
            assert added(latency=latency) == {f"{name}-requests": 1, f"{name}-slow": 1}, latency
        for latency in (0, 7, limit // 10, limit - 1, limit):
            assert added(latency=latency) == {f"{name}-requests": 1}, latency
        assert added(status=504, latency=limit * 3) == {f"{name}-requests": 1, f"{name}-errors": 1, f"{name}-slow": 1}


def test_a_filter_pattern_cloudwatch_would_refuse_fails_synth():
    paths = [f"/api/{'x' * 40}-{n}" for n in range(12)]
    with pytest.raises(
        ValueError, match=r"objectives\[wide\]: a filter pattern of \d+ characters; CloudWatch allows 1024"
    ):
        sli_filters(SloObjective(name="wide", paths=paths))


@pytest.mark.parametrize("threshold", [50, 99, 100, 999, 1000, 1234, 1999, 2000, 2500, 9999, 30000])
def test_latency_regex_matches_exactly_the_larger_numbers(threshold):
    regex = greater_than_regex(threshold)
    matches(f"{{ $.v = %{regex}% }}", "{}")  # CloudWatch's character set (PatternError otherwise)
    compiled = re.compile(regex)
    for number in [*range(0, 3 * threshold + 1000), 10**6, 10**9]:
        assert (compiled.search(str(number)) is not None) == (number > threshold), number


# --- alarms ------------------------------------------------------------------------------------------------------


class _Value(float):
    """A metric-math value: missing is NaN, x / 0 is NaN (CloudWatch drops such points)."""

    def __truediv__(self, other):
        return _Value(math.nan if other == 0 or math.isnan(other) else float(self) / float(other))

    def __rtruediv__(self, other):
        return _Value(other).__truediv__(self)

    def __mul__(self, other):
        return _Value(float(self) * float(other))

    __rmul__ = __mul__

    def __sub__(self, other):
        return _Value(float(self) - float(other))

    def __rsub__(self, other):
        return _Value(float(other) - float(self))


def evaluate(expression: str, values: dict[str, float | None]) -> float:
    """CloudWatch metric math (the IF/FILL subset used here) for one data point."""
    assert re.fullmatch(r"[A-Za-z0-9_ .,()*/+<>=-]+", expression), expression

    def fill(value, default):
        return _Value(default) if math.isnan(value) else value

    def if_(condition, then, otherwise):
        return then if condition else otherwise

    scope = {k: _Value(math.nan if v is None else v) for k, v in values.items()}
    return float(eval(expression.replace("IF(", "if_(").replace("FILL(", "fill("), {"if_": if_, "fill": fill}, scope))


def burn_of(props: dict, requests: float | None, bad: float | None) -> float:
    """The alarm's expression with the objective's request count and its bad count (errors or slow)."""
    (expression,) = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
    names = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
    values = {i: requests if n.endswith("-requests") else bad for i, n in names.items()}
    return evaluate(expression, values)


@pytest.mark.parametrize("env", ENVS)
def test_burn_rate_composites_page_when_both_windows_burn(stack_templates, configs, env):
    config = configs[env]
    slo = config.observability.slo
    template = observability(stack_templates, env)
    topic = topic_ref(template, env)
    composites = by_name(template, "AWS::CloudWatch::CompositeAlarm", "AlarmName")
    metric_alarms = by_name(template, "AWS::CloudWatch::Alarm", "AlarmName")
    expected = set()
    for objective in slo.objectives:
        for sli in SLIS:
            budget = (100 - objective.availability_pct) / 100 if sli == "availability" else 1 - 0.99
            bad_metric = f"{objective.name}-{'errors' if sli == 'availability' else 'slow'}"
            for speed in SPEEDS:
                window = getattr(slo, speed)
                name = f"erp-{env}-slo-{objective.name}-{sli}-{speed}"
                expected.add(name)
                _, composite = composites[name]
                assert composite["AlarmActions"] == [topic] and composite["OKActions"] == [topic], name
                assert composite.get("ActionsEnabled", True) is True
                long_id, long_alarm = metric_alarms[f"{name}-long"]
                short_id, short_alarm = metric_alarms[f"{name}-short"]
                assert flatten(composite["AlarmRule"]) == f'(ALARM("<{long_id}>") AND ALARM("<{short_id}>"))', name
                for alarm, minutes in ((long_alarm, window.long_minutes), (short_alarm, window.short_minutes)):
                    where = f"{alarm['AlarmName']}"
                    # No actions on the windows: one incident pages once, through the composite.
                    for actions in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                        assert not alarm.get(actions), where
                    assert alarm["Threshold"] == window.burn_rate, where
                    assert alarm["ComparisonOperator"] == "GreaterThanThreshold", where
                    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1), where
                    assert alarm["TreatMissingData"] == "notBreaching", where
                    stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
                    assert {s["Period"] for s in stats} == {minutes * 60}, where  # one data point = the window
                    assert {(s["Metric"]["Namespace"], s["Metric"]["MetricName"], s["Stat"]) for s in stats} == {
                        (f"erp/{env}/slo", f"{objective.name}-requests", "Sum"),
                        (f"erp/{env}/slo", bad_metric, "Sum"),
                    }, where
                    # Burn = (bad / requests) / (1 - objective): the budget spent at exactly its even pace is 1.
                    assert burn_of(alarm, 10_000, 10_000 * budget) == pytest.approx(1), where
                    at_rate = 10_000 * budget * window.burn_rate
                    assert burn_of(alarm, 10_000, at_rate * 1.01) > window.burn_rate, where
                    assert burn_of(alarm, 10_000, at_rate * 0.99) <= window.burn_rate, where
                    # Too few requests to judge: all of them failing burns nothing; at the minimum it does.
                    assert burn_of(alarm, slo.min_requests - 1, slo.min_requests - 1) == 0, where
                    assert burn_of(alarm, slo.min_requests, slo.min_requests) > window.burn_rate, where
                    assert burn_of(alarm, None, None) == 0, where
                    assert burn_of(alarm, 10_000, None) == 0, where
    assert set(composites) >= expected
    windows = {n for n in metric_alarms if n.startswith(f"erp-{env}-slo-")}
    assert windows == {f"{n}-{w}" for n in expected for w in ("long", "short")}
    # The raw thresholds the burn rates replace are gone.
    assert not {f"erp-{env}-api-5xx-rate", f"erp-{env}-api-p99-latency"} & set(metric_alarms)


def dashboard_body(template: dict) -> dict:
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    return json.loads(flatten(dashboard["Properties"]["DashboardBody"]))


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_shows_the_budget_left_the_burn_rates_and_every_slo_alarm(stack_templates, configs, env):
    slo = configs[env].observability.slo
    template = observability(stack_templates, env)
    widgets = dashboard_body(template)["widgets"]
    shown_alarms = {a for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]}
    for logical_id in [
        *resources_of(template, "AWS::CloudWatch::CompositeAlarm"),
        *resources_of(template, "AWS::CloudWatch::Alarm"),
    ]:
        assert f"<{logical_id}>" in shown_alarms, logical_id
    for objective in slo.objectives:
        (budget,) = [
            w["properties"]
            for w in widgets
            if w["properties"].get("title", "").startswith(f"SLO {objective.name}: error budget")
        ]
        assert (budget["view"], budget["start"], budget["setPeriodToTimeRange"]) == (
            "singleValue",
            f"-P{slo.period_days}D",
            True,
        )
        expressions = {m[0]["label"]: m[0]["expression"] for m in budget["metrics"] if "expression" in m[0]}
        ids = {m[-1]["id"]: m[1] for m in budget["metrics"] if "expression" not in m[0]}
        assert set(expressions) == {f"{objective.name} {sli} budget left (%)" for sli in SLIS}
        for sli in SLIS:
            budget_share = (100 - objective.availability_pct) / 100 if sli == "availability" else 0.01
            expression = expressions[f"{objective.name} {sli} budget left (%)"]
            used = {i for i in ids if re.search(rf"\b{i}\b", expression)}
            # A quarter of the budget spent leaves 75 %; none spent, or no traffic, leaves 100 %.
            values = {i: 10_000 if ids[i].endswith("-requests") else 2_500 * budget_share for i in used}
            assert evaluate(expression, values) == pytest.approx(75)
            assert evaluate(expression, {i: None for i in used}) == 100
        (burns,) = [
            w["properties"]
            for w in widgets
            if w["properties"].get("title", "").startswith(f"SLO {objective.name}: burn rate")
        ]
        assert {a["value"] for a in burns["annotations"]["horizontal"]} == {slo.fast.burn_rate, slo.slow.burn_rate}
        periods = {m[-1].get("period") for m in burns["metrics"] if "expression" not in m[0]}
        assert periods == {slo.fast.long_minutes * 60, slo.slow.long_minutes * 60}


# --- config ------------------------------------------------------------------------------------------------------


SERVICES_ROUTES = [
    {"path": "/api/notifications", "rewrite": "/notifications", "methods": ["GET"]},
    {"path": "/api/reports", "rewrite": "/reports"},
]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        # A new route nobody put in an objective: no burn-rate alarm would watch it.
        ("services.2.routes", SERVICES_ROUTES, "observability.slo.objectives: route /api/reports is in no objective"),
        # A catch-all next to a specific objective counts /api/approvals twice.
        (
            "observability.slo",
            {"objectives": [{"name": "all", "paths": ["/api"]}, {"name": "approvals", "paths": ["/api/approvals"]}]},
            "observability.slo.objectives: route /api/approvals is in all and approvals",
        ),
        # A typo: the objective would watch a path nothing serves.
        (
            "observability.slo",
            {"objectives": [{"name": "all", "paths": ["/api/approval", "/api"]}]},
            "observability.slo.objectives[all]: /api/approval is neither a configured route nor a prefix of one",
        ),
        (
            "observability.slo",
            {"objectives": [{"name": f"o{n}", "paths": [f"/api/x{n}"]} for n in range(6)]},
            "observability.slo.objectives: at most 5",
        ),
    ],
)
def test_config_refuses_a_route_outside_exactly_one_objective(config_dir, field, value, expected):
    assert_refused(config_dir, "dev", field, value, expected)

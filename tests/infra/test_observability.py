"""Observability over the synthesized templates: alarms on every tier that page and all-clear, logs that expire,
error counts that count the right lines, a topic only CloudWatch and EventBridge may publish to, traces, a dashboard."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from constructs_lib.observability.log_metrics import CONTAINER_DIMENSION, TOTAL_METRIC
from constructs_lib.observability.slo import access_log_group_name
from tests.conftest import resources_of
from tests.support.filter_pattern import datapoints
from tests.unit.test_metric_filter import ERROR_EVENTS, NOT_ERROR_EVENTS, fluent_bit_event, logback_json

ENVS = ("dev", "prod")
PUBLISHERS = {"cloudwatch.amazonaws.com", "events.amazonaws.com"}


def env_stacks(stack_templates, env):
    return {name: t for name, t in stack_templates.items() if name.startswith(f"erp-{env}-")}


def observability(stack_templates, env) -> dict:
    return stack_templates[f"erp-{env}-observability"]


def the_one(template: dict, resource_type: str) -> tuple[str, dict]:
    found = resources_of(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def topic_id(template: dict, env: str) -> str:
    topics = {k: r for k, r in resources_of(template, "AWS::SNS::Topic").items()}
    named = [k for k, r in topics.items() if r["Properties"].get("TopicName") == f"erp-{env}-alarms"]
    assert len(named) == 1, f"no SNS topic named erp-{env}-alarms"
    return named[0]


def alarms_by_name(template: dict) -> dict[str, dict]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"] for r in resources_of(template, "AWS::CloudWatch::Alarm").values()
    }


# --- alarms -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_of_the_environment_pages_and_all_clears_through_the_topic(stack_templates, env):
    topic_ref = {"Ref": topic_id(observability(stack_templates, env), env)}
    checked = 0
    for stack_name, template in env_stacks(stack_templates, env).items():
        alarms = {
            **resources_of(template, "AWS::CloudWatch::Alarm"),
            **resources_of(template, "AWS::CloudWatch::CompositeAlarm"),
        }
        for logical_id, alarm in alarms.items():
            props = alarm["Properties"]
            where = f"{stack_name}/{logical_id} ({props.get('AlarmName')})"
            if re.fullmatch(rf"erp-{env}-slo-[a-z0-9-]+-(long|short)", props.get("AlarmName", "")):
                # An SLO burn-rate window pages only through its composite alarm (tests/infra/test_slo.py).
                assert not props.get("AlarmActions") and not props.get("OKActions"), f"{where}: pages twice"
                continue
            # Only the Observability stack can Ref the topic; an alarm elsewhere must move there.
            assert props.get("AlarmActions") == [topic_ref], f"{where}: ALARM does not notify erp-{env}-alarms"
            assert props.get("OKActions") == [topic_ref], f"{where}: OK does not notify erp-{env}-alarms"
            assert props.get("ActionsEnabled", True) is True, where
            assert re.fullmatch(rf"erp-{env}-[a-z0-9-]+", props.get("AlarmName", "")), f"{where}: not erp-{env}-*"
            checked += 1
    assert checked >= 15


def expected_alarms(config) -> dict[str, dict]:
    """Name -> what must hold: threshold, comparison, period (s), missing-data treatment."""
    t = config.observability.thresholds
    gte, lt = "GreaterThanOrEqualToThreshold", "LessThanThreshold"
    quiet = "notBreaching"
    expected = {
        "high-error-rate": (t.application_errors_5m, gte, 300, quiet),
        "lambda-error-rate": (t.lambda_error_rate_pct, gte, 300, quiet),
        "lambda-throttles": (t.lambda_throttles_5m, gte, 300, quiet),
        "rds-cpu": (t.rds_cpu_pct, gte, 300, quiet),
        "rds-free-storage": (t.rds_free_storage_gib * 1024**3, lt, 300, "ignore"),
        "rds-connections": (t.rds_connections, gte, 300, quiet),
        "cache-cpu": (t.cache_cpu_pct, gte, 300, quiet),
        "cache-engine-cpu": (t.cache_cpu_pct, gte, 300, quiet),
        "cache-memory": (t.cache_memory_pct, gte, 300, quiet),
        "cache-evictions": (t.cache_evictions_5m, gte, 300, quiet),
        # The drift job (Workloads stack) watched by its fixed function name.
        "drift-check-failed": (1, gte, 300, quiet),
    }
    if config.observability.container_insights:
        expected["pod-restarts"] = (t.pod_restarts_10m, gte, 600, quiet)
    for service in config.services:
        expected[f"{service.name}-unhealthy-hosts"] = (t.nlb_unhealthy_hosts, gte, 60, quiet)
        expected[f"{service.name}-no-healthy-hosts"] = (1, lt, 60, "breaching")
    return {
        f"erp-{config.name}-{name}": dict(zip(("threshold", "comparison", "period", "missing"), v, strict=True))
        for name, v in expected.items()
    }


def period_of(props: dict) -> int:
    if "Period" in props:
        return props["Period"]
    # Metric stats carry their period; a Metrics Insights query (no sub-metrics) carries its own.
    periods = {m["MetricStat"]["Period"] if "MetricStat" in m else m.get("Period") for m in props["Metrics"]} - {None}
    assert len(periods) == 1, props["Metrics"]
    return periods.pop()


@pytest.mark.parametrize("env", ENVS)
def test_alarms_exist_with_configured_thresholds(stack_templates, configs, env):
    alarms = alarms_by_name(observability(stack_templates, env))
    # The SLO burn-rate windows are checked in tests/infra/test_slo.py, Kafka's in tests/infra/test_kafka_health.py,
    # the restore drill's in tests/infra/test_restore_drill.py.
    skipped = (f"erp-{env}-slo-", f"erp-{env}-kafka-", f"erp-{env}-restore-drill-")
    alarms = {name: props for name, props in alarms.items() if not name.startswith(skipped)}
    expected = expected_alarms(configs[env])
    assert set(alarms) == set(expected)
    for name, want in expected.items():
        props = alarms[name]
        assert props["Threshold"] == pytest.approx(want["threshold"]), name
        assert props["ComparisonOperator"] == want["comparison"], name
        assert props["TreatMissingData"] == want["missing"], name
        assert period_of(props) == want["period"], name
        assert props.get("AlarmDescription"), name


@pytest.mark.parametrize("env", ENVS)
def test_legacy_alarm_names_keep_their_meaning(stack_templates, configs, env):
    config = configs[env]
    alarms = alarms_by_name(observability(stack_templates, env))
    errors = alarms[f"erp-{env}-high-error-rate"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        f"erp/{env}/application",
        TOTAL_METRIC,
        "Sum",
    )
    assert (errors["Threshold"], errors["Period"]) == (10, 300)

    lambda_rate = alarms[f"erp-{env}-lambda-error-rate"]
    expression = next(m for m in lambda_rate["Metrics"] if "Expression" in m)["Expression"]
    by_id = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in lambda_rate["Metrics"] if "MetricStat" in m}
    assert by_id == {"part": "Errors", "whole": "Invocations"} and "100 * part / whole" in expression
    assert lambda_rate["Threshold"] == 5

    restarts = alarms.get(f"erp-{env}-pod-restarts")
    if not config.observability.container_insights:
        assert restarts is None  # no Container Insights, no restart metric: the alarm is not created
        return
    assert restarts["Threshold"] == 3
    # One Metrics Insights query over every pod of the namespace: no 10-metric cap, new pods included.
    (query,) = restarts["Metrics"]
    assert (query["Period"], query["ReturnData"]) == (600, True)
    assert query["Expression"] == (
        "SELECT SUM(pod_number_of_container_restarts) FROM SCHEMA(ContainerInsights, ClusterName, Namespace, PodName) "
        f"WHERE ClusterName = '{config.cluster_name}' AND Namespace = '{config.namespace}'"
    )


@pytest.mark.parametrize("env", ENVS)
def test_cache_alarms_watch_every_node_of_the_replication_group(stack_templates, configs, env):
    props = alarms_by_name(observability(stack_templates, env))[f"erp-{env}-cache-memory"]
    nodes = [m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in props["Metrics"] if "MetricStat" in m]
    assert len(nodes) == configs[env].cache.replicas + 1
    suffixes = [node["Fn::Join"][1][-1] for node in nodes]
    assert suffixes == [f"-{n:03d}" for n in range(1, len(nodes) + 1)]


# --- logs ---------------------------------------------------------------------------------------------------


def test_every_log_group_in_every_stack_expires(stack_templates):
    checked = 0
    for stack_name, template in stack_templates.items():
        for logical_id, group in resources_of(template, "AWS::Logs::LogGroup").items():
            assert group["Properties"].get("RetentionInDays"), f"{stack_name}/{logical_id} never expires"
            checked += 1
    assert checked >= 2


def application_log_group(template: dict, config) -> tuple[str, dict]:
    """The one group Fluent Bit writes to (the stack also holds the Kafka collector's EMF group)."""
    (found,) = [
        (logical_id, group)
        for logical_id, group in resources_of(template, "AWS::Logs::LogGroup").items()
        if group["Properties"].get("LogGroupName") == config.application_log_group
    ]
    return found


@pytest.mark.parametrize("env", ENVS)
def test_application_log_group_has_the_one_name_and_configured_retention(stack_templates, configs, env):
    _, group = application_log_group(observability(stack_templates, env), configs[env])
    assert (
        group["Properties"]["LogGroupName"] == configs[env].application_log_group == f"/aws/eks/erp-{env}/application"
    )
    assert group["Properties"]["RetentionInDays"] == configs[env].observability.log_retention_days


@pytest.mark.parametrize("env", ENVS)
def test_deployed_filters_count_the_right_lines(stack_templates, configs, env):
    """The filters as synthesized (not as written in Python) against real-shaped Fluent Bit events."""
    template = observability(stack_templates, env)
    log_group_id, _ = application_log_group(template, configs[env])
    filters = []
    for metric_filter in resources_of(template, "AWS::Logs::MetricFilter").values():
        props = metric_filter["Properties"]
        if props["LogGroupName"] == access_log_group_name(configs[env].resource_prefix):
            continue  # the SLO filters on the API's access log: tests/infra/test_slo.py
        assert props["LogGroupName"] == {"Ref": log_group_id}
        (transformation,) = props["MetricTransformations"]
        assert (transformation["MetricName"], transformation["MetricNamespace"]) == (
            TOTAL_METRIC,
            f"erp/{env}/application",
        )
        filters.append((props["FilterPattern"], transformation))
    assert len(filters) == 2  # whatever the number of services

    def series(event: str) -> list:
        """Every (dimensions, value) data point the event adds, across the filters."""
        return sorted((sorted(d.items()), v) for pattern, t in filters for d, v in datapoints(pattern, t, event))

    for service in (s.name for s in configs[env].services):
        own = [([], 1.0), ([(CONTAINER_DIMENSION, service)], 1.0)]
        assert series(fluent_bit_event(service, app_json=logback_json("ERROR", "boom"))) == own
        plain = "2026-11-22 10:15:30.123 ERROR 1 --- [main] c.e.Foo : boom"
        assert series(fluent_bit_event(service, log_line=plain)) == own
        assert series(fluent_bit_event(service, app_json=logback_json("INFO", "an error was retried"))) == [([], 0.0)]
    for event in ERROR_EVENTS.values():
        assert ([], 1.0) in series(event)
    for event in NOT_ERROR_EVENTS.values():
        assert series(event) == [([], 0.0)]


# --- topic --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_alarm_topic_is_encrypted_with_its_own_rotating_key(stack_templates, configs, env):
    template = observability(stack_templates, env)
    topic = template["Resources"][topic_id(template, env)]["Properties"]
    key_id, key = the_one(template, "AWS::KMS::Key")
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    grants = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s.get("Principal", {})]
    assert len(grants) == 1
    assert set(grants[0]["Principal"]["Service"]) == PUBLISHERS
    assert set(grants[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert grants[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": configs[env].account}}


@pytest.mark.parametrize("env", ENVS)
def test_only_cloudwatch_and_eventbridge_of_this_account_may_publish_over_tls(stack_templates, configs, env):
    template = observability(stack_templates, env)
    _, policy = the_one(template, "AWS::SNS::TopicPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows, "no publisher allowed"
    for statement in allows:
        services = statement["Principal"]["Service"]
        assert set([services] if isinstance(services, str) else services) <= PUBLISHERS, statement
        assert statement["Action"] == "sns:Publish"
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": configs[env].account}}
    assert {p for s in allows for p in s["Principal"]["Service"]} == PUBLISHERS
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


@pytest.mark.parametrize("env", ENVS)
def test_alarm_emails_are_subscribed(stack_templates, configs, env):
    template = observability(stack_templates, env)
    subscribed = {
        s["Properties"]["Endpoint"]
        for s in resources_of(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    }
    assert subscribed == set(configs[env].observability.alarm_emails)
    if configs[env].production:
        assert subscribed


# --- traces and dashboard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_xray_sampling_rule_and_group_cover_the_services(stack_templates, configs, env):
    config = configs[env]
    template = observability(stack_templates, env)
    rules = {
        r["Properties"]["SamplingRule"]["RuleName"]: r["Properties"]["SamplingRule"]
        for r in resources_of(template, "AWS::XRay::SamplingRule").values()
    }
    services_rule = rules[f"erp-{env}-services"]
    assert services_rule["FixedRate"] == config.observability.xray_sampling_rate
    health_rule = rules[f"erp-{env}-health"]
    assert (health_rule["FixedRate"], health_rule["ReservoirSize"]) == (0, 0)
    assert health_rule["Priority"] < services_rule["Priority"]  # evaluated first
    for service in config.services:
        assert fnmatch.fnmatchcase(service.name, services_rule["ServiceName"])
        if service.health.type == "http":
            assert fnmatch.fnmatchcase(service.health.path, health_rule["URLPath"])
    _, group = the_one(template, "AWS::XRay::Group")
    assert group["Properties"]["GroupName"] == f"erp-{env}"
    expression = json.dumps(group["Properties"]["FilterExpression"])
    for service in config.services:
        assert f'service(\\"{service.name}\\")' in expression


@pytest.mark.parametrize("env", ENVS)
def test_employee_lambda_is_actively_traced(stack_templates, env):
    """The function behind /api/employees, found through the gateway's integration (never skipped: a renamed or
    moved function fails here). Its Powertools service name is what its traces, logs and metrics are filed under
    (the handler tests and tools/bench_handler.py use it too): renaming it must be done here on purpose."""
    api = stack_templates[f"erp-{env}-api"]
    (route,) = [
        r["Properties"]
        for r in resources_of(api, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["RouteKey"] == "ANY /api/employees"
    ]
    integration = api["Resources"][route["Target"]["Fn::Join"][1][1]["Ref"]]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    function_id, attribute = integration["IntegrationUri"]["Fn::GetAtt"]
    assert attribute == "Arn"
    function = api["Resources"][function_id]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "employee-service"
    assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
    # And its traces are in the environment's X-Ray group, by the function's name.
    _, group = the_one(observability(stack_templates, env), "AWS::XRay::Group")
    assert function_id in json.dumps(group["Properties"]["FilterExpression"])


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_is_named_and_shows_every_alarm(stack_templates, env):
    template = observability(stack_templates, env)
    _, dashboard = the_one(template, "AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == f"erp-{env}"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for logical_id in resources_of(template, "AWS::CloudWatch::Alarm"):
        assert logical_id in body, f"{logical_id} missing from the alarm status widget"
    for needle in ("AWS/ApiGateway", "AWS/Lambda", "AWS/RDS", "AWS/ElastiCache", "AWS/NetworkELB", "ContainerInsights"):
        assert needle in body, needle
    assert "kafka-0" in body


@pytest.mark.parametrize("env", ENVS)
def test_no_other_stack_reads_the_observability_stack(stack_templates, env):
    """References (exports, weak stack outputs) name their producer stack; Workloads is only ordered after it."""
    producer = f"erp-{env}-observability"

    def references(node) -> list[str]:
        """Stack names of Fn::ImportValue exports and Fn::GetStackOutput (the drift job NAMES every stack: no reference)."""
        found = []
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Fn::ImportValue":
                    found.append(json.dumps(value))
                elif key == "Fn::GetStackOutput":
                    found.append(json.dumps(value.get("StackName")))
                found += references(value)
        elif isinstance(node, list):
            for item in node:
                found += references(item)
        return found

    checked = 0
    for stack_name, template in env_stacks(stack_templates, env).items():
        if stack_name != producer:
            found = references(template)
            checked += len(found)
            assert not [r for r in found if producer in r], f"{stack_name} references Observability"
    assert checked, "no cross-stack reference at all: the check reads nothing"

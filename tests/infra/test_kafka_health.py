"""Issue 20 item 2: the Kafka alarms, read from the synthesized Observability stacks.

Each alarm's metrics must be ones the kafka-metrics collector really emits: the EMF names and dimension sets are
computed from the rendered collector config (tests/charts/test_kafka_metrics.py runs its pipeline), never copied.
The lag alarm's metric math is evaluated on minute-by-minute lag histories the way CloudWatch evaluates an alarm
(M of N datapoints, missing data per TreatMissingData).
"""

from __future__ import annotations

import json
import re

import pytest

from k8s_charts import names
from k8s_charts.kafka import replication_factor
from k8s_charts.kafka_metrics import data_claims
from tests.charts.conftest import build
from tests.charts.test_kafka_metrics import collector_config, emf_metrics, scrapes
from tests.conftest import resources_of

ENVS = ("dev", "prod")


def observability(stack_templates, env: str) -> dict:
    return stack_templates[f"erp-{env}-observability"]


def kafka_alarms(stack_templates, env: str) -> dict[str, dict]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"]
        for r in resources_of(observability(stack_templates, env), "AWS::CloudWatch::Alarm").values()
        if r["Properties"]["AlarmName"].startswith(f"erp-{env}-kafka-")
    }


def metric_stats(props: dict) -> list[tuple[str, str, tuple, str, int]]:
    """(namespace, name, ((dimension, value), ...), stat, period) of every metric an alarm reads."""
    if "MetricName" in props:
        dims = tuple(sorted((d["Name"], d["Value"]) for d in props.get("Dimensions", [])))
        return [(props["Namespace"], props["MetricName"], dims, props["Statistic"], props["Period"])]
    found = []
    for entry in props["Metrics"]:
        if "MetricStat" in entry:
            stat = entry["MetricStat"]
            metric = stat["Metric"]
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
            found.append((metric["Namespace"], metric["MetricName"], dims, stat["Stat"], stat["Period"]))
    return found


def expression(props: dict) -> str:
    (returned,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    return returned["Expression"]


def expected(config) -> dict[str, dict]:
    """Alarm name -> threshold, comparison, period (s), periods (N of N), missing data."""
    health, replicas = config.observability.kafka, config.kafka.replicas
    silence = "breaching" if config.schedule is None else "notBreaching"
    alarms = {
        f"kafka-consumer-lag-{group}": (
            1,
            "GreaterThanOrEqualToThreshold",
            60,
            health.lag_growing_minutes,
            "notBreaching",
        )
        for group in health.consumer_groups
    }
    alarms["kafka-offline-partitions"] = (0, "GreaterThanThreshold", 60, 3, "notBreaching")
    alarms["kafka-brokers-down"] = (replicas, "LessThanThreshold", 60, 5, silence)
    alarms["kafka-volume-used"] = (health.disk_used_pct, "GreaterThanThreshold", 300, 3, silence)
    if replication_factor(replicas) > 1:
        alarms["kafka-under-replicated-partitions"] = (0, "GreaterThanThreshold", 60, 5, "notBreaching")
    keys = ("threshold", "comparison", "period", "periods", "missing")
    return {f"erp-{config.name}-{name}": dict(zip(keys, v, strict=True)) for name, v in alarms.items()}


@pytest.mark.parametrize("env", ENVS)
def test_kafka_alarms_exist_with_the_configured_thresholds_and_windows(stack_templates, configs, env):
    alarms = kafka_alarms(stack_templates, env)
    want = expected(configs[env])
    assert set(alarms) == set(want)
    for name, w in want.items():
        props = alarms[name]
        assert props["Threshold"] == pytest.approx(w["threshold"]), name
        assert props["ComparisonOperator"] == w["comparison"], name
        assert props["EvaluationPeriods"] == props["DatapointsToAlarm"] == w["periods"], name
        assert props["TreatMissingData"] == w["missing"], name
        assert {period for *_, period in metric_stats(props)} == {w["period"]}, name
        assert props["AlarmDescription"], name


def test_no_under_replication_alarm_with_one_broker_and_one_with_three(stack_templates, configs):
    """Dev has one broker: each partition's one replica is its leader and its whole ISR, nothing to alarm on."""
    assert configs["dev"].kafka.replicas == 1 and configs["prod"].kafka.replicas == 3
    assert "erp-dev-kafka-under-replicated-partitions" not in kafka_alarms(stack_templates, "dev")
    prod = kafka_alarms(stack_templates, "prod")["erp-prod-kafka-under-replicated-partitions"]
    assert [(name, stat) for _, name, _, stat, _ in metric_stats(prod)] == [
        ("kafka_under_replicated_partitions", "Maximum")
    ]


@pytest.mark.parametrize("env", ENVS)
def test_every_kafka_alarm_pages_and_all_clears_on_the_alarm_topic(stack_templates, env):
    template = observability(stack_templates, env)
    (topic,) = [
        k
        for k, r in resources_of(template, "AWS::SNS::Topic").items()
        if r["Properties"].get("TopicName") == f"erp-{env}-alarms"
    ]
    for name, props in kafka_alarms(stack_templates, env).items():
        assert props["AlarmActions"] == props["OKActions"] == [{"Ref": topic}], name
        assert props.get("ActionsEnabled", True) is True, name


@pytest.mark.parametrize("env", ENVS)
def test_every_metric_an_alarm_reads_is_one_the_collector_emits(stack_templates, env):
    built = build(env)
    emitted = emf_metrics(collector_config(built), scrapes(built))
    namespace = collector_config(built)["exporters"]["awsemf"]["namespace"]
    read = set()
    for name, props in kafka_alarms(stack_templates, env).items():
        for alarm_namespace, metric, dims, _, _ in metric_stats(props):
            assert alarm_namespace == namespace == names.kafka_metrics_namespace(built.env), name
            assert (metric, dims) in emitted, f"{name}: {metric} {dims} is not emitted by the collector"
            read.add((metric, dims))
    # And every series the collector pays for is read by some alarm (with one broker, under-replication is only
    # graphed: it cannot happen).
    unread = set(emitted) - read
    assert unread == ({("kafka_under_replicated_partitions", ())} if built.env.kafka.replicas == 1 else set())


@pytest.mark.parametrize("env", ENVS)
def test_volume_alarm_reads_every_brokers_claim_as_a_percentage(stack_templates, configs, env):
    props = kafka_alarms(stack_templates, env)[f"erp-{env}-kafka-volume-used"]
    by_id = {m["Id"]: m for m in props["Metrics"]}
    claims = data_claims(configs[env])
    percentages = re.fullmatch(r"MAX\(\[(.*)\]\)", expression(props)).group(1).split(", ")
    assert len(percentages) == len(claims) == configs[env].kafka.replicas
    seen = []
    for pct in percentages:
        used, capacity = re.fullmatch(r"100 \* (\w+) / (\w+)", by_id[pct]["Expression"]).groups()
        u, c = (by_id[i]["MetricStat"]["Metric"] for i in (used, capacity))
        assert (u["MetricName"], c["MetricName"]) == (
            "kubelet_volume_stats_used_bytes",
            "kubelet_volume_stats_capacity_bytes",
        )
        assert u["Dimensions"] == c["Dimensions"]
        seen.append(u["Dimensions"][0]["Value"])
    assert seen == claims


@pytest.mark.parametrize("env", ENVS)
def test_offline_partitions_are_partitions_without_a_leader(stack_templates, env):
    props = kafka_alarms(stack_templates, env)[f"erp-{env}-kafka-offline-partitions"]
    by_id = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
    assert expression(props) == "partitions - FILL(led, 0)"
    assert by_id == {"partitions": "kafka_partitions", "led": "kafka_partitions_with_leader"}


# --- the lag alarm, evaluated -------------------------------------------------------------------------------


def lag_points(props: dict, lag: list[float | None]) -> list[float | None]:
    """The alarm's expression on one value per minute (None = no data), as CloudWatch computes it."""
    match = re.fullmatch(r"IF\(\(lag > (\d+)\) AND \(FILL\(RATE\(lag\), 0\) >= 0\), 1, 0\)", expression(props))
    assert match, expression(props)
    threshold = int(match.group(1))
    points: list[float | None] = []
    previous = None
    for value in lag:
        if value is None:
            points.append(None)
            continue
        rate = 0.0 if previous is None else (value - previous) / 60  # RATE: per second since the previous point
        previous = value
        points.append(1.0 if value > threshold and rate >= 0 else 0.0)
    return points


def alarms_on(props: dict, lag: list[float | None]) -> bool:
    """N of N over the last N minutes; missing points count as the alarm's TreatMissingData says."""
    window = lag_points(props, lag)[-props["EvaluationPeriods"] :]
    missing_breaches = props["TreatMissingData"] == "breaching"
    breaching = sum(
        1 for p in window if (p is None and missing_breaches) or (p is not None and p >= props["Threshold"])
    )
    return breaching >= props["DatapointsToAlarm"]


@pytest.mark.parametrize("env", ENVS)
def test_lag_alarm_fires_for_a_stuck_or_falling_behind_consumer_only(stack_templates, configs, env):
    health = configs[env].observability.kafka
    n, over = health.lag_growing_minutes, health.lag_messages + 1
    for group in health.consumer_groups:
        props = kafka_alarms(stack_templates, env)[f"erp-{env}-kafka-consumer-lag-{group}"]
        assert metric_stats(props) == [
            (
                names.kafka_metrics_namespace(configs[env]),
                "kafka_consumergroup_lag_sum",
                (("consumergroup", group),),
                "Minimum",
                60,
            )
        ]
        # Stuck while approvals trickle in: flat most minutes, one more now and then.
        assert alarms_on(props, [over + i // 4 for i in range(n)])
        # Falling behind: rising every minute.
        assert alarms_on(props, [over + 10 * i for i in range(n)])
        # Not yet long enough.
        assert not alarms_on(props, [0.0] + [over] * (n - 1))
        # Working through a backlog: lag falls in some minute of the window.
        assert not alarms_on(props, [over + 50] * (n // 2) + [over + 40] + [over + 40] * (n - n // 2 - 1))
        # Below the threshold however long it grows.
        assert not alarms_on(props, [health.lag_messages - n + i for i in range(n)])
        # No commits (no data): quiet.
        assert not alarms_on(props, [None] * n)


# --- where the metrics are written --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_the_collectors_log_group_exists_with_the_environments_retention(stack_templates, configs, env):
    groups = [
        r["Properties"]
        for r in resources_of(observability(stack_templates, env), "AWS::Logs::LogGroup").values()
        if r["Properties"].get("LogGroupName") == names.kafka_metrics_log_group(configs[env])
    ]
    assert (
        groups == [{**groups[0], "RetentionInDays": configs[env].observability.log_retention_days}]
        and groups[0]["LogGroupName"] == f"/aws/otel/erp-{env}/kafka-metrics"
    )


@pytest.mark.parametrize("env", ENVS)
def test_kafka_metrics_identity_writes_its_log_stream_and_nothing_else(stack_templates, configs, env):
    workloads = stack_templates[f"erp-{env}-workloads"]
    (association,) = [
        a["Properties"]
        for a in resources_of(workloads, "AWS::EKS::PodIdentityAssociation").values()
        if a["Properties"]["ServiceAccount"] == names.KAFKA_METRICS
    ]
    assert association["Namespace"] == configs[env].namespace
    role = association["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources_of(workloads, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert [sorted(s["Action"]) for s in statements] == [["logs:CreateLogStream", "logs:PutLogEvents"]]
    resources = json.dumps(statements[0]["Resource"])
    group = names.kafka_metrics_log_group(configs[env])
    assert f'log-group:{group}"' in resources
    assert f'log-group:{group}:log-stream:{names.KAFKA_METRICS_LOG_STREAM}"' in resources
    assert "*" not in resources
    assert "ManagedPolicyArns" not in workloads["Resources"][role]["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_kafka_alarms_and_graphs_are_on_the_dashboard(stack_templates, env):
    template = observability(stack_templates, env)
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    alarm_ids = {
        k
        for k, r in resources_of(template, "AWS::CloudWatch::Alarm").items()
        if "kafka" in r["Properties"]["AlarmName"]
    }
    assert alarm_ids and all(logical_id in body for logical_id in alarm_ids)
    for title in (
        "Kafka consumer lag (messages)",
        "Kafka brokers up / partitions not healthy",
        "Kafka volumes used (%)",
    ):
        assert title in body, title

"""The telemetry of issue 20 in `make cost`: SLO burn-rate alarms, access-log metric filters, the collector's
custom metrics, the scheduled drift job and the chat channel, each against a hand calculation on small
hand-made templates (prices typed from tools/cost/prices-ap-northeast-2.yaml)."""

from __future__ import annotations

import pytest

from tests.tools.test_cost import NO_USAGE, lines_of, make_env, res, write_assembly
from tools import cost

ALARM_METRIC_MONTH = 0.10
COMPOSITE_ALARM_MONTH = 0.50
CUSTOM_METRIC_MONTH = 0.30
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_PER_M = 0.20
LOGS_INGEST_GB = 0.76
LOGS_STORED_GB_MONTH = 0.0314
# Four whole years (2025-2028): 1461 days in 48 months.
DAYS_PER_MONTH = 1461 / 48  # 30.4375


def estimate(tmp_path, resources: dict, **env) -> cost.Estimate:
    assembly = write_assembly(tmp_path / "cdk.out", {"Dev": {"erp-dev-observability": resources}})
    return cost.estimate(assembly, make_env(**env))


def stat(metric: str, period: int = 300, dimensions: list | None = None, **extra) -> dict:
    metric_def = {"Namespace": "Erp/Api", "MetricName": metric, "Dimensions": dimensions or []}
    return {"MetricStat": {"Metric": metric_def, "Period": period, "Stat": "Sum"}, **extra}


def burn_rate_alarm(window_minutes: tuple[int, int] = (60, 5)) -> dict:
    """A fast burn-rate alarm as the SLO construct builds it: 5xx and all requests over a long and a short
    window, a burn rate per window, and their MIN compared with the threshold (one returned expression)."""
    long_s, short_s = (m * 60 for m in window_minutes)
    return res(
        "AWS::CloudWatch::Alarm",
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
        Threshold=14.4,
        Metrics=[
            {"Id": "errLong", "ReturnData": False, **stat("Errors5xx", long_s)},
            {"Id": "reqLong", "ReturnData": False, **stat("Requests", long_s)},
            {"Id": "errShort", "ReturnData": False, **stat("Errors5xx", short_s)},
            {"Id": "reqShort", "ReturnData": False, **stat("Requests", short_s)},
            {"Id": "burnLong", "ReturnData": False, "Expression": "errLong / reqLong / 0.005"},
            {"Id": "burnShort", "ReturnData": False, "Expression": "errShort / reqShort / 0.005"},
            {"Id": "burn", "ReturnData": True, "Expression": "MIN([burnLong, burnShort])"},
        ],
    )


def test_composite_alarm_and_its_metric_math_children_are_priced_per_metric(tmp_path):
    est = estimate(
        tmp_path,
        {
            "Fast": burn_rate_alarm((60, 5)),
            "Slow": burn_rate_alarm((360, 30)),
            "Budget": res(
                "AWS::CloudWatch::CompositeAlarm",
                AlarmRule='ALARM("erp-dev-api-fast") OR ALARM("erp-dev-api-slow")',
            ),
        },
    )

    [fast], [slow], [composite] = lines_of(est, "Fast"), lines_of(est, "Slow"), lines_of(est, "Budget")
    # Four metrics each (errors and requests, two windows); the three expressions are free.
    assert (fast.quantity, fast.usd) == (4, pytest.approx(4 * ALARM_METRIC_MONTH))
    assert "metric math over 4 metric(s)" in fast.item
    assert slow.usd == pytest.approx(4 * ALARM_METRIC_MONTH)
    assert composite.usd == pytest.approx(COMPOSITE_ALARM_MONTH)
    assert composite.price.source.startswith("A:")
    assert est.subtotals["erp-dev-observability"] == pytest.approx(8 * 0.10 + 0.50)
    assert est.unpriced == []


def test_metrics_insights_alarm_states_its_assumption_and_high_resolution_is_unpriced(tmp_path):
    insights = res(
        "AWS::CloudWatch::Alarm",
        Metrics=[{"Id": "q", "Expression": 'SELECT SUM(Errors5xx) FROM "Erp/Api"', "Period": 300, "ReturnData": True}],
    )
    fast = res("AWS::CloudWatch::Alarm", Metrics=[{"Id": "m", "ReturnData": True, **stat("Requests", 10)}])
    est = estimate(tmp_path, {"Insights": insights, "HighRes": fast})

    [insights_line] = lines_of(est, "Insights")
    assert "1 metric assumed" in insights_line.item and insights_line.usd == pytest.approx(ALARM_METRIC_MONTH)
    [unpriced] = est.unpriced
    assert unpriced.logical_id == "HighRes" and "high-resolution" in unpriced.reason


def access_log_filter(metric: str, log_group: str = "AccessLog", namespace: str = "Erp/Api", **dims) -> dict:
    transformation = {"MetricNamespace": namespace, "MetricName": metric, "MetricValue": "1"}
    if dims:
        transformation["Dimensions"] = [{"Key": k, "Value": v} for k, v in dims.items()]
    return res(
        "AWS::Logs::MetricFilter",
        LogGroupName={"Ref": log_group},
        FilterPattern="{ $.status = 5* }",
        MetricTransformations=[transformation],
    )


def single_alarm(metric: str, **dims) -> dict:
    dimensions = [{"Name": k, "Value": v} for k, v in dims.items()]
    return res("AWS::CloudWatch::Alarm", Namespace="ErpErrors", MetricName=metric, Dimensions=dimensions, Period=300)


def test_metric_filters_count_each_distinct_metric_once(tmp_path):
    resources = {
        # The same metric from two log groups (say the API's access log and a second stage's): one metric.
        "Errors5xx": access_log_filter("Errors5xx"),
        "Errors5xxAgain": access_log_filter("Errors5xx", log_group="OtherLog"),
        "Requests": access_log_filter("Requests"),
        # Same name, other namespace: another metric.
        "OtherNamespace": access_log_filter("Requests", namespace="Erp/Other"),
        # With a dimension: one metric per value; three containers are alarmed on, one value twice.
        "ByContainer": access_log_filter("ErrorLines", namespace="ErpErrors", Container="$.kubernetes.container_name"),
        "AlarmA": single_alarm("ErrorLines", Container="approval-request-service"),
        "AlarmB": single_alarm("ErrorLines", Container="approval-processing-service"),
        "AlarmB2": single_alarm("ErrorLines", Container="approval-processing-service"),
        "AlarmC": res(
            "AWS::CloudWatch::Alarm",
            Metrics=[
                {
                    "Id": "m",
                    "ReturnData": True,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "ErpErrors",
                            "MetricName": "ErrorLines",
                            "Dimensions": [{"Name": "Container", "Value": "notification-service"}],
                        },
                        "Period": 300,
                        "Stat": "Sum",
                    },
                }
            ],
        ),
        # Alarms on the metric without the dimension read another metric: they do not add values.
        "AlarmTotal": single_alarm("ErrorLines"),
        # A dimensioned metric no alarm reads: at least one metric.
        "ByRoute": access_log_filter("Latency", RouteKey="$.routeKey"),
    }
    est = estimate(tmp_path, resources)

    def metrics(logical_id: str) -> float:
        return sum(x.quantity for x in lines_of(est, logical_id))

    assert metrics("Errors5xx") == 1 and lines_of(est, "Errors5xxAgain") == []
    assert est.free["AWS::Logs::MetricFilter (its metrics are counted on another filter that publishes them too)"] == 1
    assert metrics("Requests") == 1 and metrics("OtherNamespace") == 1
    assert metrics("ByContainer") == 3
    assert "3 value(s) alarms or dashboards read" in lines_of(est, "ByContainer")[0].item
    assert metrics("ByRoute") == 1
    filters = sum(x.usd for x in est.lines if x.type == "AWS::Logs::MetricFilter")
    assert filters == pytest.approx((1 + 1 + 1 + 3 + 1) * CUSTOM_METRIC_MONTH)


def dashboard(*rows: list) -> dict:
    """A dashboard body as CDK writes it: JSON joined around a Ref (the region)."""
    head = '{"widgets":[{"type":"metric","properties":{"region":"'
    metrics = ",".join(
        "[" + ",".join(f'"{x}"' if isinstance(x, str) else '{"stat":"Sum"}' for x in row) + "]" for row in rows
    )
    return res(
        "AWS::CloudWatch::Dashboard",
        DashboardBody={"Fn::Join": ["", [head, {"Ref": "AWS::Region"}, f'","metrics":[{metrics}]}}}}]}}']]},
    )


def test_dashboard_graphs_count_dimension_values_too(tmp_path):
    by_container = access_log_filter("ErrorLines", namespace="ErpErrors", Container="$.kubernetes.container_name")
    graphs = dashboard(
        ["ErpErrors", "ErrorLines", "Container", "approval-request-service", {}],
        [".", ".", "Container", "notification-service"],  # CloudWatch's "same as the row above"
        ["AWS/Lambda", "Errors", "FunctionName", "x"],
    )
    est = estimate(
        tmp_path,
        {
            "ByContainer": by_container,
            "Dashboard": graphs,
            "Alarm": single_alarm("ErrorLines", Container="notification-service"),  # read twice: one metric
        },
    )

    [line] = lines_of(est, "ByContainer")
    assert line.quantity == 2 and line.usd == pytest.approx(2 * CUSTOM_METRIC_MONTH)


def test_a_free_dashboard_over_50_metrics_says_the_free_tier_may_not_cover_it(tmp_path):
    small = dashboard(*(["Erp/Api", f"M{i}"] for i in range(50)))
    big = dashboard(*(["Erp/Api", f"M{i}"] for i in range(51)))
    est = estimate(tmp_path, {"Small": small, "Big": big})

    [small_line], [big_line] = lines_of(est, "Small"), lines_of(est, "Big")
    assert small_line.usd == big_line.usd == 0  # the first 3 of the account
    assert "50 metrics graphed" in small_line.item and "may be billed" not in small_line.item
    assert "51 metrics graphed" in big_line.item and "may be billed" in big_line.item


def test_metrics_a_function_writes_itself_are_counted_from_what_is_read(tmp_path):
    """The drift check writes DriftedStacks, OrphanedObjects and DriftCheckFailures through Powertools (EMF):
    not in any template, but the dashboard graphs all three."""
    job = drift_job()
    job["DriftFunction"]["Properties"]["Environment"] = {
        "Variables": {"POWERTOOLS_METRICS_NAMESPACE": "erp/dev/drift", "POWERTOOLS_SERVICE_NAME": "drift-check"}
    }
    graphs = dashboard(
        *(["erp/dev/drift", name, "service", "drift-check"] for name in ("DriftedStacks", "OrphanedObjects")),
        ["erp/dev/drift", "DriftCheckFailures", "service", "drift-check"],
    )
    est = estimate(tmp_path, {**job, "Dashboard": graphs})

    [metrics] = lines_of(est, "DriftFunction")
    assert metrics.quantity == 3 and metrics.usd == pytest.approx(3 * CUSTOM_METRIC_MONTH)
    assert "erp/dev/drift" in metrics.item
    # Its runs stay on the schedule; the function is not also listed free.
    assert len(lines_of(est, "DriftSchedule")) == 3
    assert not [k for k in est.free if k.startswith("AWS::Lambda::Function")]


@pytest.mark.parametrize(
    ("expression", "runs"),
    [
        ("cron(0 6 * * ? *)", DAYS_PER_MONTH),  # the drift job's default: daily, 30.44
        ("cron(0 8 ? * MON-FRI *)", 365.25 * 5 / 7 / 12),  # weekdays only: 21.74
        ("cron(0 20 ? * 2-6 *)", 365.25 * 5 / 7 / 12),  # the same by number (1 = Sunday)
        ("cron(0 9 ? * SAT,SUN *)", 365.25 * 2 / 7 / 12),
        ("cron(0/15 * * * ? *)", 96 * DAYS_PER_MONTH),  # every 15 minutes
        ("cron(0 6,18 1 * ? *)", 2),  # twice on the 1st
        ("cron(0 6 L * ? *)", 1),  # the last day of each month
        ("cron(0 6 ? * 6L *)", 1),  # the last Friday
        ("cron(0 6 ? * 2#1 *)", 1),  # the first Monday
        ("cron(0 6 15W * ? *)", 1),  # the weekday nearest the 15th
        ("cron(0 6 1 JAN,JUL ? *)", 2 / 12),
        ("rate(1 minute)", 730 * 60),
        ("rate(5 minutes)", 730 * 12),
        ("rate(1 day)", 730 / 24),
        ("at(2027-01-01T06:00:00)", 0),
    ],
)
def test_runs_per_month_from_the_schedule_expression(expression, runs):
    assert cost.runs_per_month(expression) == pytest.approx(runs, rel=2e-3)


@pytest.mark.parametrize("expression", ["cron(0 6 * * ?)", "cron(0 25 * * ? *)", "cron(0 6 ? * FOO *)", "daily"])
def test_an_expression_it_cannot_read_is_unpriceable(expression):
    with pytest.raises(cost.Unpriceable):
        cost.runs_per_month(expression)


def drift_job(expression: str = "cron(0 6 * * ? *)", **schedule_props) -> dict:
    return {
        "DriftFunction": res(
            "AWS::Lambda::Function", Architectures=["arm64"], MemorySize=512, Timeout=300, Runtime="python3.13"
        ),
        "DriftSchedule": res(
            "AWS::Scheduler::Schedule",
            ScheduleExpression=expression,
            ScheduleExpressionTimezone="Asia/Seoul",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": {"Fn::GetAtt": ["DriftFunction", "Arn"]}, "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}},
            **schedule_props,
        ),
        "Role": res("AWS::IAM::Role", AssumeRolePolicyDocument={}),
    }


def test_the_drift_job_is_priced_from_its_schedule(tmp_path):
    est = estimate(tmp_path, drift_job())

    invocations, compute, requests = lines_of(est, "DriftSchedule")
    runs = DAYS_PER_MONTH
    seconds = 300  # a daily job is billed its whole timeout per run: an upper bound of cents
    assert "30.4 runs/month" in invocations.item and invocations.usd == 0  # inside the 14 M free invocations
    assert invocations.price.approximate  # the Scheduler price is level C
    assert compute.quantity == pytest.approx(runs * seconds * 512 / 1024)
    assert compute.usd == pytest.approx(runs * seconds * 0.5 * LAMBDA_ARM_GB_SECOND)  # 0.03
    assert "300 s (its timeout, an upper bound)" in compute.item
    assert requests.usd == pytest.approx(runs / 1e6 * LAMBDA_PER_M)
    # The function is not priced twice, and nothing is left out.
    assert lines_of(est, "DriftFunction") == []
    assert est.free["AWS::Lambda::Function (scheduled job: its runs are priced on its schedule)"] == 1
    assert est.unpriced == []
    drift_notes = [a for a in est.assumptions if a.startswith("drift detection:")]
    assert len(drift_notes) == 1 and "cost nothing (A: CloudFormation drift detection" in drift_notes[0]


def test_weekday_schedule_costs_its_share_of_a_daily_one(tmp_path):
    daily = estimate(tmp_path / "daily", drift_job("cron(0 6 * * ? *)"))
    weekdays = estimate(tmp_path / "weekdays", drift_job("cron(0 6 ? * MON-FRI *)"))

    stack = "erp-dev-observability"
    share = (365.25 * 5 / 7 / 12) / DAYS_PER_MONTH
    assert weekdays.subtotals[stack] == pytest.approx(daily.subtotals[stack] * share, rel=2e-3)
    assert weekdays.subtotals[stack] > 0


def test_scheduled_rule_every_minute_prices_its_lambda_and_event_rules_stay_free(tmp_path):
    reporter = res("AWS::Lambda::Function", Architectures=["arm64"], MemorySize=256, Timeout=50)
    every = res(
        "AWS::Events::Rule",
        ScheduleExpression="rate(1 minute)",
        State="ENABLED",
        Targets=[{"Arn": {"Fn::GetAtt": ["Reporter", "Arn"]}, "Id": "Target0"}],
    )
    pipeline_events = res(
        "AWS::Events::Rule",
        EventPattern={"source": ["aws.codepipeline"]},
        Targets=[{"Arn": {"Ref": "Topic"}, "Id": "Target0"}],
    )
    est = estimate(tmp_path, {"Reporter": reporter, "Every": every, "PipelineEvents": pipeline_events})

    compute, requests = lines_of(est, "Every")  # no Scheduler invocations: scheduled rules are free
    runs = 730 * 60  # more often than daily: a few seconds a run, not its 50 s timeout
    assert "5 s (assumed; timeout 50 s)" in compute.item
    assert compute.usd == pytest.approx(runs * cost.SCHEDULED_RUN_SECONDS * 0.25 * LAMBDA_ARM_GB_SECOND)
    assert requests.usd == pytest.approx(runs / 1e6 * LAMBDA_PER_M)
    assert est.free["AWS::Events::Rule"] == 1
    assert lines_of(est, "PipelineEvents") == []


def test_disabled_or_non_lambda_schedules(tmp_path):
    disabled = drift_job(State="DISABLED")
    sdk = res(
        "AWS::Scheduler::Schedule",
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:scheduler:::aws-sdk:cloudformation:detectStackDrift", "RoleArn": "x"},
    )
    est = estimate(tmp_path, {**disabled, "Sdk": sdk})

    assert lines_of(est, "DriftSchedule") == []
    assert est.free["AWS::Scheduler::Schedule (disabled or one-time (at) schedule)"] == 1
    [unpriced] = est.unpriced
    assert unpriced.logical_id == "Sdk" and "only Lambda functions" in unpriced.reason
    [invocations] = lines_of(est, "Sdk")
    assert "730 runs/month" in invocations.item


def test_collector_custom_metrics_and_their_emf_logs_come_from_usage(tmp_path):
    usage = {**NO_USAGE, "collector_custom_metrics": 40}
    est = estimate(tmp_path, {}, usage=usage)

    env_wide = {x.item.split(":")[0]: x for x in lines_of(est, "-")}
    metrics = env_wide["collector custom metrics (usage)"]
    assert metrics.usd == pytest.approx(40 * CUSTOM_METRIC_MONTH)  # 12.00
    # At most one EMF event per metric every 30 s, 300 bytes each: 40 × 87,600 × 300 B = 0.98 GB a month.
    emf_gb = 40 * 730 * 120 * 300 / 1024**3
    ingestion = env_wide["collector EMF log ingestion"]
    assert ingestion.quantity == pytest.approx(emf_gb) and ingestion.usd == pytest.approx(emf_gb * LOGS_INGEST_GB)
    retention = make_env().observability.log_retention_days
    storage = next(x for x in lines_of(est, "-") if x.item.startswith("collector EMF log storage"))
    assert storage.usd == pytest.approx(emf_gb * retention / (730 / 24) * LOGS_STORED_GB_MONTH)
    [note] = [a for a in est.assumptions if a.startswith("OpenTelemetry collector")]
    assert "existing nodes" in note and "/aws/otel/erp-dev/kafka-metrics" in note and "0.98 GB/month" in note


def test_the_emf_interval_is_the_collectors_scrape():
    """The EMF volume assumes the collector's most frequent scrape: it must follow the chart if that changes."""
    from k8s_charts import kafka_metrics

    scrapes = [int(x.rstrip("s")) for x in (kafka_metrics.EXPORTER_SCRAPE, kafka_metrics.KUBELET_SCRAPE)]
    assert min(scrapes) == cost.COLLECTOR_INTERVAL_SECONDS


def test_collector_log_group_retention_is_read_from_the_template(tmp_path):
    log_group = res("AWS::Logs::LogGroup", LogGroupName="/aws/otel/erp-dev/kafka-metrics", RetentionInDays=3)
    est = estimate(tmp_path, {"KafkaMetrics": log_group}, usage={**NO_USAGE, "collector_custom_metrics": 10})

    storage = next(x for x in lines_of(est, "-") if x.item.startswith("collector EMF log storage"))
    assert "3 days kept" in storage.item


def test_no_collector_metrics_no_collector_lines(tmp_path):
    est = estimate(tmp_path, {}, usage={**NO_USAGE, "collector_custom_metrics": 0})

    assert [x.item for x in lines_of(est, "-") if "collector" in x.item] == []
    assert not [a for a in est.assumptions if a.startswith("OpenTelemetry collector")]


def test_chat_channel_is_listed_at_zero_with_its_source(tmp_path):
    channel = res(
        "AWS::Chatbot::SlackChannelConfiguration",
        ConfigurationName="erp-dev-alarms",
        SlackWorkspaceId="T0123456789",
        SlackChannelId="CEXAMPLEID",
        IamRoleArn={"Fn::GetAtt": ["Role", "Arn"]},
        SnsTopicArns=[{"Ref": "Topic"}],
    )
    est = estimate(tmp_path, {"Chat": channel})

    [line] = lines_of(est, "Chat")
    assert line.usd == 0 and "no service fee" in line.item
    assert "Amazon Q Developer in chat applications" in line.price.source
    assert est.unpriced == []


def test_every_telemetry_resource_is_accounted_once(tmp_path):
    """What tests/infra/test_cost_estimate.py checks on the real templates: a line, an unpriced item or a free
    entry per resource, never two of them (a free entry beside a line would count one resource twice)."""
    resources = {
        **drift_job(),
        "Fast": burn_rate_alarm(),
        "Budget": res("AWS::CloudWatch::CompositeAlarm", AlarmRule="TRUE"),
        "Errors5xx": access_log_filter("Errors5xx"),
        "Errors5xxAgain": access_log_filter("Errors5xx", log_group="OtherLog"),
        "Chat": res("AWS::Chatbot::SlackChannelConfiguration", SlackChannelId="CEXAMPLEID"),
        "Rule": res("AWS::Events::Rule", EventPattern={"source": ["aws.codepipeline"]}),
    }
    est = estimate(tmp_path, resources, usage={**NO_USAGE, "collector_custom_metrics": 5})

    accounted = {x.logical_id for x in est.lines if x.stack != cost.ENV_WIDE} | {u.logical_id for u in est.unpriced}
    assert len(accounted) + sum(est.free.values()) == len(resources)

"""The dev estimate per resource type against a hand calculation, so no type can silently turn free; prod's
priced types (what only prod has, the web ACLs, by hand) too.

The total-only check (tests/infra/test_cost_estimate.py, ±3 %) let a scratch copy price every metric
filter at $0 unnoticed. Here each type's dollars are compared on their own. Prices are typed from
tools/cost/prices-ap-northeast-2.yaml (the price sheet); counts and sizes are read from the synthesized
dev templates and config/dev.yaml, so adding a secret or an alarm moves both sides.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pytest

from tests.conftest import resources_of
from tools.cost import estimate

HOURS = 730
# The price sheet, by hand (USD).
EKS_CLUSTER_HOUR = 0.10
EC2_HOUR = {"t4g.medium": 0.0416, "t3.medium": 0.052}
GP3_GB_MONTH = 0.0912
PUBLIC_IPV4_HOUR = 0.005
NLB_HOUR = 0.0225
RDS_HOUR = {"db.t4g.micro single-az": 0.025}
RDS_GP3_GB_MONTH = 0.131
RDS_BACKUP_GB_MONTH = 0.095
# AWS Backup recovery points: RDS and EBS snapshot storage.
RDS_POINT_GB_MONTH, EBS_POINT_GB_MONTH = 0.095, 0.05
VALKEY_HOUR = {"cache.t4g.micro": 0.0192}
HTTP_API_PER_M = 1.23
LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_PER_M = 0.20
SECRET_MONTH = 0.40
KMS_KEY_MONTH = 1.00
CUSTOM_METRIC_MONTH = 0.30
ALARM_METRIC_MONTH = 0.10
COMPOSITE_ALARM_MONTH = 0.50
ECR_GB_MONTH = 0.10
LOGS_INGEST_GB = 0.76
LOGS_STORED_GB_MONTH = 0.0314
CLOUDFRONT_HTTPS_PER_10K = 0.012
CLOUDFRONT_DATA_OUT_GB = 0.120
CLOUDFRONT_FUNCTION_PER_M = 0.10
S3_GB_MONTH = 0.025
# AWS WAF, same in every region (../shared/pricing-ap-northeast-2.md): per web ACL, per rule (a managed group
# counts as one), per million requests inspected.
WAF_ACL_MONTH, WAF_RULE_MONTH, WAF_PER_M_REQUESTS = 5.00, 1.00, 0.60
# Scheduled jobs: runs per month averaged over 2025-2028 (1461 days, 48 months); a job running daily or less often
# is billed its whole timeout per run, a more frequent one 5 s per run. Collector EMF: one 300-byte event per metric
# every 30 s (kafka-exporter's scrape).
SCHEDULE_YEARS = (date(2025, 1, 1), date(2029, 1, 1))
FREQUENT_RUN_SECONDS = 5
EMF_EVENT_BYTES, EMF_EVENTS_PER_HOUR = 300, 120
# CloudFront's always-free tier per account-month: 10 M requests, 1 TB out, 2 M function invocations.
FREE_EDGE_REQUESTS, FREE_EDGE_GB, FREE_FUNCTION_INVOCATIONS = 10_000_000, 1024, 2_000_000


@pytest.fixture(scope="module")
def dev(cdk_out, configs, stack_templates):
    config = configs["dev"]
    templates = {n: t for n, t in stack_templates.items() if n.startswith("erp-dev-")}
    priced: dict[str, float] = defaultdict(float)
    for line in estimate(cdk_out, config).lines:
        priced[line.type] += line.usd
    return config, templates, dict(priced)


def hand_calculation(config, templates) -> dict[str, float]:
    def all_of(rtype: str) -> list[dict]:
        return [r["Properties"] for t in templates.values() for r in resources_of(t, rtype).values()]

    schedule = config.schedule
    office_hours = schedule.hours_per_week * 52 / 12 if schedule else HOURS
    nodes = sum(
        g.desired_size
        * (EC2_HOUR[g.instance_types[0]] * office_hours + g.disk_gib * GP3_GB_MONTH * office_hours / HOURS)
        for g in config.cluster.node_groups
    )
    (nat_instance,) = all_of("AWS::EC2::Instance")
    root_gib = nat_instance["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    db = config.database
    behind_api = [
        f
        for t in templates.values()
        for fid, f in resources_of(t, "AWS::Lambda::Function").items()
        if any(
            p["Properties"].get("Principal") == "apigateway.amazonaws.com"
            and fid in str(p["Properties"].get("FunctionName"))
            for p in resources_of(t, "AWS::Lambda::Permission").values()
        )
    ]
    usage = config.usage
    invocations = usage.lambda_invocations_per_month / len(behind_api)
    lambdas = sum(
        invocations
        * usage.lambda_avg_duration_ms
        / 1000
        * f["Properties"]["MemorySize"]
        / 1024
        * LAMBDA_GB_SECOND[f["Properties"]["Architectures"][0]]
        + invocations / 1e6 * LAMBDA_PER_M
        for f in behind_api
    )

    def edge_bucket_gb(bucket: dict) -> float:
        tag = next((t["Value"] for t in bucket.get("Tags", []) if t["Key"] == "erp:usage"), None)
        return {"frontend": usage.frontend_storage_gb, "edge-logs": usage.edge_log_storage_gb}[tag]

    def function_props(template: dict, target_arn: dict) -> dict:
        return template["Resources"][target_arn["Fn::GetAtt"][0]]["Properties"]

    def job(props: dict, runs: float) -> float:
        seconds = props.get("Timeout", 3) if runs <= 31 else min(FREQUENT_RUN_SECONDS, props.get("Timeout", 3))
        gb_s = runs * seconds * props.get("MemorySize", 128) / 1024
        return gb_s * LAMBDA_GB_SECOND[props.get("Architectures", ["x86_64"])[0]] + runs / 1e6 * LAMBDA_PER_M

    def days_matching(keep) -> float:
        start, end = SCHEDULE_YEARS
        return sum(keep(start + timedelta(days=i)) for i in range((end - start).days)) / 48

    # The environment's schedules, by their expression as config and the constructs write them.
    scheduled_runs = {
        "cron(0 6 * * ? *)": days_matching(lambda d: True),
        "cron(0 8 ? * MON-FRI *)": days_matching(lambda d: d.weekday() < 5),
        "cron(0 20 ? * MON-FRI *)": days_matching(lambda d: d.weekday() < 5),
    }
    schedules = sum(
        job(function_props(t, s["Properties"]["Target"]["Arn"]), scheduled_runs[s["Properties"]["ScheduleExpression"]])
        for t in templates.values()
        for s in resources_of(t, "AWS::Scheduler::Schedule").values()
    )
    rules = sum(
        job(
            function_props(t, r["Properties"]["Targets"][0]["Arn"]),
            {"rate(1 minute)": HOURS * 60}[r["Properties"]["ScheduleExpression"]],
        )
        for t in templates.values()
        for r in resources_of(t, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    )
    # One metric per distinct filter metric; the per-container error lines: one per service (the dashboard graphs each).
    filter_metrics = {
        (m["MetricNamespace"], m["MetricName"], bool(m.get("Dimensions")))
        for f in all_of("AWS::Logs::MetricFilter")
        for m in f["MetricTransformations"]
    }
    custom_metrics = sum(len(config.services) if dims else 1 for _, _, dims in filter_metrics)
    # The collector's series by hand: brokers, partitions, led and under-replicated partitions; lag per consumer
    # group; used and capacity bytes per broker volume.
    collector_metrics = 4 + len(config.observability.kafka.consumer_groups) + 2 * config.kafka.replicas
    emf_gb = collector_metrics * HOURS * EMF_EVENTS_PER_HOUR * EMF_EVENT_BYTES / 1024**3
    emf_days = next(
        (
            g["RetentionInDays"]
            for g in all_of("AWS::Logs::LogGroup")
            if str(g.get("LogGroupName", "")).endswith("/kafka-metrics")
        ),
        config.observability.log_retention_days,
    )
    functions = len(all_of("AWS::CloudFront::Function"))
    alarm_metrics = sum(
        len([m for m in a.get("Metrics", []) if "MetricStat" in m]) or 1 for a in all_of("AWS::CloudWatch::Alarm")
    )
    # AWS Backup in dev: one daily rule and no copy; the oldest point is full, each later one a day's changes.
    (daily,) = config.backup.rules
    assert daily.schedule == "cron(0 7 * * ? *)" and config.backup.copy is None
    chain = 1 + (daily.retention_days - 1) * usage.backup_change_pct / 100
    db_full = db.allocated_storage_gib if usage.backup_db_gb is None else usage.backup_db_gb
    kafka_full = config.kafka.replicas * config.kafka.storage_gib
    kafka_full = kafka_full if usage.backup_kafka_gb is None else usage.backup_kafka_gb
    return {
        "AWS::EKS::Cluster": EKS_CLUSTER_HOUR * HOURS,
        "AWS::EKS::Nodegroup": nodes,
        # The dev NAT instance: its own price is unknown for Seoul (listed unpriced); its address and disk are not.
        "AWS::EC2::Instance": PUBLIC_IPV4_HOUR * HOURS + root_gib * GP3_GB_MONTH,
        "AWS::ElasticLoadBalancingV2::LoadBalancer": NLB_HOUR * HOURS,
        "AWS::RDS::DBInstance": RDS_HOUR[f"db.{db.instance_class} single-az"] * HOURS
        + db.allocated_storage_gib * RDS_GP3_GB_MONTH
        + usage.rds_backup_gb * RDS_BACKUP_GB_MONTH,
        "AWS::ElastiCache::ReplicationGroup": VALKEY_HOUR[config.cache.node_type] * HOURS * (config.cache.replicas + 1),
        "AWS::ApiGatewayV2::Api": usage.api_requests_per_month / 1e6 * HTTP_API_PER_M,
        # The drift check's three EMF metrics (DriftedStacks, OrphanedObjects, DriftCheckFailures), on the dashboard,
        # and the restore drill's three its alarms read (DrillSucceeded, RestoreMinutes, RecoveryPointAgeHours).
        "AWS::Lambda::Function": lambdas + (3 + 3) * CUSTOM_METRIC_MONTH,
        "AWS::SecretsManager::Secret": len(all_of("AWS::SecretsManager::Secret")) * SECRET_MONTH,
        "AWS::KMS::Key": len(all_of("AWS::KMS::Key")) * KMS_KEY_MONTH,
        "AWS::Backup::BackupPlan": chain * (db_full * RDS_POINT_GB_MONTH + kafka_full * EBS_POINT_GB_MONTH),
        "AWS::Logs::MetricFilter": custom_metrics * CUSTOM_METRIC_MONTH,
        "AWS::CloudWatch::Alarm": alarm_metrics * ALARM_METRIC_MONTH,
        "AWS::CloudWatch::CompositeAlarm": len(all_of("AWS::CloudWatch::CompositeAlarm")) * COMPOSITE_ALARM_MONTH,
        # The drift check (daily) and the night scaler (weekdays): their Lambda runs; Scheduler's 14 M are free.
        "AWS::Scheduler::Schedule": schedules,
        # The workload health report, every minute.
        "AWS::Events::Rule": rules,
        "AWS::CloudWatch::Dashboard": 0.0,  # one of the three free per account
        "AWS::Cognito::UserPool": 0.0,  # under the 10k free MAU
        "AWS::ECR::Repository": len(all_of("AWS::ECR::Repository")) * 1.0 * ECR_GB_MONTH,
        # One distribution; usage beyond CloudFront's free tier only (dev's defaults stay inside it: $0).
        "AWS::CloudFront::Distribution": max(0, usage.edge_requests_per_month - FREE_EDGE_REQUESTS)
        / 10_000
        * CLOUDFRONT_HTTPS_PER_10K
        + max(0.0, usage.edge_transfer_gb_per_month - FREE_EDGE_GB) * CLOUDFRONT_DATA_OUT_GB,
        # Every edge request runs the SPA-fallback function (assumed), beyond the 2 M free.
        "AWS::CloudFront::Function": max(0, functions * usage.edge_requests_per_month - FREE_FUNCTION_INVOCATIONS)
        / 1e6
        * CLOUDFRONT_FUNCTION_PER_M,
        # Only the edge's buckets are priced (by their erp:usage tag); dev has no other bucket.
        "AWS::S3::Bucket": sum(edge_bucket_gb(b) for b in all_of("AWS::S3::Bucket")) * S3_GB_MONTH,
        "(config)": config.kafka.replicas * config.kafka.storage_gib * GP3_GB_MONTH
        + usage.log_ingest_gb_per_month * LOGS_INGEST_GB
        + usage.log_stored_gb * LOGS_STORED_GB_MONTH
        # The collector's custom metrics (usage) and the EMF events carrying them.
        + collector_metrics * CUSTOM_METRIC_MONTH
        + emf_gb * LOGS_INGEST_GB
        + emf_gb * emf_days / (HOURS / 24) * LOGS_STORED_GB_MONTH,
    }


def test_every_resource_type_costs_what_the_price_sheet_says(dev):
    config, templates, priced = dev
    hand = hand_calculation(config, templates)
    assert sorted(priced) == sorted(hand), "a resource type appeared in or vanished from the priced lines"
    for rtype, usd in hand.items():
        assert priced[rtype] == pytest.approx(usd, rel=1e-9, abs=1e-9), rtype


def test_the_types_billed_per_unit_are_really_in_the_dev_templates(dev):
    """Guards the hand calculation itself: a count of zero would make its line trivially equal."""
    _, templates, priced = dev
    for rtype in (
        "AWS::Logs::MetricFilter",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::CompositeAlarm",
        "AWS::Scheduler::Schedule",
        "AWS::KMS::Key",
        "AWS::SecretsManager::Secret",
        "AWS::S3::Bucket",
    ):
        assert any(resources_of(t, rtype) for t in templates.values()), rtype
        assert priced.get(rtype, 0) > 0, f"{rtype} priced as free"


# --- prod ---------------------------------------------------------------------------------------------------

# Every type prod is billed for. Free by rule: one dashboard (three per account are free). A type that moves into
# the free list, or a pricer that returns $0, fails here; a new priced type must be added on purpose.
PROD_PRICED = {
    "(config)", "AWS::ApiGatewayV2::Api", "AWS::CloudFront::Distribution", "AWS::CloudFront::Function",
    "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::Cognito::UserPool", "AWS::EC2::EIP",
    "AWS::EC2::NatGateway", "AWS::EC2::VPCEndpoint", "AWS::ECR::Repository", "AWS::EKS::Cluster",
    "AWS::EKS::Nodegroup", "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::Events::Rule", "AWS::KMS::Key",
    "AWS::Lambda::Function", "AWS::Logs::MetricFilter", "AWS::RDS::DBInstance", "AWS::S3::Bucket",
    "AWS::Scheduler::Schedule", "AWS::SecretsManager::Secret", "AWS::WAFv2::WebACL", "AWS::Backup::BackupPlan",
    "AWS::StepFunctions::StateMachine",
}  # fmt: skip
PROD_FREE = {"AWS::CloudWatch::Dashboard"}


@pytest.fixture(scope="module")
def prod(cdk_out, configs, stack_templates):
    config = configs["prod"]
    templates = {n: t for n, t in stack_templates.items() if n.startswith("erp-prod-")}
    return config, templates, estimate(cdk_out, config).lines


def test_every_prod_type_is_priced_and_not_free(prod):
    _, _, lines = prod
    priced: dict[str, float] = defaultdict(float)
    for line in lines:
        priced[line.type] += line.usd
    assert set(priced) == PROD_PRICED | PROD_FREE, "a resource type appeared in or vanished from prod's priced lines"
    assert {rtype for rtype, usd in priced.items() if usd <= 0} == PROD_FREE


def test_each_prod_web_acl_costs_its_fee_its_rules_and_the_requests_it_inspects(prod):
    """By hand, per ACL: the REGIONAL one on the user pool inspects the auth requests, the CLOUDFRONT one every
    edge request (usage in config/prod.yaml)."""
    config, templates, lines = prod
    usage = config.usage
    acls = {
        (stack, logical_id): acl["Properties"]
        for stack, template in templates.items()
        for logical_id, acl in resources_of(template, "AWS::WAFv2::WebACL").items()
    }
    assert sorted(p["Scope"] for p in acls.values()) == ["CLOUDFRONT", "REGIONAL"]
    requests = {"REGIONAL": usage.auth_requests_per_month, "CLOUDFRONT": usage.edge_requests_per_month}
    for (stack, logical_id), props in acls.items():
        billed = sum(line.usd for line in lines if (line.stack, line.logical_id) == (stack, logical_id))
        hand = (
            WAF_ACL_MONTH + len(props["Rules"]) * WAF_RULE_MONTH + requests[props["Scope"]] / 1e6 * WAF_PER_M_REQUESTS
        )
        assert billed == pytest.approx(hand, rel=1e-9), f"{stack}/{logical_id} ({props['Scope']})"

"""Metrics CDK has no (cross-stack safe) helper for: per-node cache metrics, NLB target groups, percentages."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

ELASTICACHE = "AWS/ElastiCache"
FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)


def cache_node_ids(replication_group_id: str, replicas: int) -> list[str]:
    """Members of a cluster-mode-disabled replication group are named `<group>-001`, `-002`, ...:
    ElastiCache publishes host and engine metrics per member (CacheClusterId), not per group."""
    return [f"{replication_group_id}-{n:03d}" for n in range(1, replicas + 2)]


def cache_metric(
    metric_name: str,
    *,
    node_ids: Sequence[str],
    combine: str,
    statistic: str,
    period: Duration = FIVE_MINUTES,
) -> cloudwatch.MathExpression:
    """One series over every node: MAX for utilisation (the busiest node matters), SUM for counts.
    Failover moves the primary role between members, so every member is watched."""
    # Ids unique per metric name: a graph may show several of these expressions side by side.
    prefix = "".join(c for c in metric_name.lower() if c.isalnum())
    metrics = {
        f"{prefix}{i}": cloudwatch.Metric(
            namespace=ELASTICACHE,
            metric_name=metric_name,
            dimensions_map={"CacheClusterId": node},
            statistic=statistic,
            period=period,
        )
        for i, node in enumerate(node_ids)
    }
    return cloudwatch.MathExpression(
        expression=f"{combine}([{', '.join(metrics)}])",
        using_metrics=metrics,
        label=f"{metric_name} ({combine.lower()} of {len(metrics)} node{'s' if len(metrics) > 1 else ''})",
        period=period,
    )


def percent_of(
    part: cloudwatch.IMetric, whole: cloudwatch.IMetric, *, label: str, period: Duration = FIVE_MINUTES
) -> cloudwatch.MathExpression:
    """100 * part / whole; no data while `whole` has none (nothing happened, nothing failed)."""
    return cloudwatch.MathExpression(
        expression="IF(whole > 0, 100 * part / whole, 0)",
        using_metrics={"part": part, "whole": whole},
        label=label,
        period=period,
    )


def target_group_metric(
    metric_name: str,
    *,
    target_group: elbv2.NetworkTargetGroup,
    load_balancer: elbv2.NetworkLoadBalancer,
    statistic: str,
    period: Duration = ONE_MINUTE,
    label: str | None = None,
) -> cloudwatch.Metric:
    """AWS/NetworkELB per target group. Built from the two full-name attributes rather than the target
    group's `metrics` helper, which derives the load balancer's name by splitting a listener ARN: across
    stacks that nests a cross-stack reference inside Fn::Split."""
    return cloudwatch.Metric(
        namespace="AWS/NetworkELB",
        metric_name=metric_name,
        dimensions_map={
            "TargetGroup": target_group.target_group_full_name,
            "LoadBalancer": load_balancer.load_balancer_full_name,
        },
        statistic=statistic,
        period=period,
        label=label,
    )

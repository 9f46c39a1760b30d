"""Container Insights pod metrics, addressed the way the CloudWatch agent publishes them.

The agent (amazon-cloudwatch-observability add-on) names a pod by its controller: a Deployment's
pods share the Deployment's name, a DaemonSet's the DaemonSet's, but each StatefulSet pod keeps
its own name (``kafka-0``, ``kafka-1``, ...). ``pod_number_of_container_restarts`` is the number of
restarts since the agent's previous sample, so its Sum over a window is the restarts in that window;
it is published per ``ClusterName, Namespace, PodName`` (and cluster-wide), not per namespace alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from config.models import EnvironmentConfig
from k8s_charts import names

NAMESPACE = "ContainerInsights"
RESTARTS = "pod_number_of_container_restarts"
CPU = "pod_cpu_utilization"
MEMORY = "pod_memory_utilization"
FIVE_MINUTES = Duration.minutes(5)


def kafka_pods(env: EnvironmentConfig) -> list[str]:
    return [f"{names.KAFKA}-{ordinal}" for ordinal in range(env.kafka.replicas)]


def erp_pods(env: EnvironmentConfig) -> list[str]:
    """Every PodName the erp namespace's long-running workloads publish under."""
    return [*(s.name for s in env.services), *kafka_pods(env), names.XRAY_DAEMON]


def pod_metric(
    metric_name: str,
    *,
    env: EnvironmentConfig,
    pod: str,
    statistic: str = cloudwatch.Stats.AVERAGE,
    period: Duration = FIVE_MINUTES,
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=metric_name,
        dimensions_map={"ClusterName": env.cluster_name, "Namespace": env.namespace, "PodName": pod},
        statistic=statistic,
        period=period,
        label=pod,
    )


def restarts_in_namespace(env: EnvironmentConfig, pods: Sequence[str], period: Duration) -> cloudwatch.MathExpression:
    """Restarts summed over the namespace's pods (an alarm may read at most 10 metrics)."""
    if len(pods) > 10:
        raise ValueError(f"{len(pods)} pods to sum; a CloudWatch alarm reads at most 10 metrics")
    metrics = {
        f"m{i}": pod_metric(RESTARTS, env=env, pod=pod, statistic=cloudwatch.Stats.SUM, period=period)
        for i, pod in enumerate(pods)
    }
    return cloudwatch.MathExpression(
        expression=f"SUM([{', '.join(metrics)}])",
        using_metrics=metrics,
        label=f"container restarts in {env.namespace}",
        period=period,
    )

"""Container Insights pod metrics, addressed the way the CloudWatch agent publishes them.

The agent (amazon-cloudwatch-observability add-on) names a pod by its controller: a Deployment's
pods share the Deployment's name, a DaemonSet's the DaemonSet's, but each StatefulSet pod keeps
its own name (``kafka-0``, ``kafka-1``, ...). ``pod_number_of_container_restarts`` is the number of
restarts since the agent's previous sample, so its Sum over a window is the restarts in that window;
it is published per ``ClusterName, Namespace, PodName`` (and cluster-wide), not per namespace alone.

An alarm may read at most 10 metrics through metric math, fewer than the namespace's pods once there are
more than a handful of services; a Metrics Insights query has no such cap (10,000 metrics per query,
200 such alarms per region) and also covers pods added later.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from config.models import EnvironmentConfig
from constructs_lib.observability.metrics import FIVE_MINUTES
from k8s_charts import names

NAMESPACE = "ContainerInsights"
RESTARTS = "pod_number_of_container_restarts"
CPU = "pod_cpu_utilization"
MEMORY = "pod_memory_utilization"


def kafka_pods(config: EnvironmentConfig) -> list[str]:
    return [f"{names.KAFKA}-{ordinal}" for ordinal in range(config.kafka.replicas)]


def pod_metric(
    metric_name: str,
    *,
    config: EnvironmentConfig,
    pod: str,
    statistic: str = cloudwatch.Stats.AVERAGE,
    period: Duration = FIVE_MINUTES,
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=metric_name,
        dimensions_map={"ClusterName": config.cluster_name, "Namespace": config.namespace, "PodName": pod},
        statistic=statistic,
        period=period,
        label=pod,
    )


def restarts_in_namespace(config: EnvironmentConfig, period: Duration) -> cloudwatch.MathExpression:
    """Restarts summed over every pod of the namespace, as one Metrics Insights query an alarm can read.

    SCHEMA(...) with exactly these dimensions keeps out the per-FullPodName series enhanced observability
    also publishes, so no restart is counted twice."""
    return cloudwatch.MathExpression(
        expression=(
            f"SELECT SUM({RESTARTS}) FROM SCHEMA({NAMESPACE}, ClusterName, Namespace, PodName) "
            f"WHERE ClusterName = '{config.cluster_name}' AND Namespace = '{config.namespace}'"
        ),
        using_metrics={},
        label=f"container restarts in {config.namespace}",
        period=period,
    )

"""The two entry points the CDK side calls; each returned chart becomes one KubernetesManifest."""

from __future__ import annotations

from cdk8s import Chart

from config.models import EnvironmentConfig
from k8s_charts.addon_policies import AddonPolicies
from k8s_charts.common import new_chart
from k8s_charts.employee_proxy import EmployeeProxy
from k8s_charts.kafka import KafkaCluster, KafkaTopics
from k8s_charts.kafka_metrics import KafkaMetrics
from k8s_charts.logging import FluentBit
from k8s_charts.manifests import add_inventory
from k8s_charts.namespace import ErpNamespace
from k8s_charts.reload import annotate_reloads
from k8s_charts.secrets import ExternalSecrets
from k8s_charts.services import Microservice
from k8s_charts.storage import Gp3StorageClass
from k8s_charts.tracing import OtelCollector
from k8s_charts.values import PlatformValues

# Deployment order of the Workloads stack's charts; each id is also the construct id of the chart's manifest.
CHART_IDS = ("addon-policies", "namespace", "secrets", "kafka", "services", "logging", "tracing")


def _require_per_service(env: EnvironmentConfig, values: PlatformValues) -> None:
    """A service without an image or a target group must fail synth, not deploy half-wired."""
    services = {s.name for s in env.services}
    for field in ("images", "target_group_arns"):
        missing = sorted(services - set(getattr(values, field)))
        if missing:
            raise ValueError(f"PlatformValues.{field} has no entry for: {', '.join(missing)}")


def build_charts(env: EnvironmentConfig, values: PlatformValues) -> dict[str, Chart]:
    """Ordered for deployment: key = stable id the CDK side uses as the construct id (never rename one:
    k8s_charts/manifests.py). The add-ons' policies come first: the secrets chart goes through their webhooks."""
    _require_per_service(env, values)
    charts = {key: new_chart(env, key) for key in CHART_IDS}
    AddonPolicies(charts["addon-policies"], "AddonPolicies", values=values)
    ErpNamespace(charts["namespace"], "Namespace", env=env, values=values)
    ExternalSecrets(charts["secrets"], "ExternalSecrets", env=env, values=values)
    KafkaCluster(charts["kafka"], "Kafka", env=env, registry_host=values.registry_host)
    KafkaTopics(charts["kafka"], "Topics", env=env, registry_host=values.registry_host)
    # Lag, replication, brokers and volume use into CloudWatch for the Kafka alarms.
    KafkaMetrics(charts["kafka"], "Metrics", env=env, values=values)
    for service in env.services:
        Microservice(charts["services"], service.name, env=env, service=service, values=values)
    if env.uses_employee_api:
        EmployeeProxy(charts["services"], "EmployeeProxy", env=env, values=values)
    # Reloader rolls a Deployment when a Secret it reads changes (rotated credentials reach running pods).
    annotate_reloads(charts["services"])
    FluentBit(charts["logging"], "FluentBit", env=env, values=values)
    OtelCollector(charts["tracing"], "OtelCollector", env=env, values=values)
    for chart_id, chart in charts.items():
        add_inventory(env, chart_id, chart)
    return charts


def build_storage_chart(env: EnvironmentConfig) -> Chart:
    """Cluster-level, deployed by the Cluster stack before anything claims a volume."""
    chart = new_chart(env, "storage")
    Gp3StorageClass(chart, "Gp3")
    return chart

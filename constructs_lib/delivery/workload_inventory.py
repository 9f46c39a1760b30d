"""Every workload the platform ships to a stage's cluster, for the post-deploy smoke test (issue 18, build item 4).

Read from the sources, never typed: the cdk8s charts are rendered exactly as the Workloads stack renders them
(names and namespaces do not depend on deploy-time values, which are placeholders here), and the Helm
add-ons' workloads are what their pinned charts render for the release name and namespace we install them
with (read from each chart's templates at the pinned tag; tests/infra/test_pipeline.py checks the table
against the add-ons the Cluster stack installs). EKS managed add-ons (CoreDNS, VPC CNI, EBS CSI...) are EKS's
and not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.models import EnvironmentConfig
from constructs_lib.cluster import cluster_autoscaler, external_secrets, load_balancer_controller, reloader
from k8s_charts import build_charts
from k8s_charts.values import token_values

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


# Helm chart -> (kind, name) of each workload it renders with our values (release name = chart name, no
# fullnameOverride), and where that comes from.
HELM_WORKLOADS: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    load_balancer_controller.ADDON.chart: (
        (("Deployment", "aws-load-balancer-controller"),),
        "chart 3.5.0 (kubernetes-sigs/aws-load-balancer-controller v3.5.0, 11eb202c): templates/deployment.yaml "
        "names it `aws-load-balancer-controller.fullname`, the release name when it contains the chart name",
    ),
    external_secrets.ADDON.chart: (
        (
            ("Deployment", "external-secrets"),
            ("Deployment", "external-secrets-webhook"),
            ("Deployment", "external-secrets-cert-controller"),
        ),
        "chart 2.9.0 (external-secrets/external-secrets helm-chart-2.9.0, cc5bfbc2): deployment.yaml, "
        "webhook-deployment.yaml (webhook.create), cert-controller-deployment.yaml (certController.create, no "
        "cert-manager); `external-secrets.fullname` is the release name",
    ),
    reloader.ADDON.chart: (
        (("Deployment", "reloader-reloader"),),
        "chart 2.2.16 (stakater/Reloader chart-v2.2.16, 655a2b38): templates/deployment.yaml names it "
        "`reloader-fullname` = <release>-<chart>",
    ),
    cluster_autoscaler.ADDON.chart: (
        (("Deployment", cluster_autoscaler.NAME),),
        "chart 9.59.0 (kubernetes/autoscaler cluster-autoscaler-chart-9.59.0, 5a0b98e4): templates/deployment.yaml "
        "names it `cluster-autoscaler.fullname` = fullnameOverride (set: cluster_autoscaler.NAME). In dev it has "
        "0 replicas while the night schedule sleeps (rolled out and available: 0/0)",
    ),
}
HELM_ADDONS = {
    addon.chart: addon
    for addon in (load_balancer_controller.ADDON, external_secrets.ADDON, reloader.ADDON, cluster_autoscaler.ADDON)
}


def chart_workloads(config: EnvironmentConfig) -> list[Workload]:
    """Rendered once per configuration: the pipeline's smoke test and the stage's health check both ask, and
    each rendering of every chart costs ~1,000 kernel round trips."""
    key = config.model_dump_json()
    if key not in _RENDERED:
        found = []
        for chart in build_charts(config, token_values(config)).values():
            for manifest in chart.to_json():
                if manifest.get("kind") in WORKLOAD_KINDS:
                    metadata = manifest["metadata"]
                    found.append(Workload(metadata.get("namespace", "default"), manifest["kind"], metadata["name"]))
        _RENDERED[key] = tuple(found)
    return list(_RENDERED[key])


_RENDERED: dict[str, tuple[Workload, ...]] = {}


def helm_workloads() -> list[Workload]:
    return [
        Workload(HELM_ADDONS[chart].namespace, kind, name)
        for chart, (workloads, _source) in HELM_WORKLOADS.items()
        for kind, name in workloads
    ]


def expected_workloads(config: EnvironmentConfig) -> list[Workload]:
    """Every Deployment, StatefulSet and DaemonSet the stage ships: the services, the employee-service proxy,
    Kafka, the collectors (Fluent Bit, the X-Ray daemon) and the controllers."""
    return sorted(set(chart_workloads(config) + helm_workloads()))

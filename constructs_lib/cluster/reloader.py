"""Stakater Reloader (Helm, pinned): rolls a workload when a Secret it is annotated for changes.

Together with External Secrets' refresh this is how a rotated credential reaches running pods without
an outage (k8s_charts/reload.py annotates the workloads; README: Rotation without outage). Its image
comes from Docker Hub through the stage's ECR pull-through cache (k8s_charts/images.py).

Scoped, not global, and why its install needs the erp namespace first (issue 18 item 1). Read from the
chart's templates at chart-v2.2.16 (k8s_charts/contracts/reloader.yaml):

- `watchGlobally: false` with `namespaces: [erp-{env}]` renders, for each of erp-{env} and the release
  namespace `reloader`, a Role (read Secrets; get/list/update/patch Deployments, DaemonSets, StatefulSets;
  Jobs, CronJobs, Events) and its RoleBinding *in that namespace*, plus a metadata Role in `reloader`;
  the Deployment gets `--namespaces=erp-{env},reloader`. No ClusterRole.
- `watchGlobally: true` would render a ClusterRole reading every Secret of the cluster (kube-system's,
  External Secrets' own) and patching every workload: a compromised Reloader pod would own the cluster.

Scoped mode is kept, so Helm must find erp-{env} when it installs: the Cluster stack creates that namespace
(k8s_charts/namespace.build_app_namespace_chart) and this release depends on it. `reloader` itself comes
from `create_namespace`. tests/contracts checks that every namespace this chart renders into exists first.
"""

from __future__ import annotations

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.helm_addon import HelmAddon, install
from k8s_charts.images import RELOADER, registry_host
from k8s_charts.placement import HelmDeployment

NAMESPACE = "reloader"
CHART_REPOSITORY = "https://stakater.github.io/stakater-charts"
ADDON = HelmAddon("reloader", CHART_REPOSITORY, NAMESPACE, True, "reloader")
# Its Deployment (named release-chart) and the values that size it: config/capacity.py counts them.
PODS = (
    HelmDeployment(
        "reloader-reloader", replicas="reloader.deployment.replicas", resources="reloader.deployment.resources"
    ),
)


def reloader_values(config: EnvironmentConfig) -> dict:
    """Helm values of chart `reloader` 2.2.16 (image.repository/tag/digest; reloader.deployment.*); checked
    against the chart-v2.2.16 tag of github.com/stakater/Reloader."""
    image = {"repository": f"{registry_host(config)}/{RELOADER.repository()}", "tag": RELOADER.tag}
    if RELOADER.digest:
        image["digest"] = RELOADER.digest
    return {
        "image": image,
        "reloader": {
            # Scoped mode (chart >= 2.2.16): Roles in erp-{env} and `reloader`, no ClusterRole (module docstring).
            "watchGlobally": False,
            "namespaces": [config.namespace],
            "ignoreConfigMaps": True,  # only Secrets trigger a rollout
            "autoReloadAll": False,  # only workloads that name their Secrets (annotate_reloads)
            "readOnlyRootFileSystem": True,
            "deployment": {
                "containerSecurityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "10m", "memory": "64Mi"},
                    "limits": {"cpu": "200m", "memory": "256Mi"},
                },
            },
        },
    }


# The values carry the requests; the replicas are the chart's (1).
pod_values = reloader_values


class Reloader(Construct):
    def __init__(
        self, scope: Construct, id: str, *, cluster: eks.ICluster, config: EnvironmentConfig, after: list[Construct]
    ) -> None:
        super().__init__(scope, id)
        # `after`: the node groups (nothing starts before a node exists) and the erp namespace (its Role goes there).
        values = reloader_values(config)
        self.chart = install(self, "Chart", ADDON, cluster=cluster, config=config, values=values, after=after)

"""How the charts become KubernetesManifests: which objects share one, so that a removed object is deleted.

What the aws_eks_v2 kubectl handler does with a manifest (aws-cdk-lib 2.275.0,
custom-resource-handlers/dist/aws-eks-v2/kubectl-handler/apply/__init__.py):

- Create: `kubectl apply -f` (`overwrite`), Update: `kubectl apply -f --prune -l aws.cdk.eks/prune-<addr>`,
  Delete: `kubectl delete -f` of the manifest's last objects (errors are logged and ignored).
- `--prune` is passed without `--prune-allowlist`, and the construct offers no option for one, so kubectl prunes
  only its default kinds (kubectl 1.36.3 of the KubectlV36Layer = k8s.io/kubectl v0.36.3, commit 73fdc7a3,
  pkg/util/prune/prune.go, unchanged since v0.35.2 of the V35 layer): `KUBECTL_DEFAULT_PRUNE_KINDS`. An object of any other kind - NetworkPolicy,
  TargetGroupBinding, ExternalSecret, HorizontalPodAutoscaler, PodDisruptionBudget, ServiceAccount,
  ClusterRole... - removed from a manifest would stay in the cluster for good.

So the Delete event does that job: every object of a kind kubectl does not prune is a manifest of its own
(`object_unit_id`: its kind, namespace and name are the construct id). Removing or renaming the object removes
that manifest, and CloudFormation's Delete runs `kubectl delete` of exactly that object. The objects kubectl
does prune stay together in their chart's manifest (construct id = chart id, as before), pruned on update.
Namespaces are units of their own too, applied before what goes into them, and are never deleted by
CloudFormation (RETAIN): deleting a namespace deletes everything in it.

A chart's own manifest must never become empty or disappear: its Delete would `kubectl delete` its last
objects, and those of an older deploy may now live in other manifests. Each chart therefore carries a small
inventory ConfigMap (a kind kubectl prunes): what the chart's manifests hold, for operators, and the anchor
that keeps the chart's manifest, and its logical id, in place (tests/infra/test_workloads.py pins them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdk8s import Chart
from cdk8s_plus_27 import k8s

from config.models import EnvironmentConfig
from k8s_charts.common import meta

Manifest = dict[str, Any]

# (API group, kind) kubectl prunes without an allow-list: k8s.io/kubectl v0.35.2 pkg/util/prune/prune.go,
# defaultNamespacedPruneResources + defaultNonNamespacedPruneResources.
KUBECTL_DEFAULT_PRUNE_KINDS = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Endpoints"),
        ("", "PersistentVolumeClaim"),
        ("", "Pod"),
        ("", "ReplicationController"),
        ("", "Secret"),
        ("", "Service"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("networking.k8s.io", "Ingress"),
        ("apps", "DaemonSet"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("", "Namespace"),
        ("", "PersistentVolume"),
    }
)

INVENTORY_PREFIX = "platform-manifest-"


def group_kind(manifest: Manifest) -> tuple[str, str]:
    return manifest["apiVersion"].rpartition("/")[0], manifest["kind"]


def prunable(manifest: Manifest) -> bool:
    """Would `kubectl apply --prune -l <label>` (no allow-list) delete this object once it left the manifest?"""
    return group_kind(manifest) in KUBECTL_DEFAULT_PRUNE_KINDS


def identity(manifest: Manifest) -> str:
    """`Kind namespace/name` (`-` for a cluster-scoped object): what kubectl apply and delete address."""
    meta_ = manifest["metadata"]
    return f"{manifest['kind']} {meta_.get('namespace', '-')}/{meta_['name']}"


def object_unit_id(manifest: Manifest) -> str:
    """Construct id of an object's own manifest: its identity, so a renamed object is a new manifest (and the old
    one is deleted). Independent of the chart: moving an object between charts keeps its manifest."""
    meta_ = manifest["metadata"]
    return f"{manifest['kind']}.{meta_.get('namespace', '-')}.{meta_['name']}"


@dataclass(frozen=True)
class Unit:
    """One KubernetesManifest: a chart's prunable objects (`single` False), or one object of its own."""

    id: str
    chart: str
    objects: list[Manifest]
    single: bool

    @property
    def retain(self) -> bool:
        """A Namespace is never deleted by CloudFormation: its deletion cascades to everything inside it."""
        return self.single and self.objects[0]["kind"] == "Namespace"


def add_inventory(env: EnvironmentConfig, chart_id: str, chart: Chart) -> None:
    """The chart's inventory ConfigMap (in the app namespace, which the Cluster stack creates first)."""
    objects = sorted(identity(m) for m in chart.to_json())
    k8s.KubeConfigMap(
        chart,
        "Inventory",
        metadata=meta(
            f"{INVENTORY_PREFIX}{chart_id}",
            env.namespace,
            annotations={
                "erp.platform/purpose": "what the Workloads stack applies for this chart (k8s_charts/manifests.py)"
            },
        ),
        data={"chart": chart_id, "objects": "\n".join(objects) + "\n"},
    )


def deploy_units(charts: Mapping[str, list[Manifest]]) -> list[Unit]:
    """In deployment order: per chart, its Namespaces and objects of kinds kubectl does not prune (each alone),
    then the chart's own manifest with the rest. Chart ids and object ids are checked to be distinct."""
    units: list[Unit] = []
    for chart_id, objects in charts.items():
        grouped = []
        for manifest in objects:
            if prunable(manifest) and manifest["kind"] != "Namespace":
                grouped.append(manifest)
            else:
                units.append(Unit(object_unit_id(manifest), chart_id, [manifest], single=True))
        if not grouped:
            raise ValueError(f"chart {chart_id}: its own manifest would be empty (add_inventory adds its anchor)")
        units.append(Unit(chart_id, chart_id, grouped, single=False))
    ids = [unit.id for unit in units]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"two manifests would share a construct id: {', '.join(duplicates)}")
    return units

"""Capacity fit at synth (issue 22 item 2): a config whose pods can never all be scheduled is refused in one line.

For each node group, everything that may land on it at its largest must fit in `max_size` x what one node of its
instance type gives the scheduler:
  * the charts' Deployments, StatefulSets and Jobs at their maximum (HPA maxReplicas), rendered as the
    Workloads stack renders them (k8s_charts.build_charts);
  * the Helm add-ons at the replicas and requests our own values set (each add-on module's `PODS` and
    `pod_values`, constructs_lib/cluster/*.py);
  * the EKS managed add-ons' pods, from config/system-pods.yaml for the versions config/kubernetes-versions.yaml pins;
  * every DaemonSet (ours and the add-ons' node agents) once per node.
"May land" is the scheduler's own test (k8s_charts/placement.py: nodeSelector, node affinity, tolerations); a
workload that may land on two groups counts on both, since the scheduler may put all of it on either.
Allocatable per node comes from config/instance-types.yaml with the EKS AMI's formulas (max pods from the ENIs,
kube-reserved CPU and memory, the eviction threshold). Checked at max: CPU, memory, pod count, every pod fitting one
node beside the DaemonSets, and one node per pod for pods that refuse to share a host. The min and desired sizes are
reported (`make capacity`), not enforced: the cluster autoscaler grows a group up to max_size.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from config import CONFIG_DIR, ConfigError, environment_names, load_environment
from config.kubernetes_versions import TABLE_FILE as VERSIONS_FILE
from config.kubernetes_versions import addon_version
from config.models import EnvironmentConfig
from config.sections import NodeGroupConfig
from k8s_charts import build_charts
from k8s_charts.placement import (
    NodeShape,
    PodSet,
    Requests,
    helm_pod_sets,
    node_shape,
    pod_requests,
    pod_sets,
    selector_matches,
)
from k8s_charts.values import token_values

INSTANCE_TYPES_FILE = CONFIG_DIR / "instance-types.yaml"
SYSTEM_PODS_FILE = CONFIG_DIR / "system-pods.yaml"
MIB = 2**20
GIB = 2**30


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(CONFIG_DIR.parent))
    except ValueError:
        return str(path)


@cache
def _table(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- nodes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeAllocatable:
    """What one node gives the scheduler: capacity less kube-reserved and the hard eviction threshold."""

    instance_type: str
    requests: Requests
    pods: int


class UnknownInstanceType(ConfigError):
    """An instance type config/instance-types.yaml has no row for."""


def node_allocatable(instance_type: str, path: Path = INSTANCE_TYPES_FILE) -> NodeAllocatable:
    table = _table(path)
    spec = table["instance_types"].get(instance_type)
    if spec is None:
        raise UnknownInstanceType(
            f"{instance_type} has no row in {_display(path)} (record its vcpu, memory_mib, enis and ipv4_per_eni "
            "from the sources the file names)"
        )
    formulas = table["formulas"]
    max_pods = spec["enis"] * (spec["ipv4_per_eni"] - 1) + formulas["max_pods"]["extra"]
    cores = spec["vcpu"]
    reserved_cpu = sum(
        (min(cores, upper if upper is not None else cores) - lower) * 1000 * percent / 100
        for lower, upper, percent in formulas["kube_reserved_cpu_percent"]
        if cores > lower
    )
    memory_mib = spec["memory_mib"] - (formulas["arm64_reserved_mib"] if spec["arch"] == "arm64" else 0)
    memory_mib -= math.ceil(memory_mib * formulas["vm_memory_overhead_percent"] / 100)
    reserved = formulas["kube_reserved_memory_mib"]
    memory_mib -= reserved["per_pod"] * max_pods + reserved["base"] + formulas["eviction_hard_memory_mib"]
    return NodeAllocatable(instance_type, Requests(cores * 1000 - math.floor(reserved_cpu), memory_mib * MIB), max_pods)


def group_allocatable(group: NodeGroupConfig, path: Path = INSTANCE_TYPES_FILE) -> NodeAllocatable:
    """A group of several instance types may get its smallest: that one counts."""
    nodes = [node_allocatable(t, path) for t in group.instance_types]
    return min(nodes, key=lambda n: (n.requests.cpu_millis, n.requests.memory_bytes, n.pods))


# --- pods ---------------------------------------------------------------------------------------------------


def chart_pod_sets(env: EnvironmentConfig) -> list[PodSet]:
    """The charts' pods, rendered as the Workloads stack renders them (deploy-time values as tokens: only the
    shapes matter here)."""
    manifests = [m for chart in build_charts(env, token_values(env)).values() for m in chart.to_json()]
    return pod_sets(manifests)


def helm_addon_pod_sets(env: EnvironmentConfig) -> list[PodSet]:
    """Every Helm add-on module of constructs_lib/cluster (one with an `ADDON`), sized by its own values."""
    # Imported here: the add-on modules build CDK constructs, which config/ otherwise never needs.
    import constructs_lib.cluster as cluster_modules
    from constructs_lib.cluster.helm_addon import HelmAddon

    found = []
    for info in sorted(pkgutil.iter_modules(cluster_modules.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{cluster_modules.__name__}.{info.name}")
        addon = getattr(module, "ADDON", None)
        if not isinstance(addon, HelmAddon) or not hasattr(module, "PODS"):
            continue  # tests/charts/test_capacity.py requires PODS and pod_values of every Helm add-on
        found += helm_pod_sets(addon.release_name, addon.namespace, module.PODS, module.pod_values(env))
    return found


def eks_addon_pod_sets(env: EnvironmentConfig, path: Path = SYSTEM_PODS_FILE) -> list[PodSet]:
    """The EKS managed add-ons' pods at the versions pinned for the control plane's minor."""
    minor = env.cluster.kubernetes_version
    found = []
    for name, addon in _table(path)["addons"].items():
        if addon["installed"] == "container_insights" and not env.observability.container_insights:
            continue
        version = addon_version(minor, name)
        entry = addon["versions"].get(version or "unpinned")
        if entry is None:
            pinned = f"{version}, pinned for {minor} in {_display(VERSIONS_FILE)}" if version else f"no pin for {minor}"
            raise ConfigError(
                f"{_display(path)}: addons.{name}.versions: no requests recorded for {version or 'unpinned'} "
                f"({pinned}); read them from the add-on's upstream manifest at that version"
            )
        for pod in entry["pods"]:
            pod_spec = {
                "containers": [{"name": pod["name"], "resources": {"requests": pod["requests"]}}],
                "nodeSelector": pod.get("node_selector", {}),
                "tolerations": pod.get("tolerations", []),
            }
            count = pod.get("replicas", 1)
            found.append(
                PodSet(
                    key=f"{pod.get('namespace', 'kube-system')}/{pod['name']}",
                    kind=pod["kind"],
                    min_pods=count,
                    max_pods=count,
                    requests=pod_requests(pod_spec),
                    pod_spec=pod_spec,
                    origin=f"eks:{name}",
                )
            )
    return found


def all_pod_sets(env: EnvironmentConfig) -> list[PodSet]:
    return chart_pod_sets(env) + helm_addon_pod_sets(env) + eks_addon_pod_sets(env)


# --- fit ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeFit:
    """One group at one size: what its pods ask for against what its nodes give."""

    size: str  # min | desired | max
    nodes: int
    requested: Requests
    pods: int
    allocatable: Requests
    max_pods: int

    @property
    def fits(self) -> bool:
        return (
            self.requested.cpu_millis <= self.allocatable.cpu_millis
            and self.requested.memory_bytes <= self.allocatable.memory_bytes
            and self.pods <= self.max_pods
        )


@dataclass(frozen=True)
class GroupFit:
    env: str
    group: NodeGroupConfig
    node: NodeAllocatable
    pods: tuple[PodSet, ...]  # what may land on the group

    def at(self, size: str) -> SizeFit:
        """At min and desired size the workloads run their minimum replicas, at max their maximum."""
        nodes = {"min": self.group.min_size, "desired": self.group.desired_size, "max": self.group.max_size}[size]
        requested, count = Requests(), 0
        for pod_set in self.pods:
            pods = nodes if pod_set.per_node else (pod_set.max_pods if size == "max" else pod_set.min_pods)
            requested, count = requested + pod_set.requests * pods, count + pods
        return SizeFit(size, nodes, requested, count, self.node.requests * nodes, self.node.pods * nodes)

    def shortfalls(self) -> list[str]:
        """What cannot be scheduled at max_size, one phrase each; empty when everything fits."""
        fit = self.at("max")
        found = []
        at = f"at max_size {fit.nodes}"
        cpu, memory = fit.requested.cpu_millis, fit.requested.memory_bytes
        if cpu > fit.allocatable.cpu_millis:
            found.append(
                f"cpu requests at max {_vcpu(cpu)} > allocatable {_vcpu(fit.allocatable.cpu_millis)} {at} "
                f"(short {_vcpu(cpu - fit.allocatable.cpu_millis)})"
            )
        if memory > fit.allocatable.memory_bytes:
            found.append(
                f"memory requests at max {_gib(memory)} > allocatable {_gib(fit.allocatable.memory_bytes)} {at} "
                f"(short {_gib(memory - fit.allocatable.memory_bytes)})"
            )
        if fit.pods > fit.max_pods:
            found.append(
                f"pods at max {fit.pods} > max pods {fit.max_pods} {at} ({self.node.instance_type}: "
                f"{self.node.pods} per node; short {fit.pods - fit.max_pods})"
            )
        per_node = sum((p.requests for p in self.pods if p.per_node), Requests())
        free = Requests(
            self.node.requests.cpu_millis - per_node.cpu_millis,
            self.node.requests.memory_bytes - per_node.memory_bytes,
        )
        for pod_set in self.pods:
            if pod_set.per_node:
                continue
            need = pod_set.requests
            if need.cpu_millis > free.cpu_millis or need.memory_bytes > free.memory_bytes:
                found.append(
                    f"a {pod_set.key} pod ({_vcpu(need.cpu_millis)}, {_gib(need.memory_bytes)}) fits no "
                    f"{self.node.instance_type} beside its DaemonSets ({_vcpu(free.cpu_millis)}, "
                    f"{_gib(free.memory_bytes)} free)"
                )
            if _one_per_host(pod_set) and pod_set.max_pods > fit.nodes:
                found.append(
                    f"{pod_set.key} needs a node per pod: {pod_set.max_pods} pods > max_size {fit.nodes} "
                    f"(short {pod_set.max_pods - fit.nodes} node(s))"
                )
        return found


def _one_per_host(pod_set: PodSet) -> bool:
    """Required pod anti-affinity on the hostname against its own pods: no two on one node."""
    terms = (
        (pod_set.pod_spec.get("affinity") or {})
        .get("podAntiAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    return any(
        t.get("topologyKey") == "kubernetes.io/hostname" and selector_matches(t.get("labelSelector"), pod_set.labels)
        for t in terms
    )


def _vcpu(millis: int) -> str:
    return f"{millis / 1000:.2f} vCPU"


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB"


def group_fits(env: EnvironmentConfig, pods: Iterable[PodSet] | None = None) -> list[GroupFit]:
    pods = list(all_pod_sets(env) if pods is None else pods)
    fits = []
    for group in env.cluster.node_groups:
        shape: NodeShape = node_shape(group)
        landing = tuple(p for p in pods if shape.admits(p.pod_spec))
        fits.append(GroupFit(env.name, group, group_allocatable(group), landing))
    return fits


def check_capacity(env: EnvironmentConfig, config_dir: Path = CONFIG_DIR) -> None:
    """ConfigError (one line: file, group, resource, shortfall) when a group cannot hold its pods at max_size."""
    config_file = _display(Path(config_dir) / f"{env.name}.yaml")
    for group in env.cluster.node_groups:
        try:
            group_allocatable(group)
        except UnknownInstanceType as exc:
            raise ConfigError(f"{config_file}: cluster.node_groups[{group.name}].instance_types: {exc}") from None
    problems = [
        f"cluster.node_groups[{fit.group.name}]: {'; '.join(short)}"
        for fit in group_fits(env)
        if (short := fit.shortfalls())
    ]
    if problems:
        raise ConfigError(f"{config_file}: {'; '.join(problems)}")


# --- the table ----------------------------------------------------------------------------------------------

HEADER = (
    "| env | group | instance | size | nodes | CPU requested / allocatable | memory requested / allocatable "
    "| pods / max pods | fits |"
)


def table_rows(fits: Iterable[GroupFit]) -> list[str]:
    rows = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for fit in fits:
        for size in ("min", "desired", "max"):
            s = fit.at(size)
            rows.append(
                f"| {fit.env} | {fit.group.name} | {fit.node.instance_type} | {size} | {s.nodes} "
                f"| {s.requested.cpu_millis / 1000:.2f} / {s.allocatable.cpu_millis / 1000:.2f} vCPU "
                f"| {s.requested.memory_bytes / GIB:.2f} / {s.allocatable.memory_bytes / GIB:.2f} GiB "
                f"| {s.pods} / {s.max_pods} | {'yes' if s.fits else 'no'} |"
            )
    return rows


def detail_rows(fit: GroupFit) -> list[str]:
    rows = [f"{fit.env} / {fit.group.name}: what may land there (per pod; count at min..max, DaemonSet: per node)"]
    for p in sorted(fit.pods, key=lambda p: (p.origin, p.key)):
        count = "per node" if p.per_node else f"{p.min_pods}..{p.max_pods}"
        rows.append(
            f"  {p.origin:<40} {p.key:<60} {p.kind:<11} {count:>8}  "
            f"{p.requests.cpu_millis:>5}m {p.requests.memory_bytes / MIB:>7.0f}Mi"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Requested CPU/memory/pods per node group vs allocatable.")
    parser.add_argument("--env", action="append", help="environment (default: every config/<env>.yaml)")
    parser.add_argument("--detail", action="store_true", help="also list every pod set counted per group")
    args = parser.parse_args(argv)
    fits: list[GroupFit] = []
    try:
        for name in args.env or environment_names():
            fits += group_fits(load_environment(name))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(table_rows(fits)))
    if args.detail:
        for fit in fits:
            print("\n" + "\n".join(detail_rows(fit)))
    short = [f"{f.env}: cluster.node_groups[{f.group.name}]: {s}" for f in fits for s in f.shortfalls()]
    for line in short:
        print(f"does not fit: {line}", file=sys.stderr)
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())

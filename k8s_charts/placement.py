"""Which pods can run on which node group, how many, and what each asks the scheduler for.

Read from rendered manifests (the charts, or a system pod written as one), so the capacity check at synth
(config/capacity.py) and the drain simulation (tests/charts/test_drains.py) judge the same pods the cluster
will get. The scheduler's rules are kept to what decides placement here: nodeSelector and required node
affinity against the node's labels, tolerations against its NoSchedule/NoExecute taints, and a pod's effective
requests (init containers run before the others, sidecars beside them, plus any pod overhead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.sections import NodeGroupConfig

Manifest = dict[str, Any]

# The label (and tag) every managed node group carries (constructs_lib/cluster/eks.py sets it on the nodes).
NODE_GROUP_KEY = "erp/node-group"
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

_CPU = re.compile(r"^([0-9.]+)(m?)$")
_MEMORY = re.compile(r"^([0-9.]+(?:e[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


def cpu_millis(quantity: str | int | float) -> int:
    """A CPU quantity ("250m", "1", 0.5) in millicores, rounded up as the API server does."""
    match = _CPU.match(str(quantity))
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    number = float(match.group(1))
    return math.ceil(number if match.group(2) else number * 1000)


def memory_bytes(quantity: str | int) -> int:
    """A memory quantity ("512Mi", "1G", 1048576) in bytes."""
    match = _MEMORY.match(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return math.ceil(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


@dataclass(frozen=True)
class Requests:
    """What one pod (or a sum of pods) asks the scheduler for."""

    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def __mul__(self, times: int) -> Requests:
        return Requests(self.cpu_millis * times, self.memory_bytes * times)

    def at_least(self, other: Requests) -> Requests:
        return Requests(max(self.cpu_millis, other.cpu_millis), max(self.memory_bytes, other.memory_bytes))

    @classmethod
    def of(cls, requests: Mapping[str, Any] | None) -> Requests:
        requests = requests or {}
        return cls(cpu_millis(requests.get("cpu", 0)), memory_bytes(requests.get("memory", 0)))


def pod_requests(pod_spec: Manifest) -> Requests:
    """The pod's effective requests, as kube-scheduler computes them: the larger of (every container plus every
    sidecar) and (each init container plus the sidecars started before it), plus the pod overhead."""
    running = Requests()
    sidecars = Requests()
    init_peak = Requests()
    for init in pod_spec.get("initContainers", []):
        own = Requests.of(init.get("resources", {}).get("requests"))
        if init.get("restartPolicy") == "Always":  # a native sidecar: runs beside the app containers
            sidecars = sidecars + own
        else:
            init_peak = init_peak.at_least(sidecars + own)
    for container in pod_spec.get("containers", []):
        running = running + Requests.of(container.get("resources", {}).get("requests"))
    return (running + sidecars).at_least(init_peak) + Requests.of(pod_spec.get("overhead"))


# --- nodes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeShape:
    """The labels and taints every node of one group carries."""

    group: str
    labels: Mapping[str, str]
    taints: tuple[tuple[str, str, str], ...]  # (key, value, effect)

    def admits(self, pod_spec: Manifest) -> bool:
        """Whether the scheduler may put this pod on such a node (resources aside)."""
        if any(self.labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
            return False
        required = (
            (pod_spec.get("affinity") or {})
            .get("nodeAffinity", {})
            .get("requiredDuringSchedulingIgnoredDuringExecution")
        )
        if required and not any(self._term_matches(t) for t in required.get("nodeSelectorTerms", [])):
            return False
        tolerations = pod_spec.get("tolerations") or []
        return all(
            any(_tolerates(t, taint) for t in tolerations)
            for taint in self.taints
            if taint[2] in ("NoSchedule", "NoExecute")
        )

    def _term_matches(self, term: Manifest) -> bool:
        for expression in term.get("matchExpressions", []):
            key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
            value = self.labels.get(key)
            ok = {
                "In": value is not None and value in values,
                "NotIn": value is None or value not in values,
                "Exists": value is not None,
                "DoesNotExist": value is None,
                "Gt": value is not None and value.isdigit() and int(value) > int(values[0]),
                "Lt": value is not None and value.isdigit() and int(value) < int(values[0]),
            }[operator]
            if not ok:
                return False
        return True


def _tolerates(toleration: Manifest, taint: tuple[str, str, str]) -> bool:
    key, value, effect = taint
    if toleration.get("effect") not in (None, "", effect):
        return False
    if toleration.get("operator") == "Exists":
        return toleration.get("key") in (None, "", key)
    return toleration.get("key") == key and toleration.get("value", "") == value


def node_shape(group: NodeGroupConfig) -> NodeShape:
    """The group's own labels, the node-group label, and the well-known labels the kubelet sets (kubernetes.io/os,
    kubernetes.io/arch; the instance type when the group has one)."""
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64" if group.arm64 else "amd64",
        "eks.amazonaws.com/capacityType": group.capacity,
        **group.labels,
        NODE_GROUP_KEY: group.name,
    }
    if len(group.instance_types) == 1:
        labels["node.kubernetes.io/instance-type"] = group.instance_types[0]
    return NodeShape(group.name, labels, tuple((t.key, t.value, t.effect) for t in group.taints))


# --- pods ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodSet:
    """The pods of one workload: how many (a DaemonSet: one per node), what each requests, where they may run."""

    key: str  # namespace/name
    kind: str
    min_pods: int
    max_pods: int
    requests: Requests  # of one pod
    pod_spec: Manifest = field(compare=False, repr=False)
    origin: str = "charts"  # charts | helm:<release> | eks:<add-on>
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)  # the pods' own

    @property
    def per_node(self) -> bool:
        return self.kind == "DaemonSet"


def replica_range(workload: Manifest, manifests: Iterable[Manifest]) -> tuple[int, int]:
    """The HorizontalPodAutoscaler's [minReplicas, maxReplicas] for the workload, else its fixed size (a Job: its
    parallelism; a DaemonSet: one pod, per node)."""
    meta, spec = workload["metadata"], workload["spec"]
    if workload["kind"] == "DaemonSet":
        return 1, 1
    if workload["kind"] == "Job":
        parallel = min(spec.get("parallelism", 1), spec.get("completions", spec.get("parallelism", 1)))
        return parallel, parallel
    for hpa in manifests:
        if hpa.get("kind") != "HorizontalPodAutoscaler":
            continue
        ref = hpa["spec"]["scaleTargetRef"]
        if (
            ref["kind"] == workload["kind"]
            and ref["name"] == meta["name"]
            and hpa["metadata"].get("namespace") == meta.get("namespace")
        ):
            return hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    replicas = spec.get("replicas", 1)
    return replicas, replicas


def pod_sets(manifests: Sequence[Manifest], origin: str = "charts") -> list[PodSet]:
    """Every Deployment, StatefulSet, DaemonSet and Job of `manifests` with its replica range and requests."""
    found = []
    for manifest in manifests:
        if manifest.get("kind") not in POD_KINDS:
            continue
        pod_spec = manifest["spec"]["template"]["spec"]
        low, high = replica_range(manifest, manifests)
        meta = manifest["metadata"]
        found.append(
            PodSet(
                key=f"{meta.get('namespace', 'default')}/{meta['name']}",
                kind=manifest["kind"],
                min_pods=low,
                max_pods=high,
                requests=pod_requests(pod_spec),
                pod_spec=pod_spec,
                origin=origin,
                labels=manifest["spec"]["template"].get("metadata", {}).get("labels", {}),
            )
        )
    return found


def selector_matches(selector: Manifest | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: absent selects nothing, {} selects everything."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def landing(pods: Iterable[PodSet], shape: NodeShape) -> list[PodSet]:
    """The pod sets the scheduler may place on nodes of this shape."""
    return [p for p in pods if shape.admits(p.pod_spec)]


# --- pods of Helm releases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelmDeployment:
    """One Deployment a Helm add-on runs and where the release's values size it (dotted paths). Each add-on module
    (constructs_lib/cluster/*.py) lists its own in `PODS` beside `pod_values(config)`, so that the capacity check
    counts exactly the replicas and requests the release is given."""

    name: str
    replicas: str
    resources: str
    default_replicas: int = 1  # the chart's, when the values leave `replicas` unset
    node_selector: str | None = None
    tolerations: str | None = None


def value_at(values: Mapping[str, Any], path: str | None, default: Any = None) -> Any:
    if path is None:
        return default
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def helm_pod_sets(release: str, namespace: str, deployments: Iterable[HelmDeployment], values: Mapping) -> list[PodSet]:
    """The release's Deployments as pod sets, sized by its values."""
    found = []
    for deployment in deployments:
        replicas = int(value_at(values, deployment.replicas, deployment.default_replicas))
        pod_spec = {
            "containers": [{"name": deployment.name, "resources": value_at(values, deployment.resources, {}) or {}}],
            "nodeSelector": value_at(values, deployment.node_selector, {}) or {},
            "tolerations": value_at(values, deployment.tolerations, []) or [],
        }
        found.append(
            PodSet(
                key=f"{namespace}/{deployment.name}",
                kind="Deployment",
                min_pods=replicas,
                max_pods=replicas,
                requests=pod_requests(pod_spec),
                pod_spec=pod_spec,
                origin=f"helm:{release}",
            )
        )
    return found

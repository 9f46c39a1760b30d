"""Node drains that finish (issue 24 item 3, issue 22 item 3): each node group drained one node at a time.

A managed node group's version update (and a scale-in, a node repair) drains `UpdateConfig.MaxUnavailable` nodes
at a time, evicting every pod through the Eviction API; an eviction that a PodDisruptionBudget never allows makes
the update fail after 15 minutes with PodEvictionFailure. For every workload that can land on a group (its
nodeSelector and the group's labels, its tolerations and the group's taints), at its smallest and its largest
replica count (the HPA's range), every budget that selects its pods must allow at least one disruption while all
its pods are healthy (the state a one-node-at-a-time drain starts each eviction from). Kubernetes' arithmetic:
a percentage maxUnavailable or minAvailable rounds up.
"""

from __future__ import annotations

import math

import pytest

from config.sections import NodeGroupConfig
from k8s_charts import placement
from tests.charts.conftest import ENVIRONMENTS, build
from tests.support.charts import Manifest, Workload, find, selector_matches, workloads


def _absolute(value: int | str, pods: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(pods * int(value[:-1]) / 100)
    return int(value)


def allowed_disruptions(budget: Manifest, pods: int) -> int:
    """PodDisruptionBudget status.disruptionsAllowed with every one of `pods` healthy."""
    spec = budget["spec"]
    if "maxUnavailable" in spec:
        return max(0, _absolute(spec["maxUnavailable"], pods))
    return max(0, pods - _absolute(spec.get("minAvailable", 1), pods))


def replica_range(workload: Workload, manifests: list[Manifest]) -> tuple[int, int]:
    return placement.replica_range(workload.manifest, manifests)


def lands_on(workload: Workload, group: NodeGroupConfig) -> bool:
    """The scheduler's placement rules, shared with the capacity check (k8s_charts/placement.py)."""
    return placement.node_shape(group).admits(workload.pod_spec)


def drain_blockers(env_name: str, manifests: list[Manifest]) -> list[str]:
    env = build(env_name).env
    budgets = find(manifests, "PodDisruptionBudget")
    found = []
    for group in env.cluster.node_groups:
        for workload in workloads(manifests):
            if workload.kind not in ("Deployment", "StatefulSet") or not lands_on(workload, group):
                continue
            for pods in sorted(set(replica_range(workload, manifests))):
                for budget in budgets:
                    if budget["metadata"].get("namespace") != workload.namespace:
                        continue
                    if not selector_matches(budget["spec"].get("selector"), workload.pod_labels):
                        continue
                    if allowed_disruptions(budget, pods) < 1:
                        found.append(
                            f"{env_name}: draining {group.name} blocks forever on {workload.key} at {pods} pod(s): "
                            f"PodDisruptionBudget {budget['metadata']['name']} allows 0 evictions"
                        )
    return found


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_every_node_group_drains_one_node_at_a_time_without_a_blocking_budget(env_name):
    manifests = build(env_name).everything
    assert drain_blockers(env_name, manifests) == []
    # Not vacuous: the services and Kafka have budgets, and some workload lands on every group.
    assert find(manifests, "PodDisruptionBudget")
    env = build(env_name).env
    for group in env.cluster.node_groups:
        assert any(lands_on(w, group) for w in workloads(manifests)), group.name


@pytest.mark.parametrize(
    ("budget_spec", "pods", "blocked"),
    [
        ({"minAvailable": 1}, 1, True),  # a singleton with minAvailable 1
        ({"minAvailable": 3}, 2, True),  # a budget larger than the replicas
        ({"maxUnavailable": 0}, 3, True),
        ({"minAvailable": "100%"}, 4, True),
        ({"maxUnavailable": 1}, 1, False),  # a one-pod workload may go (downtime, not a stuck drain)
        ({"minAvailable": "50%"}, 2, False),
    ],
)
def test_the_simulation_catches_a_budget_that_never_allows_an_eviction(budget_spec, pods, blocked):
    manifests = [m for m in build("dev").everything if m["kind"] != "PodDisruptionBudget"]
    kafka = next(m for m in manifests if m["kind"] == "StatefulSet")
    selector = {"matchLabels": kafka["spec"]["selector"]["matchLabels"]}
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "planted", "namespace": kafka["metadata"]["namespace"]},
        "spec": {**budget_spec, "selector": selector},
    }
    kafka = {**kafka, "spec": {**kafka["spec"], "replicas": pods}}
    manifests = [kafka if m["kind"] == "StatefulSet" else m for m in manifests] + [budget]
    assert bool(drain_blockers("dev", manifests)) is blocked

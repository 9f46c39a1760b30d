"""Issue 18 item 9c: whatever leaves the charts leaves the cluster, for every kind the charts render.

The kubectl handler applies a manifest with `kubectl apply --prune -l <its label>` and no allow-list, so kubectl
prunes only its default kinds; it deletes a whole manifest's objects with `kubectl delete` when CloudFormation
deletes the manifest (k8s_charts/manifests.py quotes both). `cluster_after` replays exactly that for two
renders of the charts, so these tests see what a deploy leaves behind.
"""

from __future__ import annotations

import pytest

from config import load_environment
from config.models import EnvironmentConfig
from k8s_charts import build_charts, names
from k8s_charts.manifests import (
    KUBECTL_DEFAULT_PRUNE_KINDS,
    Unit,
    deploy_units,
    group_kind,
    identity,
    object_unit_id,
    prunable,
)
from tests.support.charts import Manifest

from .conftest import ENVIRONMENTS, build, fake_values


def units_of(env: EnvironmentConfig) -> list[Unit]:
    return deploy_units({key: chart.to_json() for key, chart in build_charts(env, fake_values(env)).items()})


def cluster_after(before: list[Unit], after: list[Unit]) -> set[str]:
    """Identities in the cluster after a deploy from `before` to `after`, as CloudFormation and the handler act:
    kept and new manifests are applied (kept ones with --prune: default kinds carrying their label, in the
    namespaces the new manifest visits, or cluster-scoped); removed manifests are deleted object by object."""
    live = {identity(m) for unit in before for m in unit.objects}
    old = {unit.id: unit for unit in before}
    new = {unit.id: unit for unit in after}
    for unit_id, unit in new.items():
        applied = {identity(m) for m in unit.objects}
        live |= applied
        if unit_id in old:
            visited = {m["metadata"].get("namespace", "default") for m in unit.objects}
            for m in old[unit_id].objects:
                namespace = m["metadata"].get("namespace")
                if identity(m) not in applied and prunable(m) and (namespace is None or namespace in visited):
                    live.discard(identity(m))
    for unit_id, unit in old.items():
        if unit_id not in new:
            live -= {identity(m) for m in unit.objects}
    return live


def wanted(units: list[Unit]) -> set[str]:
    return {identity(m) for unit in units for m in unit.objects}


def without(env: EnvironmentConfig, name: str) -> EnvironmentConfig:
    """`env` with service `name` removed from config (and from the `uses` of its callers)."""
    services = [s.model_copy(update={"uses": [u for u in s.uses if u != name]}) for s in env.services if s.name != name]
    return env.model_copy(update={"services": services})


REMOVALS = [(env, s.name) for env in ENVIRONMENTS for s in load_environment(env).services]


@pytest.mark.parametrize(("env_name", "service"), REMOVALS)
def test_removing_a_service_leaves_nothing_of_it_behind(env_name, service):
    env = load_environment(env_name)
    before, after = units_of(env), units_of(without(env, service))
    gone = wanted(before) - wanted(after)
    # Never vacuous: the service's own objects of the kinds kubectl would not prune are among those to go.
    kinds = {entry.split(" ")[0] for entry in gone}
    assert {"NetworkPolicy", "TargetGroupBinding", "ServiceAccount", "Deployment", "Service"} <= kinds
    assert cluster_after(before, after) == wanted(after), sorted(cluster_after(before, after) - wanted(after))


def test_the_old_one_manifest_per_chart_layout_left_the_service_behind():
    """What issue 18 item 9 found: with each chart one manifest, removing a service left its NetworkPolicies,
    TargetGroupBinding, ExternalSecret, HPA, PDB and ServiceAccount in the cluster (the check bites)."""
    env = load_environment("prod")
    service = next(s for s in env.services if s.autoscaled and "mongodb" in s.uses)

    def per_chart(config: EnvironmentConfig) -> list[Unit]:
        charts = build_charts(config, fake_values(config))
        return [Unit(key, key, chart.to_json(), single=False) for key, chart in charts.items()]

    before, after = per_chart(env), per_chart(without(env, service.name))
    left = cluster_after(before, after) - wanted(after)
    assert {entry.split(" ")[0] for entry in left} == {
        "NetworkPolicy",
        "TargetGroupBinding",
        "ExternalSecret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
    }
    assert f"ServiceAccount {env.namespace}/{service.name}" in left
    # ...and what existed only for it: the employee proxy it alone called, the callee's policy admitting it.
    assert f"ServiceAccount {env.namespace}/{names.EMPLOYEE_PROXY}" in left


def test_a_new_port_deletes_the_old_binding():
    env = load_environment("dev")
    service = env.services[0]
    moved = env.model_copy(
        update={"services": [service.model_copy(update={"port": service.port + 100}), *env.services[1:]]}
    )
    before, after = units_of(env), units_of(moved)
    assert f"TargetGroupBinding {env.namespace}/{service.name}-{service.port}" not in cluster_after(before, after)
    assert cluster_after(before, after) == wanted(after)


def test_a_service_that_stops_autoscaling_loses_its_hpa_and_budget():
    env = load_environment("prod")
    service = next(s for s in env.services if s.autoscaled)
    fixed = service.model_copy(update={"singleton": True, "replicas": 1, "min_replicas": 1, "max_replicas": 1})
    changed = env.model_copy(update={"services": [fixed if s is service else s for s in env.services]})
    before, after = units_of(env), units_of(changed)
    live = cluster_after(before, after)
    assert f"HorizontalPodAutoscaler {env.namespace}/{service.name}" not in live
    assert f"PodDisruptionBudget {env.namespace}/{service.name}" not in live
    assert live == wanted(after)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_each_object_is_pruned_or_alone_in_a_manifest_named_after_it(env_name):
    built = build(env_name)
    units = deploy_units({chart_id: built.chart(chart_id) for chart_id in built.charts})
    chart_ids = list(built.charts)
    for unit in units:
        if unit.single:
            (only,) = unit.objects
            assert unit.id == object_unit_id(only)
            assert not prunable(only) or only["kind"] == "Namespace", unit.id
        else:
            assert unit.id == unit.chart in chart_ids
            assert unit.objects and all(prunable(m) and m["kind"] != "Namespace" for m in unit.objects), unit.id
    # Every chart keeps its own, never-empty manifest (its Delete would `kubectl delete` what it last applied).
    assert [u.id for u in units if not u.single] == chart_ids
    # A namespace is applied before anything in it, and CloudFormation never deletes one.
    order = [m for unit in units for m in unit.objects]
    for position, namespace in enumerate(order):
        if namespace["kind"] == "Namespace":
            name = namespace["metadata"]["name"]
            assert all(m["metadata"].get("namespace") != name for m in order[:position])
            assert next(u for u in units if u.objects[0] is namespace).retain
    assert not [u for u in units if u.retain and u.objects[0]["kind"] != "Namespace"]


def test_kinds_outside_kubectls_default_prune_list_are_the_ones_split_out(built):
    rendered = {group_kind(m) for m in built.everything}
    split = {g for g in rendered if g not in KUBECTL_DEFAULT_PRUNE_KINDS}
    assert {k for _, k in split} >= {
        "NetworkPolicy",
        "TargetGroupBinding",
        "ExternalSecret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
    }


def test_two_objects_with_one_identity_are_refused():
    twin: Manifest = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "n"}}
    anchor: Manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    with pytest.raises(ValueError, match="share a construct id: ServiceAccount.n.a"):
        deploy_units({"one": [twin, anchor], "two": [dict(twin), anchor]})


def test_a_chart_without_an_anchor_is_refused():
    alone: Manifest = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "n"}}
    with pytest.raises(ValueError, match="its own manifest would be empty"):
        deploy_units({"one": [alone]})

"""Pod rules for every workload (Deployment, StatefulSet, DaemonSet, Job), and proof that each check bites."""

from __future__ import annotations

import copy

import pytest

from k8s_charts import names
from k8s_charts.namespace import APP_NAMESPACE_CHART
from tests.support.charts import (
    find,
    image_violations,
    pdb_violations,
    probe_violations,
    resource_violations,
    restricted_namespaces,
    restricted_violations,
    security_violations,
    workloads,
)

from .conftest import build


def test_every_workload_kind_is_covered(built):
    kinds = {w.kind for w in workloads(built.everything)}
    assert kinds == {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def test_images_are_pinned(built):
    assert image_violations(built.everything) == []


def test_every_container_has_cpu_and_memory_requests_and_limits(built):
    assert resource_violations(built.everything) == []


def test_long_running_containers_have_liveness_and_readiness_probes(built):
    assert probe_violations(built.everything) == []


def test_containers_are_locked_down_with_only_the_named_root_exception(built):
    assert security_violations(built.everything) == []
    # The exception is used, and by exactly the workloads it names.
    assert security_violations(built.everything, root_exempt=frozenset()) != []
    root = {
        w.key
        for w in workloads(built.everything)
        if w.pod_spec["containers"][0]["securityContext"].get("runAsUser") == 0
    }
    assert root == set(names.ROOT_EXEMPT_WORKLOADS)


def test_erp_namespace_enforces_restricted_and_its_pods_comply(built):
    assert restricted_namespaces(built.everything) == {built.env.namespace}
    assert restricted_violations(built.everything) == []


def test_every_workload_that_can_scale_past_one_pod_has_a_matching_pdb(built):
    assert pdb_violations(built.everything) == []
    covered = {p["metadata"]["name"] for p in find(built.everything, "PodDisruptionBudget")}
    assert names.KAFKA in covered


def test_services_run_on_the_apps_node_group(built):
    for deployment in find(built.chart("services"), "Deployment"):
        selector = dict(deployment["spec"]["template"]["spec"]["nodeSelector"])
        # amd64-only images are also pinned to x86 nodes (test_services.test_amd64_images_run_on_x86_nodes_only).
        selector.pop("kubernetes.io/arch", None)
        assert selector == dict([names.APPS_NODE_LABEL])
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


# --- each check rejects a broken manifest ----------------------------------------------------------------


@pytest.fixture
def deployment() -> dict:
    return copy.deepcopy(find(build("prod").chart("services"), "Deployment")[0])


@pytest.mark.parametrize("image", ["erp/approval-request-service", "erp/approval-request-service:latest", "reg:5000/x"])
def test_unpinned_images_are_flagged(deployment, image):
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
    assert len(image_violations([deployment])) == 1


def test_digest_pinned_images_pass(deployment):
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "erp/x@sha256:" + "a" * 64
    assert image_violations([deployment]) == []


def test_missing_limits_and_init_container_resources_are_flagged(deployment):
    spec = deployment["spec"]["template"]["spec"]
    del spec["containers"][0]["resources"]["limits"]["memory"]
    spec["initContainers"] = [{"name": "migrate", "image": "erp/migrate:1", "resources": {}}]
    assert sorted(resource_violations([deployment])) == sorted(
        [f"erp-prod/{deployment['metadata']['name']}/{deployment['metadata']['name']}: no limits.memory"]
        + [
            f"erp-prod/{deployment['metadata']['name']}/migrate: no {k}.{r}"
            for k in ("requests", "limits")
            for r in ("cpu", "memory")
        ]
    )


def test_missing_probes_are_flagged_but_not_on_jobs(deployment):
    del deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    job = copy.deepcopy(find(build("prod").chart("kafka"), "Job")[0])
    assert len(probe_violations([deployment, job])) == 1


def test_root_and_escalation_are_flagged_outside_the_exception(deployment):
    spec = deployment["spec"]["template"]["spec"]
    spec["securityContext"]["runAsNonRoot"] = False
    spec["containers"][0]["securityContext"].pop("runAsNonRoot")
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    found = security_violations([deployment])
    assert any("runAsNonRoot" in v for v in found) and any("allowPrivilegeEscalation" in v for v in found)


def test_the_root_exception_still_forbids_privilege_escalation():
    fluent_bit = copy.deepcopy(find(build("prod").chart("logging"), "DaemonSet", names.FLUENT_BIT)[0])
    fluent_bit["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert security_violations([fluent_bit]) == [
        f"{names.LOGGING_NAMESPACE}/{names.FLUENT_BIT}/{names.FLUENT_BIT}: allowPrivilegeEscalation is not false"
    ]


def test_host_access_is_flagged_in_the_restricted_namespace(deployment):
    namespace = find(build("prod").chart(APP_NAMESPACE_CHART), "Namespace")
    deployment["spec"]["template"]["spec"]["hostNetwork"] = True
    deployment["spec"]["template"]["spec"]["volumes"].append({"name": "logs", "hostPath": {"path": "/var/log"}})
    assert len(restricted_violations([*namespace, deployment])) == 2


def test_a_pdb_must_really_select_the_pods():
    services = copy.deepcopy(build("prod").chart("services"))
    pdbs = find(services, "PodDisruptionBudget")
    assert pdbs
    for pdb in pdbs:
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] += "-typo"
    assert len(pdb_violations(services)) == len(pdbs)


def test_an_hpa_maximum_above_one_needs_a_pdb():
    dev = copy.deepcopy(build("dev").chart("services"))
    # dev runs one pod per service (an HPA-managed Deployment leaves the count to its HPA, which starts at 1)...
    assert all(d["spec"].get("replicas", 1) == 1 for d in find(dev, "Deployment"))
    without_pdbs = [m for m in dev if m["kind"] != "PodDisruptionBudget"]
    # ...but its HPA may add one (the singleton has no HPA, so no budget is needed there)
    assert len(pdb_violations(without_pdbs)) == len([s for s in build("dev").env.services if s.autoscaled])

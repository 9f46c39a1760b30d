"""Capacity fit at synth (issue 22 item 2): what may land on a node group at its largest fits max_size nodes.

The allocatable figures are the EKS AMI's formulas over a sourced instance table (checked against Karpenter's
published allocatable for the same types); the system pods come from a sourced table per pinned add-on version
and from our own Helm values; an over-committed config fails synth with one line naming the file, the group, the
resource and the shortfall.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import constructs_lib.cluster as cluster_modules
from config import ConfigError, load_environment
from config.capacity import (
    INSTANCE_TYPES_FILE,
    SYSTEM_PODS_FILE,
    check_capacity,
    group_fits,
    main,
    node_allocatable,
)
from config.kubernetes_versions import TABLE_FILE as VERSIONS_FILE
from constructs_lib.cluster.helm_addon import HelmAddon
from k8s_charts import placement
from k8s_charts.placement import NodeShape, PodSet, Requests, cpu_millis, memory_bytes, pod_requests, value_at
from tests.charts.conftest import ENVIRONMENTS
from tests.config.test_config import edit
from tests.conftest import REPO, resources_of

MIB, GIB = 2**20, 2**30
CONTRACT_DIR = REPO / "k8s_charts" / "contracts"


def _table(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _with(env, **group_updates):
    """`env` with its first node group changed, past validation (what a broken config would ask for)."""
    group = env.cluster.node_groups[0].model_copy(update=group_updates)
    cluster = env.cluster.model_copy(update={"node_groups": [group, *env.cluster.node_groups[1:]]})
    return env.model_copy(update={"cluster": cluster})


# --- allocatable ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("instance_type", sorted(_table(INSTANCE_TYPES_FILE)["instance_types"]))
def test_allocatable_follows_the_eks_ami_formulas_and_agrees_with_karpenter(instance_type):
    expected = _table(INSTANCE_TYPES_FILE)["instance_types"][instance_type]["cross_check"]
    node = node_allocatable(instance_type)
    assert node.requests == Requests(cpu_millis(expected["cpu"]), memory_bytes(expected["memory"]))
    assert node.pods == expected["pods"]


def test_a_t3_medium_worked_by_hand():
    node = node_allocatable("t3.medium")
    assert node.pods == 3 * (6 - 1) + 2  # ENIs x (IPv4 per ENI - 1) + 2
    # 2 cores: 6 % of the first + 1 % of the second reserved for the kubelet and the runtime.
    assert node.requests.cpu_millis == 2000 - 60 - 10
    # 4096 MiB less 7.5 % VM overhead (rounded up), kube-reserved 11 x 17 + 255, eviction at 100 MiB.
    assert node.requests.memory_bytes == (4096 - 308 - (11 * 17 + 255) - 100) * MIB


def test_every_configured_instance_type_has_a_row():
    rows = _table(INSTANCE_TYPES_FILE)["instance_types"]
    for name in ENVIRONMENTS:
        for group in load_environment(name).cluster.node_groups:
            for instance_type in group.instance_types:
                assert instance_type in rows, f"{name}: {group.name}: {instance_type}"
                assert rows[instance_type]["arch"] == ("arm64" if group.arm64 else "amd64")


def test_an_unknown_instance_type_is_named_with_its_group():
    env = _with(load_environment("dev"), instance_types=["c9z.large"])
    with pytest.raises(ConfigError) as error:
        check_capacity(env)
    assert str(error.value).startswith(
        "config/dev.yaml: cluster.node_groups[apps].instance_types: c9z.large has no row in config/instance-types.yaml"
    )


# --- the committed environments ----------------------------------------------------------------------------


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_committed_environments_fit_at_max_size(env_name):
    env = load_environment(env_name)
    check_capacity(env)  # raises ConfigError otherwise
    for fit in group_fits(env):
        at_max = fit.at("max")
        assert at_max.fits and at_max.nodes == fit.group.max_size
        # Not vacuous: the node agents and Kafka or the services are counted.
        keys = {p.key for p in fit.pods}
        assert {"kube-system/aws-node", "kube-system/kube-proxy", "logging/fluent-bit"} <= keys
        assert any(p.origin == "charts" and not p.per_node for p in fit.pods)


def test_services_count_at_their_hpa_maximum_and_daemonsets_once_per_node():
    env = load_environment("prod")
    apps = next(f for f in group_fits(env) if f.group.name == "apps")
    by_key = {p.key: p for p in apps.pods}
    service = env.services[0]
    assert by_key[f"{env.namespace}/{service.name}"].max_pods == service.max_replicas
    at_max, at_min = apps.at("max"), apps.at("min")
    per_node = sum((p.requests for p in apps.pods if p.per_node), Requests())
    workloads_at_max = sum((p.requests * p.max_pods for p in apps.pods if not p.per_node), Requests())
    assert at_max.requested == workloads_at_max + per_node * env.cluster.node_groups[0].max_size
    assert at_min.requested.cpu_millis < at_max.requested.cpu_millis


def test_the_tainted_kafka_group_holds_kafka_and_the_node_agents_only():
    fits = {f.group.name: f for f in group_fits(load_environment("prod"))}
    kafka = {p.key for p in fits["kafka"].pods if not p.per_node}
    assert kafka == {"erp-prod/kafka"}
    assert "erp-prod/kafka" not in {p.key for p in fits["apps"].pods}
    # The Helm add-ons and CoreDNS tolerate no taint: apps only.
    assert {"kube-system/coredns", "kube-system/aws-load-balancer-controller"} <= {p.key for p in fits["apps"].pods}
    assert {p.origin for p in fits["kafka"].pods} >= {"eks:vpc-cni", "eks:amazon-cloudwatch-observability"}


# --- refusals ----------------------------------------------------------------------------------------------

SHORT = re.compile(
    r"(cpu|memory) requests at max ([0-9.]+) (vCPU|GiB) > allocatable ([0-9.]+) \3 .*?\(short ([0-9.]+) \3\)"
)


def test_an_overcommitted_group_is_refused_in_one_line_naming_file_group_resource_and_shortfall():
    env = load_environment("prod")
    busy = env.services[0].model_copy(update={"max_replicas": 30})
    env = env.model_copy(update={"services": [busy, *env.services[1:]]})
    with pytest.raises(ConfigError) as error:
        check_capacity(env)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("config/prod.yaml: cluster.node_groups[apps]: cpu requests at max ")
    assert "node_groups[kafka]" not in message
    for _, requested, _, allocatable, short in SHORT.findall(message):
        assert float(short) == pytest.approx(float(requested) - float(allocatable), abs=0.011)
    assert "at max_size 6" in message


def test_memory_and_pod_count_are_checked_too():
    env = _with(load_environment("dev"), min_size=1, desired_size=1, max_size=1)
    with pytest.raises(ConfigError) as error:
        check_capacity(env)
    message = str(error.value)
    assert {m[0] for m in SHORT.findall(message)} == {"cpu", "memory"}
    assert re.search(r"pods at max \d+ > max pods 17 at max_size 1 \(t3\.medium: 17 per node; short \d+\)", message)


def test_a_pod_no_node_can_hold_is_refused_even_when_the_sums_fit():
    env = load_environment("dev")
    huge = {"containers": [{"name": "x", "resources": {"requests": {"cpu": "100m", "memory": "4Gi"}}}]}
    pods = [PodSet("erp-dev/huge", "Deployment", 1, 1, pod_requests(huge), huge)]
    (fit,) = group_fits(env, pods)
    assert fit.at("max").fits
    assert fit.shortfalls() == [
        "a erp-dev/huge pod (0.10 vCPU, 4.00 GiB) fits no t3.medium beside its DaemonSets (1.93 vCPU, 3.17 GiB free)"
    ]


def test_pods_that_refuse_to_share_a_node_need_a_node_each():
    env = load_environment("prod")
    kafka_group = next(g for g in env.cluster.node_groups if g.name == "kafka").model_copy(
        update={"min_size": 2, "desired_size": 2, "max_size": 2}
    )
    env = env.model_copy(
        update={"cluster": env.cluster.model_copy(update={"node_groups": [env.cluster.node_groups[0], kafka_group]})}
    )
    with pytest.raises(ConfigError) as error:
        check_capacity(env)
    assert "cluster.node_groups[kafka]: erp-prod/kafka needs a node per pod: 3 pods > max_size 2 (short 1 node(s))" in (
        str(error.value)
    )


def run_app(config_dir: Path, outdir: Path, env: str) -> subprocess.CompletedProcess:
    context = {"env": env, "config_dir": str(config_dir), "erp:placeholders": "warn"}
    environ = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    return subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, env=environ, capture_output=True, text=True, timeout=180
    )


def test_synth_refuses_an_overcommitted_config_with_one_line_not_a_traceback(config_dir, tmp_path):
    for field, value in (("min_size", 1), ("desired_size", 1), ("max_size", 1)):
        edit(config_dir, "dev", f"cluster.node_groups.0.{field}", value)
    outdir = tmp_path / "out"
    result = run_app(config_dir, outdir, "dev")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "!!" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"config error: {config_dir}/dev.yaml: cluster.node_groups[apps]: cpu requests at max ")
    assert "(short " in lines[0]
    assert not (outdir / "manifest.json").exists()


# --- the tables --------------------------------------------------------------------------------------------


def test_every_pinned_add_on_version_has_recorded_requests():
    versions = _table(VERSIONS_FILE)["minors"]
    addons = _table(SYSTEM_PODS_FILE)["addons"]
    for minor, entry in versions.items():
        if not entry.get("eks_release"):
            continue  # not on EKS yet: nothing is installed
        for name, recorded in addons.items():
            pin = (entry["addons"].get(name) or {}).get("version")
            assert (pin or "unpinned") in recorded["versions"], f"{name} {pin or 'unpinned'} (Kubernetes {minor})"


def test_every_system_pod_figure_names_its_source_or_why_it_has_none():
    for name, addon in _table(SYSTEM_PODS_FILE)["addons"].items():
        assert addon["installed"] in ("always", "container_insights"), name
        for version, entry in addon["versions"].items():
            where = f"{name} {version}"
            if entry.get("sourced") is False:
                assert entry["why"].strip(), where
            else:
                assert re.match(r"^[\w.-]+/[\w.-]+@\S+ \(", entry["source"]), where
            for pod in entry["pods"]:
                assert pod["kind"] in ("Deployment", "DaemonSet"), where
                assert ("replicas" in pod) == (pod["kind"] == "Deployment"), where
                Requests.of(pod["requests"])  # parses


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_the_system_pods_table_covers_every_managed_add_on_the_cluster_installs(stack_templates, env_name):
    env = load_environment(env_name)
    installed = {
        r["Properties"]["AddonName"]
        for r in resources_of(stack_templates[f"erp-{env_name}-cluster"], "AWS::EKS::Addon").values()
    }
    counted = {
        name
        for name, addon in _table(SYSTEM_PODS_FILE)["addons"].items()
        if addon["installed"] == "always" or env.observability.container_insights
    }
    assert installed == counted


def helm_addon_modules():
    for info in pkgutil.iter_modules(cluster_modules.__path__):
        module = importlib.import_module(f"{cluster_modules.__name__}.{info.name}")
        if isinstance(getattr(module, "ADDON", None), HelmAddon):
            yield module


def test_every_helm_add_on_sets_the_requests_the_capacity_check_counts():
    """Our values, not the charts' defaults (most request nothing): the counted requests are exact."""
    modules = list(helm_addon_modules())
    assert {m.ADDON.chart for m in modules} >= {"aws-load-balancer-controller", "external-secrets", "reloader"}
    for module in modules:
        declared = getattr(module, "PODS", None) and callable(getattr(module, "pod_values", None))
        assert declared, f"{module.__name__}: declare PODS (k8s_charts.placement.HelmDeployment) and pod_values(config)"
        contract = _table(CONTRACT_DIR / f"{module.ADDON.chart}.yaml")
        assert contract["addon"] == f"{module.__name__}.ADDON"
        recorded = {v["path"]: v for v in contract["values"]}
        for name in ENVIRONMENTS:
            values = module.pod_values(load_environment(name))
            for deployment in module.PODS:
                requests = value_at(values, f"{deployment.resources}.requests", {})
                assert {"cpu", "memory"} <= set(requests), f"{module.__name__}: {deployment.name}"
                # The path is a value of the pinned chart (its contract, read from the chart's source).
                assert recorded.get(deployment.resources, {}).get("free_form"), deployment.resources
                if deployment.replicas in recorded:
                    assert recorded[deployment.replicas]["default"] == deployment.default_replicas


def test_make_capacity_prints_requested_against_allocatable_per_group_and_size(capsys):
    assert main(["--env", "prod"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| prod ")]
    assert [(r.split(" | ")[1], r.split(" | ")[3]) for r in rows] == [
        (group, size) for group in ("apps", "kafka") for size in ("min", "desired", "max")
    ]
    assert all(r.endswith("| yes |") for r in rows if "| max |" in r)


# --- placement rules ---------------------------------------------------------------------------------------


def test_the_node_group_label_is_the_one_the_nodes_get():
    from constructs_lib.cluster.eks import NODE_GROUP_KEY

    assert placement.NODE_GROUP_KEY == NODE_GROUP_KEY


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"operator": "Exists"}, True),  # every taint
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "operator": "Equal", "value": "other"}, False),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "CriticalAddonsOnly", "operator": "Exists"}, False),
    ],
)
def test_tolerations_follow_the_scheduler(toleration, tolerated):
    shape = NodeShape("kafka", {"workload": "kafka"}, (("dedicated", "kafka", "NoSchedule"),))
    assert shape.admits({"tolerations": [toleration]}) is tolerated


def test_node_selectors_and_affinity_follow_the_scheduler():
    shape = placement.node_shape(load_environment("prod").cluster.node_groups[0])
    assert shape.admits({"nodeSelector": {"kubernetes.io/arch": "amd64", "workload": "apps"}})
    assert not shape.admits({"nodeSelector": {"kubernetes.io/arch": "arm64"}})
    not_fargate = {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}
    gpu = {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge"]}

    def affinity(*expressions):
        terms = [{"matchExpressions": list(expressions)}]
        return {
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
            }
        }

    assert shape.admits(affinity(not_fargate))
    assert not shape.admits(affinity(gpu))


def test_effective_requests_count_init_containers_and_sidecars_as_the_scheduler_does():
    def container(cpu, memory, **extra):
        return {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}

    spec = {
        "initContainers": [container("500m", "64Mi"), container("10m", "32Mi", restartPolicy="Always")],
        "containers": [container("100m", "256Mi"), container("0.2", "256M")],
    }
    # Apps 300m + sidecar 10m vs the first init container alone (500m); memory: 256Mi + 256M + 32Mi.
    assert pod_requests(spec) == Requests(500, 256 * MIB + 256 * 10**6 + 32 * MIB)
    assert pod_requests({"containers": [{"name": "c"}]}) == Requests()

"""Spread (issue 22 item 4): services over zones and hosts, prod's Kafka brokers one per zone, and every Kafka
volume's zone holding a node of the group that may run its broker.

The scheduler is modelled as far as these guarantees need: a Deployment's topology spread constraints only
spread what their label selector selects (its own pods; `pod-template-hash` keeps a rollout's new ReplicaSet
spread on its own), a required pod anti-affinity on the hostname gives each broker its own node, an EBS volume
lives in one zone and binds where its first pod lands (WaitForFirstConsumer), and a managed node group's Auto
Scaling group balances its nodes over the zones of its subnets.
"""

from __future__ import annotations

from collections import Counter

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2

from config import load_environment
from constructs_lib.cluster.eks import node_subnets
from k8s_charts import names, placement
from tests.charts.conftest import ENVIRONMENTS, build
from tests.conftest import cdk_context
from tests.support.charts import find, selector_matches, workloads

ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"


def _constraints(pod_spec: dict) -> dict[str, dict]:
    return {c["topologyKey"]: c for c in pod_spec.get("topologySpreadConstraints", [])}


def _kafka_group(env):
    return next(g for g in env.cluster.node_groups if g.name == env.cluster.kafka_node_group)


# --- services ----------------------------------------------------------------------------------------------


def test_every_workload_that_can_run_two_pods_spreads_its_own_pods_over_zones_and_hosts(built):
    everything = built.everything
    pod_labels = {w.key: w.pod_labels for w in workloads(everything)}
    checked = set()
    for workload in workloads(everything):
        if workload.kind != "Deployment" or placement.replica_range(workload.manifest, everything)[1] < 2:
            continue
        spread = _constraints(workload.pod_spec)
        assert set(spread) == {ZONE, HOST}, workload.key
        for key, constraint in spread.items():
            assert constraint["maxSkew"] == 1, (workload.key, key)
            # A selector that misses the workload's own pods spreads nothing; one that also selects another
            # workload's pods spreads the wrong set.
            assert selector_matches(constraint["labelSelector"], workload.pod_labels), (workload.key, key)
            others = [k for k, labels in pod_labels.items() if k != workload.key]
            assert not any(selector_matches(constraint["labelSelector"], pod_labels[k]) for k in others), workload.key
            assert constraint.get("matchLabelKeys") == ["pod-template-hash"], workload.key
        checked.add(workload.manifest["metadata"]["name"])
    # Not vacuous: every autoscaled service is among them.
    assert {s.name for s in built.env.services if s.max_replicas > 1} <= checked


def test_service_spread_is_soft_so_a_zone_without_free_nodes_never_strands_a_pod(built):
    for deployment in find(built.chart("services"), "Deployment"):
        for constraint in _constraints(deployment["spec"]["template"]["spec"]).values():
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"


def test_prods_apps_nodes_cover_every_zone_at_rest():
    """A zone spread needs nodes in every zone: the apps group spans all subnets and never shrinks below one
    node per zone (the autoscaler keeps min_size; the ASG balances the zones)."""
    env = load_environment("prod")
    apps = next(
        g for g in env.cluster.node_groups if g.labels.get(names.APPS_NODE_LABEL[0]) == names.APPS_NODE_LABEL[1]
    )
    assert not apps.single_az
    assert apps.min_size >= env.network.az_count


# --- Kafka -------------------------------------------------------------------------------------------------


def place_brokers(
    brokers: int, nodes_per_zone: dict[str, int], one_per_host: bool, min_domains: int | None = None
) -> Counter:
    """Brokers per zone as the scheduler would place them: a node at most once with the host anti-affinity,
    then the zone with the fewest brokers (the zone spread constraint). With `min_domains` the constraint is
    DoNotSchedule: fewer zones with nodes than min_domains count the global minimum as 0, so no zone may hold
    more than max_skew (1) brokers above it. Raises when a broker finds no node."""
    nodes = [(zone, n) for zone, count in sorted(nodes_per_zone.items()) for n in range(count)]
    used: Counter = Counter()
    per_zone: Counter = Counter({zone: 0 for zone in nodes_per_zone if nodes_per_zone[zone]})
    for _ in range(brokers):
        free = [node for node in nodes if not (one_per_host and used[node])]
        if min_domains is not None:
            floor = 0 if len(per_zone) < min_domains else min(per_zone.values())
            free = [node for node in free if per_zone[node[0]] + 1 - floor <= 1]
        if not free:
            raise RuntimeError("a broker stays Pending")
        node = min(free, key=lambda n: (per_zone[n[0]], n))
        used[node] += 1
        per_zone[node[0]] += 1
    return per_zone


def test_prods_brokers_land_one_per_zone():
    env = load_environment("prod")
    group = _kafka_group(env)
    pod = find(build("prod").chart("kafka"), "StatefulSet")[0]["spec"]["template"]["spec"]
    (anti,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    kafka_labels = find(build("prod").chart("kafka"), "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    assert anti["topologyKey"] == HOST and selector_matches(anti["labelSelector"], kafka_labels)
    zone = _constraints(pod)[ZONE]
    assert zone["maxSkew"] == 1 and selector_matches(zone["labelSelector"], kafka_labels)
    assert (zone["whenUnsatisfiable"], zone["minDomains"]) == ("DoNotSchedule", env.network.az_count)
    # As many brokers as zones, on a group that spans them all and keeps a node per broker at rest.
    assert env.kafka.replicas == env.network.az_count
    assert not group.single_az and group.min_size >= env.kafka.replicas
    zones = [f"zone-{i}" for i in range(env.network.az_count)]
    balanced = {z: group.min_size // len(zones) + (i < group.min_size % len(zones)) for i, z in enumerate(zones)}
    placed = place_brokers(env.kafka.replicas, balanced, one_per_host=True, min_domains=zone["minDomains"])
    assert placed == Counter(dict.fromkeys(zones, 1))


def test_the_simulation_catches_brokers_sharing_a_zone_or_left_pending():
    # Balanced nodes: one broker per zone. A group with no node in one zone (its ASG could not launch there)
    # puts two brokers in one zone (with a soft zone constraint); too few nodes leave a broker Pending.
    assert place_brokers(3, {"a": 1, "b": 1, "c": 1}, one_per_host=True) == Counter(a=1, b=1, c=1)
    assert max(place_brokers(3, {"a": 2, "b": 1, "c": 0}, one_per_host=True).values()) == 2
    with pytest.raises(RuntimeError):
        place_brokers(3, {"a": 1, "b": 1, "c": 0}, one_per_host=True)
    # The hard constraint with minDomains (what prod ships): the third broker waits for a node in zone c.
    with pytest.raises(RuntimeError):
        place_brokers(3, {"a": 2, "b": 1, "c": 0}, one_per_host=True, min_domains=3)
    assert place_brokers(3, {"a": 2, "b": 1, "c": 1}, one_per_host=True, min_domains=3) == Counter(a=1, b=1, c=1)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_kafka_volumes_bind_in_the_zone_of_the_node_that_first_runs_the_broker(env_name):
    (storage_class,) = find(build(env_name).chart("storage"), "StorageClass")
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert "allowedTopologies" not in storage_class  # no zone the kafka group's subnets might not cover
    (kafka,) = find(build(env_name).chart("kafka"), "StatefulSet")
    (claim,) = kafka["spec"]["volumeClaimTemplates"]
    assert claim["spec"].get("storageClassName", names.STORAGE_CLASS) == names.STORAGE_CLASS


@pytest.fixture(scope="module")
def subnet_zones():
    """env -> node group -> the zones of the subnets its nodes launch in (the Cluster stack's selection)."""
    app = cdk.App(context=cdk_context())
    found = {}
    for env_name in ENVIRONMENTS:
        env = load_environment(env_name)
        stack = cdk.Stack(app, f"Zones{env_name}", env=cdk.Environment(account=env.account, region=env.region))
        vpc = ec2.Vpc(
            stack,
            "Vpc",
            max_azs=env.network.az_count,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ],
        )
        found[env_name] = {}
        for group in env.cluster.node_groups:
            selection = node_subnets(vpc, group.single_az)
            subnets = vpc.select_subnets(
                subnet_type=selection.subnet_type, availability_zones=selection.availability_zones
            ).subnets
            found[env_name][group.name] = [s.availability_zone for s in subnets]
        found[env_name][""] = list(vpc.availability_zones)
    return found


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_every_kafka_volume_zone_has_a_node_of_the_kafka_group(env_name, subnet_zones):
    env = load_environment(env_name)
    group = _kafka_group(env)
    zones = subnet_zones[env_name][group.name]
    all_zones = subnet_zones[env_name][""]
    assert len(zones) == len(set(zones))
    if env.kafka.replicas == 1:
        # One broker, one zonal volume: its group lives in the first zone only, so a replacement node (a drain,
        # a night stop and morning start) comes back where the volume is.
        assert group.single_az and zones == all_zones[:1]
    else:
        # A volume per broker, one per zone: the group launches nodes in every zone and keeps one per broker.
        assert set(zones) == set(all_zones) and len(zones) >= env.kafka.replicas
        assert group.min_size >= env.kafka.replicas


def test_single_az_groups_launch_in_the_first_zone_only_and_others_everywhere(subnet_zones):
    for env_name in ENVIRONMENTS:
        env = load_environment(env_name)
        all_zones = subnet_zones[env_name][""]
        assert len(all_zones) == env.network.az_count
        for group in env.cluster.node_groups:
            expected = all_zones[:1] if group.single_az else all_zones
            assert subnet_zones[env_name][group.name] == expected, (env_name, group.name)


def test_a_multi_zone_group_for_a_single_broker_is_refused(config_dir):
    from config import ConfigError
    from tests.config.test_config import edit

    edit(config_dir, "dev", "cluster.node_groups.0.single_az", False)
    with pytest.raises(ConfigError, match=r"single_az: a single Kafka broker keeps its data on one zonal EBS volume"):
        load_environment("dev", config_dir)

"""Node autoscaling (issue 22 item 1): Cluster Autoscaler in both environments, pinned to the cluster's minor,
discovering this cluster's managed node groups, allowed to scale only them, and paused by dev's night schedule.

Also the floor under the kafka group: config refuses a kafka node group whose min_size is below kafka.replicas.
"""

from __future__ import annotations

import json

import pytest
import yaml

from config import ConfigError, load_environment
from constructs_lib.cluster import cluster_autoscaler as ca
from constructs_lib.delivery.workload_inventory import HELM_WORKLOADS
from k8s_charts.images import CLUSTER_AUTOSCALER, registry_host
from tests.conftest import resources_of
from tools.nag_report import violations

ENVS = ["dev", "prod"]
HELM_RELEASE = "Custom::AWSCDK-EKS-HelmChart"
SCALING_ACTIONS = {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"}


def cfn_json(value):
    """A JSON property CDK wrote as a string (or a Fn::Join of strings and intrinsics, kept as a marker)."""
    if isinstance(value, str):
        return json.loads(value)
    separator, parts = value["Fn::Join"]
    return json.loads(separator.join(p if isinstance(p, str) else "<token>" for p in parts))


def release(template: dict) -> tuple[str, dict]:
    (found,) = [
        (logical_id, r)
        for logical_id, r in template["Resources"].items()
        if r["Type"] == HELM_RELEASE and r["Properties"]["Chart"] == ca.ADDON.chart
    ]
    return found


def autoscaler_role_statements(template: dict) -> list[dict]:
    (association,) = [
        a["Properties"]
        for a in resources_of(template, "AWS::EKS::PodIdentityAssociation").values()
        if (a["Properties"]["Namespace"], a["Properties"]["ServiceAccount"]) == (ca.NAMESPACE, ca.SERVICE_ACCOUNT)
    ]
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    trust = template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert {s["Principal"]["Service"] for s in trust} == {"pods.eks.amazonaws.com"}
    assert "ManagedPolicyArns" not in template["Resources"][role_id]["Properties"]
    return [
        statement
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> set[str]:
    found = statement["Action"]
    return {found} if isinstance(found, str) else set(found)


@pytest.mark.parametrize("env", ENVS)
def test_installed_pinned_to_the_clusters_minor_and_discovering_this_cluster(stack_templates, configs, env):
    config = configs[env]
    template = stack_templates[f"erp-{env}-cluster"]
    logical_id, resource = release(template)
    props = resource["Properties"]
    assert props["Version"] == config.cluster.helm.cluster_autoscaler == "9.59.0"
    assert props["Repository"] == "https://kubernetes.github.io/autoscaler"
    assert (props["Namespace"], props["Release"]) == ("kube-system", "cluster-autoscaler")
    assert props["Wait"] is True
    values = cfn_json(props["Values"])
    # What another check (item 2's capacity fit) reads is what the release gets.
    assert values == ca.cluster_autoscaler_values(config)
    # One minor per Kubernetes release: a cluster upgrade without a matching autoscaler fails here.
    assert CLUSTER_AUTOSCALER.tag.startswith(f"v{config.cluster.kubernetes_version}.")
    assert values["image"] == {
        "repository": f"{registry_host(config)}/k8s/autoscaling/cluster-autoscaler",
        "tag": CLUSTER_AUTOSCALER.tag,
    }
    assert values["autoDiscovery"] == {"clusterName": config.cluster_name} and config.cluster_name == f"erp-{env}"
    assert values["awsRegion"] == config.region
    assert values["cloudProvider"] == "aws"
    # On the apps nodes, never on prod's tainted kafka group (no toleration).
    assert values["nodeSelector"] == {"workload": "apps"}
    assert "tolerations" not in values
    assert values["replicaCount"] == 1
    assert values["resources"]["requests"] == {"cpu": "100m", "memory": "300Mi"}
    assert set(values["resources"]["limits"]) == {"cpu", "memory"}
    flags = values["extraArgs"]
    assert flags["expander"] == "least-waste"
    assert flags["balance-similar-node-groups"] is True
    assert flags["skip-nodes-with-local-storage"] is False
    # Installed after the node groups (Helm waits for the pod) and after its Pod Identity association.
    depends = set(resource.get("DependsOn", []))
    nodegroups = set(resources_of(template, "AWS::EKS::Nodegroup"))
    associations = {
        lid
        for lid, a in resources_of(template, "AWS::EKS::PodIdentityAssociation").items()
        if a["Properties"]["ServiceAccount"] == ca.SERVICE_ACCOUNT
    }
    assert nodegroups and nodegroups <= depends
    assert associations and associations <= depends, logical_id


def test_the_smoke_test_expects_the_deployment_the_chart_renders():
    (((kind, name),), _source) = HELM_WORKLOADS[ca.ADDON.chart]
    assert (kind, name) == ("Deployment", ca.NAME)
    assert ca.pause_target() == {"namespace": "kube-system", "name": ca.NAME, "replicas": 1}


@pytest.mark.parametrize("env", ENVS)
def test_pod_identity_may_scale_only_this_clusters_groups(stack_templates, configs, env):
    config = configs[env]
    statements = autoscaler_role_statements(stack_templates[f"erp-{env}-cluster"])
    assert all(s["Effect"] == "Allow" for s in statements)
    granted = set().union(*(actions(s) for s in statements))
    assert granted == {
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeLaunchConfigurations",
        "autoscaling:DescribeScalingActivities",
        "ec2:DescribeImages",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:GetInstanceTypesFromInstanceRequirements",
        "eks:DescribeNodegroup",
        *SCALING_ACTIONS,
    }
    (scaling,) = [s for s in statements if actions(s) & SCALING_ACTIONS]
    assert actions(scaling) == SCALING_ACTIONS
    # Only ASGs EKS tagged as this cluster's own (the managed node groups' ASGs).
    assert scaling["Condition"] == {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/erp-{env}": "owned"}}
    assert scaling["Resource"] == (
        f"arn:aws:autoscaling:{config.region}:{config.account}:autoScalingGroup:*:autoScalingGroupName/*"
    )
    (describe_nodegroup,) = [s for s in statements if "eks:DescribeNodegroup" in actions(s)]
    assert describe_nodegroup["Resource"] == f"arn:aws:eks:{config.region}:{config.account}:nodegroup/erp-{env}/*/*"
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for s in wildcard for a in actions(s))


def test_cdk_nag_has_no_unacknowledged_findings_for_the_autoscaler_or_the_scheduler(cdk_out):
    found = [
        (rule, path) for rule, path, _ in violations(cdk_out) if "ClusterAutoscaler" in path or "NightSchedule" in path
    ]
    assert found == []


def test_dev_night_schedule_pauses_exactly_the_autoscaler_deployment(stack_templates, configs):
    """The scheduler scales the Deployment the chart renders, from inside the VPC, through an access entry that
    maps its role to a Kubernetes group bound to one Role: get/patch of that Deployment's scale, nothing else."""
    template = stack_templates["erp-dev-cluster"]
    _, resource = release(template)
    values = cfn_json(resource["Properties"]["Values"])
    functions = resources_of(template, "AWS::Lambda::Function")
    (scaler,) = [
        f
        for f in functions.values()
        if "NODEGROUP_SIZES" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    variables = scaler["Properties"]["Environment"]["Variables"]
    target = json.loads(variables["AUTOSCALER"])
    assert target == {"namespace": resource["Properties"]["Namespace"], "name": values["fullnameOverride"]} | {
        "replicas": values["replicaCount"]
    }
    assert {"ENDPOINT", "CA_DATA"} <= set(variables)
    assert scaler["Properties"]["VpcConfig"]["SubnetIds"]
    role_id = scaler["Properties"]["Role"]["Fn::GetAtt"][0]
    (entry,) = [
        e["Properties"]
        for e in resources_of(template, "AWS::EKS::AccessEntry").values()
        if e["Properties"]["PrincipalArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    ]
    assert entry["KubernetesGroups"] == [ca.PAUSER_GROUP]
    assert not entry.get("AccessPolicies"), "nothing cluster-wide"
    manifests = [
        m
        for r in resources_of(template, "Custom::AWSCDK-EKS-KubernetesResource").values()
        for m in cfn_json(r["Properties"]["Manifest"])
        if m.get("metadata", {}).get("name") == ca.PAUSER_ROLE
    ]
    role = next(m for m in manifests if m["kind"] == "Role")
    binding = next(m for m in manifests if m["kind"] == "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == target["namespace"]
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": [target["name"]],
            "verbs": ["get", "patch"],
        }
    ]
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ca.PAUSER_GROUP}]
    assert binding["roleRef"]["name"] == ca.PAUSER_ROLE
    # Prod never sleeps: no pauser anywhere.
    assert ca.PAUSER_GROUP not in json.dumps(stack_templates["erp-prod-cluster"])


# --- config: the kafka group's floor ------------------------------------------------------------------------


def set_group(config_dir, env: str, group: str, **sizes) -> None:
    path = config_dir / f"{env}.yaml"
    data = yaml.safe_load(path.read_text())
    (node_group,) = [g for g in data["cluster"]["node_groups"] if g["name"] == group]
    node_group.update(sizes)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("env", "group", "sizes", "expected"),
    [
        # Prod: three brokers, one per zone and node; two nodes would strand a broker beside its volume.
        ("prod", "kafka", {"min_size": 2}, "cluster.node_groups.kafka.min_size 2 < kafka.replicas 3"),
        # Dev: the one broker runs on the apps group; a floor of zero lets the autoscaler empty it.
        ("dev", "apps", {"min_size": 0}, "cluster.node_groups.apps.min_size 0 < kafka.replicas 1"),
    ],
)
def test_the_kafka_group_never_goes_below_what_the_brokers_need(config_dir, env, group, sizes, expected):
    set_group(config_dir, env, group, **sizes)
    with pytest.raises(ConfigError) as info:
        load_environment(env, config_dir)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{config_dir}/{env}.yaml: ")
    assert expected in message


def test_the_committed_kafka_groups_hold_every_broker(configs):
    for config in configs.values():
        group = next(g for g in config.cluster.node_groups if g.name == config.cluster.kafka_node_group)
        assert group.min_size >= config.kafka.replicas

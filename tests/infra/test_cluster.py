"""The EKS cluster: standard support only, managed node groups from config, add-ons, access, Pod Identity."""

from __future__ import annotations

import json

import pytest

from tests.conftest import resources_of

ENVS = ["dev", "prod"]


def cluster_of(stack_templates, env):
    return next(iter(resources_of(stack_templates[f"erp-{env}-cluster"], "AWS::EKS::Cluster").values()))["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_control_plane(stack_templates, configs, env):
    config = configs[env]
    cluster = cluster_of(stack_templates, env)
    assert cluster["Name"] == f"erp-{env}"
    assert cluster["Version"] == config.cluster.kubernetes_version
    assert cluster["UpgradePolicy"] == {"SupportType": "STANDARD"}
    assert sorted(t["Type"] for t in cluster["Logging"]["ClusterLogging"]["EnabledTypes"]) == [
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    ]
    assert cluster["EncryptionConfig"][0]["Resources"] == ["secrets"]
    assert "Ref" in json.dumps(cluster["EncryptionConfig"][0]["Provider"]["KeyArn"]) or "GetAtt" in json.dumps(
        cluster["EncryptionConfig"][0]["Provider"]["KeyArn"]
    )
    vpc = cluster["ResourcesVpcConfig"]
    mode = config.cluster.endpoint_mode
    assert vpc["EndpointPrivateAccess"] is (mode != "public")
    assert vpc["EndpointPublicAccess"] is (mode != "private")
    if mode == "both":
        assert vpc["PublicAccessCidrs"] == (config.cluster.endpoint_public_cidrs or ["0.0.0.0/0"])
    assert "ComputeConfig" not in cluster or not cluster["ComputeConfig"].get("Enabled"), "Auto Mode must be off"


@pytest.mark.parametrize("env", ENVS)
def test_managed_node_groups_match_config(stack_templates, configs, env):
    config = configs[env]
    # No physical names (create-only properties replace a group; a fixed name would collide): a group is
    # known by its tag and node label erp/node-group.
    groups = {
        g["Properties"]["Tags"]["erp/node-group"]: g["Properties"]
        for g in resources_of(stack_templates[f"erp-{env}-cluster"], "AWS::EKS::Nodegroup").values()
    }
    assert all("NodegroupName" not in props for props in groups.values())
    assert sorted(groups) == sorted(g.name for g in config.cluster.node_groups)
    for group in config.cluster.node_groups:
        props = groups[group.name]
        assert props["InstanceTypes"] == group.instance_types
        assert props["AmiType"] == ("AL2023_ARM_64_STANDARD" if group.arm64 else "AL2023_x86_64_STANDARD")
        assert props["CapacityType"] == group.capacity
        assert props["ScalingConfig"] == {
            "MinSize": group.min_size,
            "DesiredSize": group.desired_size,
            "MaxSize": group.max_size,
        }
        assert props["Labels"] == {**group.labels, "erp/node-group": group.name}
        assert "DiskSize" not in props  # the launch template's (test_node_groups_launch_with_imdsv2_only...)
        assert [(t["Key"], t["Value"], t["Effect"]) for t in props.get("Taints", [])] == [
            (t.key, t.value, t.effect.upper().replace("NOSCHEDULE", "NO_SCHEDULE")) for t in group.taints
        ]
    assert configs["prod"].cluster.kafka_node_group == "kafka"


@pytest.mark.parametrize("env", ENVS)
def test_add_ons(stack_templates, configs, env):
    addons = {
        a["Properties"]["AddonName"]: a["Properties"]
        for a in resources_of(stack_templates[f"erp-{env}-cluster"], "AWS::EKS::Addon").values()
    }
    expected = {"vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent", "aws-ebs-csi-driver", "metrics-server"}
    if configs[env].observability.container_insights:
        expected.add("amazon-cloudwatch-observability")
    assert set(addons) == expected
    assert json.loads(addons["vpc-cni"]["ConfigurationValues"]) == {"enableNetworkPolicy": "true"}


@pytest.mark.parametrize("env", ENVS)
def test_admin_access_entries(stack_templates, configs, env):
    entries = resources_of(stack_templates[f"erp-{env}-cluster"], "AWS::EKS::AccessEntry").values()
    principals = {e["Properties"]["PrincipalArn"] for e in entries if isinstance(e["Properties"]["PrincipalArn"], str)}
    assert set(configs[env].cluster.admin_role_arns) <= principals
    admin = [e for e in entries if e["Properties"]["PrincipalArn"] in configs[env].cluster.admin_role_arns]
    assert len(admin) == len(configs[env].cluster.admin_role_arns)
    for entry in admin:
        (policy,) = entry["Properties"]["AccessPolicies"]
        assert json.dumps(policy["PolicyArn"]).endswith(
            ':eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"]]}'
        )
        assert policy["AccessScope"] == {"Type": "cluster"}


@pytest.mark.parametrize("env", ENVS)
def test_pod_identity_associations(stack_templates, env):
    found = set()
    for stack in ("cluster", "workloads"):
        for assoc in resources_of(stack_templates[f"erp-{env}-{stack}"], "AWS::EKS::PodIdentityAssociation").values():
            found.add((assoc["Properties"]["Namespace"], assoc["Properties"]["ServiceAccount"]))
    assert {
        ("kube-system", "aws-load-balancer-controller"),
        ("kube-system", "ebs-csi-controller-sa"),
        ("external-secrets", "external-secrets"),
        ("logging", "fluent-bit"),
        (f"erp-{env}", "otel-collector"),
    } <= found


@pytest.mark.parametrize("env", ENVS)
def test_controllers_pinned_to_the_vendored_crd_versions(stack_templates, configs, env):
    charts = {
        c["Properties"]["Chart"]: c["Properties"]
        for c in resources_of(stack_templates[f"erp-{env}-cluster"], "Custom::AWSCDK-EKS-HelmChart").values()
    }
    helm = configs[env].cluster.helm
    assert charts["aws-load-balancer-controller"]["Version"] == helm.aws_load_balancer_controller == "3.5.0"
    assert charts["external-secrets"]["Version"] == helm.external_secrets == "2.9.0"


def test_pod_roles_are_least_privilege(stack_templates):
    policies = resources_of(stack_templates["erp-dev-workloads"], "AWS::IAM::Policy").values()
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    fluent = next(s for s in statements if "logs:PutLogEvents" in s["Action"])
    assert "/aws/eks/erp-dev/application" in json.dumps(fluent["Resource"])
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in statements)


def test_dev_sleeps_at_night_and_prod_never_does(stack_templates, configs):
    schedules = resources_of(stack_templates["erp-dev-cluster"], "AWS::Scheduler::Schedule").values()
    by_input = {json.loads(s["Properties"]["Target"]["Input"])["action"]: s["Properties"] for s in schedules}
    schedule = configs["dev"].schedule
    assert (
        by_input["start"]["ScheduleExpression"]
        == f"cron({int(schedule.start[3:])} {int(schedule.start[:2])} ? * MON-FRI *)"
    )
    assert (
        by_input["stop"]["ScheduleExpression"]
        == f"cron({int(schedule.stop[3:])} {int(schedule.stop[:2])} ? * MON-FRI *)"
    )
    assert {s["ScheduleExpressionTimezone"] for s in by_input.values()} == {"Asia/Seoul"}
    functions = resources_of(stack_templates["erp-dev-cluster"], "AWS::Lambda::Function").values()
    scaler = next(f for f in functions if "NODEGROUP_SIZES" in json.dumps(f))
    # The generated node group name, filled in by CloudFormation.
    (group_id,) = resources_of(stack_templates["erp-dev-cluster"], "AWS::EKS::Nodegroup")
    sizes = scaler["Properties"]["Environment"]["Variables"]["NODEGROUP_SIZES"]
    assert sizes == {
        "Fn::Join": ["", ['{"', {"Fn::GetAtt": [group_id, "NodegroupName"]}, '":{"min":1,"desired":2,"max":3}}']]
    }
    assert resources_of(stack_templates["erp-prod-cluster"], "AWS::Scheduler::Schedule") == {}


@pytest.mark.parametrize("env", ENVS)
def test_node_groups_launch_with_imdsv2_only_and_hop_limit_1_and_their_configured_disk(stack_templates, configs, env):
    """Issue 18 item 19: with a hop limit of 1 an IMDSv2 token cannot reach a pod (one hop further than the node),
    so pods cannot take the node role's credentials; they use Pod Identity. The disk moved into the template."""
    cluster = stack_templates[f"erp-{env}-cluster"]
    templates = resources_of(cluster, "AWS::EC2::LaunchTemplate")
    groups = {
        g["Properties"]["Tags"]["erp/node-group"]: g for g in resources_of(cluster, "AWS::EKS::Nodegroup").values()
    }
    for group in configs[env].cluster.node_groups:
        spec = groups[group.name]["Properties"]["LaunchTemplate"]
        template_id = spec["Id"]["Ref"]
        assert spec["Version"] == {"Fn::GetAtt": [template_id, "LatestVersionNumber"]}  # a new version rolls nodes
        data = templates[template_id]["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        assert data["MetadataOptions"].get("HttpEndpoint", "enabled") == "enabled"
        assert data["BlockDeviceMappings"] == [
            {"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True, "VolumeSize": group.disk_gib, "VolumeType": "gp3"}}
        ]
        # EKS keeps choosing the AMI (AmiType), the instance types, the bootstrap and the cluster security group.
        for owned_by_eks in ("ImageId", "InstanceType", "UserData", "SecurityGroupIds", "IamInstanceProfile"):
            assert owned_by_eks not in data, owned_by_eks


def test_prod_kubernetes_api_is_private_and_kubectl_runs_in_the_vpc(stack_templates, configs):
    """Issue 18 item 19: prod's endpoint was public (from a CIDR). It is private now (a prod rule); every
    KubernetesManifest / Helm release goes through the kubectl Lambda, which must reach it from the VPC."""
    assert configs["prod"].cluster.endpoint_mode == "private"
    for env in ENVS:
        vpc = cluster_of(stack_templates, env)["ResourcesVpcConfig"]
        if configs[env].cluster.endpoint_mode == "private":
            assert vpc["EndpointPublicAccess"] is False and "PublicAccessCidrs" not in vpc
        cluster = stack_templates[f"erp-{env}-cluster"]
        (cluster_id,) = resources_of(cluster, "AWS::EKS::Cluster")
        handlers = {
            logical_id: f["Properties"]
            for logical_id, f in resources_of(cluster, "AWS::Lambda::Function").items()
            if logical_id.startswith("EksClusterKubectlProvider")
        }
        assert handlers
        for handler in handlers.values():
            assert handler["VpcConfig"]["SecurityGroupIds"] == [{"Fn::GetAtt": [cluster_id, "ClusterSecurityGroupId"]}]
            assert handler["VpcConfig"]["SubnetIds"] == vpc["SubnetIds"]  # the private subnets, as the control plane
            assert all("privateSubnet" in json.dumps(s) for s in handler["VpcConfig"]["SubnetIds"])


@pytest.mark.parametrize("env", ENVS)
def test_a_new_minor_moves_the_control_plane_then_the_add_ons_then_the_nodes(stack_templates, configs, env):
    """Issue 24 item 3, in CloudFormation's own order (DependsOn and references): the version guard, the control
    plane, the add-ons the nodes need (pinned per minor, so they change with it), the node groups (their Version
    follows; one node at a time), then the add-ons that run on nodes."""
    from config.kubernetes_versions import addon_version

    config = configs[env].cluster
    resources = stack_templates[f"erp-{env}-cluster"]["Resources"]
    ((cluster_id, cluster),) = [(k, r) for k, r in resources.items() if r["Type"] == "AWS::EKS::Cluster"]
    ((guard_id, guard),) = [(k, r) for k, r in resources.items() if r["Type"] == "Custom::KubernetesVersionGuard"]
    assert guard_id in cluster["DependsOn"]
    assert guard["Properties"]["Version"] == cluster["Properties"]["Version"] == config.kubernetes_version
    addons = {r["Properties"]["AddonName"]: (k, r) for k, r in resources.items() if r["Type"] == "AWS::EKS::Addon"}
    for name, (_, addon) in addons.items():
        assert addon["Properties"]["ClusterName"] == {"Ref": cluster_id}
        assert addon["Properties"].get("AddonVersion") == addon_version(config.kubernetes_version, name), name
    node_prerequisites = {addons[n][0] for n in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")}
    groups = {k: r for k, r in resources.items() if r["Type"] == "AWS::EKS::Nodegroup"}
    for group in groups.values():
        assert group["Properties"]["Version"] == config.node_version
        assert node_prerequisites <= set(group["DependsOn"])
        assert group["Properties"]["UpdateConfig"] == {"MaxUnavailable": 1}  # Kafka's brokers: one at a time
    for name in ("coredns", "aws-ebs-csi-driver", "metrics-server"):
        assert set(groups) <= set(addons[name][1]["DependsOn"]), name
    # The kubectl/helm layer of the same minor.
    layers = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert any(f"kubectl {config.kubernetes_version}." in r["Properties"].get("Description", "") for r in layers), [
        r["Properties"].get("Description") for r in layers
    ]

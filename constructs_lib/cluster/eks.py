"""The EKS control plane and its managed node groups, shaped by config."""

from __future__ import annotations

import importlib

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from config.base import SUPPORTED_KUBERNETES
from config.models import EnvironmentConfig
from constructs_lib.cluster.version_guard import KubernetesVersionGuard
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import owned_log_group

# Tag and node label naming a node group's config name (its EKS name is generated).
NODE_GROUP_KEY = "erp/node-group"
NODE_MANAGED_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy")


def kubectl_layer(scope: Construct, version: str):
    """The kubectl/helm layer of the cluster's own minor (a skewed kubectl is unsupported)."""
    suffix = SUPPORTED_KUBERNETES[version]
    module = importlib.import_module(f"aws_cdk.lambda_layer_kubectl_{suffix}")
    return getattr(module, f"Kubectl{suffix.upper()}Layer")(scope, "KubectlLayer")


def node_subnets(vpc: ec2.IVpc, single_az: bool) -> ec2.SubnetSelection:
    """Private subnets of every AZ, or of the first AZ only (a group that carries a single zonal volume)."""
    if single_az:
        return ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, availability_zones=[vpc.availability_zones[0]]
        )
    return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)


# The node root volume (AL2023 EKS AMIs boot from /dev/xvda).
NODE_ROOT_DEVICE = "/dev/xvda"


def endpoint_access(cluster_config) -> eks.EndpointAccess:
    """cluster.endpoint_access (config/sections.py ClusterConfig): private, both (public from the CIDRs), public."""
    mode = cluster_config.endpoint_mode
    if mode == "private":
        return eks.EndpointAccess.PRIVATE
    if mode == "public":
        return eks.EndpointAccess.PUBLIC
    cidrs = cluster_config.endpoint_public_cidrs
    return eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*cidrs) if cidrs else eks.EndpointAccess.PUBLIC_AND_PRIVATE


def node_launch_template(scope: Construct, id: str, *, disk_gib: int) -> ec2.LaunchTemplate:
    """IMDSv2 only, hop limit 1: a pod (one network hop further than the node) cannot get a token, so it cannot
    read the node role's credentials from instance metadata; pods get AWS access only through Pod Identity
    (the add-ons that need the region or VPC are given them: load_balancer_controller.py, the charts' values).
    No image, instance type, user data or security group here: EKS keeps choosing those (ami_type, the cluster
    security group) and merges its own bootstrap."""
    return ec2.LaunchTemplate(
        scope,
        id,
        http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
        http_put_response_hop_limit=1,
        http_endpoint=True,
        block_devices=[
            ec2.BlockDevice(
                device_name=NODE_ROOT_DEVICE,
                volume=ec2.BlockDeviceVolume.ebs(disk_gib, volume_type=ec2.EbsDeviceVolumeType.GP3, encrypted=True),
            )
        ],
    )


class ErpCluster(Construct):
    """EKS with managed node groups (not Auto Mode), billed at standard support only."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, config: EnvironmentConfig) -> None:
        super().__init__(scope, id)
        cluster_config = config.cluster
        version = cluster_config.kubernetes_version
        private_subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets
        self.secrets_key = kms.Key(
            self, "SecretsKey", enable_key_rotation=True, description=f"EKS secrets envelope key {config.cluster_name}"
        )
        endpoint = endpoint_access(cluster_config)
        self._endpoint_mode = cluster_config.endpoint_mode
        # EKS would create this group itself, with no retention; owning it first bounds the cost.
        control_plane_logs = owned_log_group(
            self, "ControlPlaneLogs", log_group_name=f"/aws/eks/{config.cluster_name}/cluster", config=config
        )
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=config.cluster_name,
            version=eks.KubernetesVersion.of(version),
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            endpoint_access=endpoint,
            secrets_encryption_key=self.secrets_key,
            cluster_logging=[
                eks.ClusterLoggingTypes.API,
                eks.ClusterLoggingTypes.AUDIT,
                eks.ClusterLoggingTypes.AUTHENTICATOR,
                eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
                eks.ClusterLoggingTypes.SCHEDULER,
            ],
            bootstrap_self_managed_addons=False,
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=kubectl_layer(self, version),
                # The kubectl Lambda (every KubernetesManifest and Helm release) runs in the private subnets with the
                # cluster security group: it reaches a private endpoint (prod) as the nodes do.
                private_subnets=private_subnets,
            ),
        )
        self.cluster.node.add_dependency(control_plane_logs)
        # A downgrade or a jump of two minors fails here, before the control plane or anything after it moves.
        self.version_guard = KubernetesVersionGuard(
            self,
            "VersionGuard",
            cluster_name=config.cluster_name,
            version=version,
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
        )
        self.cluster.node.add_dependency(self.version_guard.resource)
        # Extended support bills $0.60/h instead of $0.10/h: never slide into it silently.
        self.cluster.node.default_child.add_property_override("UpgradePolicy.SupportType", "STANDARD")

        self.node_role = iam.Role(
            self,
            "NodeRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(p) for p in NODE_MANAGED_POLICIES],
        )
        self.nodegroups: dict[str, eks.Nodegroup] = {}
        # No physical names: instance types, AMI type, capacity type and subnets are create-only, and a
        # replacement must not collide with the group it replaces (the disk is in the launch template: a new
        # version rolls the nodes in place). The night scheduler gets the generated names
        # as CloudFormation values; operators find a group by its tag / node label `erp/node-group`.
        for group in cluster_config.node_groups:
            template = node_launch_template(self, f"NodeTemplate-{group.name}", disk_gib=group.disk_gib)
            self.nodegroups[group.name] = self.cluster.add_nodegroup_capacity(
                group.name,
                instance_types=[ec2.InstanceType(t) for t in group.instance_types],
                # No image in the launch template: EKS still picks the AL2023 AMI of this type and version.
                ami_type=eks.NodegroupAmiType.AL2023_ARM_64_STANDARD
                if group.arm64
                else eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
                capacity_type=eks.CapacityType.SPOT if group.capacity == "SPOT" else eks.CapacityType.ON_DEMAND,
                min_size=group.min_size,
                desired_size=group.desired_size,
                max_size=group.max_size,
                # The disk is the launch template's (EKS refuses DiskSize beside a launch template).
                launch_template_spec=eks.LaunchTemplateSpec(
                    id=template.launch_template_id, version=template.latest_version_number
                ),
                labels={**group.labels, NODE_GROUP_KEY: group.name},
                taints=[eks.TaintSpec(key=t.key, value=t.value, effect=_TAINT_EFFECTS[t.effect]) for t in group.taints],
                subnets=node_subnets(vpc, group.single_az),
                tags={NODE_GROUP_KEY: group.name},
                node_role=self.node_role,
                enable_node_auto_repair=True,
                max_unavailable=1,
            )
            # The group follows the control plane's minor (or node_kubernetes_version while an upgrade bakes): a new
            # version updates the cluster first, then (dependency order) the add-ons the nodes need, then rolls this
            # group one node at a time within the PodDisruptionBudgets. Without it a group would keep its creation
            # version for good.
            self.nodegroups[group.name].node.default_child.add_property_override("Version", cluster_config.node_version)

        self.nodegroup_names = {name: group.nodegroup_name for name, group in self.nodegroups.items()}

        for index, arn in enumerate(cluster_config.admin_role_arns):
            self.cluster.grant_access(
                f"Admin{index}",
                arn,
                [
                    eks.AccessPolicy.from_access_policy_name(
                        "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
                    )
                ],
            )
        self._acknowledge()

    def _acknowledge(self) -> None:
        for policy in NODE_MANAGED_POLICIES:
            acknowledge(
                self.node_role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "EKS worker nodes require these AWS-maintained policies; pods get their own Pod Identity roles.",
            )
        acknowledge(
            self.cluster,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEKSClusterPolicy]",
            "The EKS control-plane role must carry this AWS-maintained policy.",
        )
        kubectl = self.cluster.node.find_child("KubectlProvider")
        for policy in (
            "AmazonEC2ContainerRegistryReadOnly",
            "service-role/AWSLambdaBasicExecutionRole",
            "service-role/AWSLambdaVPCAccessExecutionRole",
        ):
            acknowledge(
                kubectl,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "CDK's kubectl provider (deploy-time only) ships with these AWS-maintained policies.",
            )
        acknowledge(
            kubectl,
            'AwsSolutions-IAM4[Policy::{"Fn::If":["EksClusterKubectlProviderHandlerHasEcrPublicC426D1A5",'  # pragma: allowlist secret
            '{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},'
            '":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly"]]},{"Ref":"AWS::NoValue"}]}]',
            "CDK's kubectl provider reads public ECR only in partitions that have it.",
        )
        acknowledge(
            kubectl,
            "AwsSolutions-IAM5[Resource::<EksClusterKubectlProviderHandlerDA75FB7A.Arn>:*]",
            "The provider framework invokes versions of its own handler only.",
        )
        acknowledge(
            kubectl,
            "AwsSolutions-L1",
            "Runtime of CDK's kubectl provider is pinned by aws-cdk-lib; it moves with library upgrades.",
        )
        if self._endpoint_mode != "private":
            acknowledge(
                self.cluster,
                "AwsSolutions-EKS1",
                "Public endpoint outside production only (a prod rule), open to cluster.endpoint_public_cidrs.",
            )


_TAINT_EFFECTS = {
    "NoSchedule": eks.TaintEffect.NO_SCHEDULE,
    "NoExecute": eks.TaintEffect.NO_EXECUTE,
    "PreferNoSchedule": eks.TaintEffect.PREFER_NO_SCHEDULE,
}

"""Cluster Autoscaler (Helm, pinned in config.cluster.helm) for the managed node groups (issue 22 item 1).

Why Cluster Autoscaler and not Karpenter: the platform runs 3-12 services on a few managed node groups whose
min/max sizes, labels, taints, subnets and rolling upgrades config already owns (constructs_lib/cluster/eks.py).
Cluster Autoscaler only moves each group's desired size between the min and max config gives it, so EKS keeps
draining and upgrading the nodes and the night schedule keeps working through the same min/desired/max.
Karpenter replaces node groups with its own NodePools (its own instances, no min size, its own drift and
consolidation): a second lifecycle beside EKS's, more controllers and CRDs to upgrade, and no floor for the
Kafka brokers' zonal volumes. At this size the bin-packing Karpenter adds saves little.

How it finds the groups: EKS tags the Auto Scaling group of every managed node group for the autoscaler's
auto-discovery (`k8s.io/cluster-autoscaler/enabled` and `k8s.io/cluster-autoscaler/<cluster>`, value `owned`;
https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html: "Nodes launched as part of a managed
node group are automatically tagged for auto-discovery by the Kubernetes Cluster Autoscaler"). The chart turns
`autoDiscovery.clusterName` into `--node-group-auto-discovery=asg:tag=<both tags>`.

The tainted kafka group: the autoscaler respects each group's min size, and config refuses a kafka group whose
min_size is below kafka.replicas (config/models.py). For a group at zero nodes it builds the node it would add
from the EKS DescribeNodegroup API (labels and taints, e.g. dedicated=kafka:NoSchedule), not from
`node-template` tags on the ASG (which EKS owns; the node group's own tags never reach it):
cloudprovider/aws/aws_manager.go at 1.36.1, read because EKS tags the ASG `eks:nodegroup-name`/`eks:cluster-name`.

The dev night schedule: scaling a group to zero while the autoscaler runs would have it see the evicted pods
pending and scale the group straight back up. The scheduler therefore pauses it (its Deployment to 0 replicas)
before the groups go to zero and resumes it after they are back at their configured sizes
(lambda_handlers/scheduler; `PauseAccess` below is the one thing it may do in the cluster).

Facts about the pinned chart and binary: k8s_charts/contracts/cluster-autoscaler.yaml.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.helm_addon import HelmAddon, install
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.pod_identity import PodIdentityRole
from k8s_charts.common import apps_node_selector
from k8s_charts.images import CLUSTER_AUTOSCALER
from k8s_charts.placement import HelmDeployment

NAMESPACE = "kube-system"
# fullnameOverride: the Deployment, ServiceAccount, Role, ClusterRole, PDB and Service all get this name (the
# chart's default would be `cluster-autoscaler-aws-cluster-autoscaler`).
NAME = "cluster-autoscaler"
SERVICE_ACCOUNT = NAME
# One replica: it elects a leader anyway (--leader-elect defaults to true), a second would only wait.
REPLICAS = 1
CHART_REPOSITORY = "https://kubernetes.github.io/autoscaler"
ADDON = HelmAddon("cluster-autoscaler", CHART_REPOSITORY, NAMESPACE, False, "cluster_autoscaler")
# Its Deployment and the values that size and place it: config/capacity.py counts them (pod_values below).
PODS = (HelmDeployment(NAME, replicas="replicaCount", resources="resources", node_selector="nodeSelector"),)

# What the pod asks for; item 2's capacity fit counts it (chart example values: 100m / 300Mi).
RESOURCES = {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"cpu": "500m", "memory": "600Mi"}}

# Command-line flags (chart `extraArgs`, rendered `--<key>=<value>`); each is defined in config/flags/flags.go
# (or klog's flags) at cluster-autoscaler-1.36.1.
FLAGS: dict[str, str | bool | float] = {
    # The group whose scale-up leaves the least idle CPU/memory (the default, explicit). `priority` would need a
    # ConfigMap of group name patterns; there is one scalable group per environment today.
    "expander": "least-waste",
    # Groups of the same shape in different zones (a per-AZ split of apps) grow together.
    "balance-similar-node-groups": True,
    # The services' and Kafka's emptyDir volumes are scratch space (Kafka's data is on its PVC): with the default
    # (true) no apps node could ever be removed again.
    "skip-nodes-with-local-storage": False,
    # kube-system pods (CoreDNS, the controllers) move within their PodDisruptionBudgets instead of pinning a
    # node for an hour (--blocking-system-pod-distruption-timeout) first.
    "skip-nodes-with-system-pods": False,
    # Scale-down: a node below half its allocatable (requests) for 10 minutes, not within 10 minutes of a scale-up.
    "scale-down-utilization-threshold": 0.5,
    "scale-down-unneeded-time": "10m",
    "scale-down-delay-after-add": "10m",
    "v": 2,  # the chart's 4 logs every simulation loop
}


def owner_tag(config: EnvironmentConfig) -> str:
    """The tag EKS puts on each managed node group's ASG (value `owned`): the scaling actions' condition."""
    return f"k8s.io/cluster-autoscaler/{config.cluster_name}"


def cluster_autoscaler_values(config: EnvironmentConfig) -> dict:
    """Helm values of chart `cluster-autoscaler` 9.59.0 (every key in values.yaml at cluster-autoscaler-chart-9.59.0)."""
    values: dict = {
        "cloudProvider": "aws",
        "awsRegion": config.region,  # AWS_REGION: Pod Identity gives credentials, not a region
        "autoDiscovery": {"clusterName": config.cluster_name},
        "fullnameOverride": NAME,
        "rbac": {"serviceAccount": {"name": SERVICE_ACCOUNT}},
        "replicaCount": REPLICAS,
        # registry.k8s.io/autoscaling/cluster-autoscaler through the stage's pull-through cache (`k8s` rule), at the
        # cluster's minor (k8s_charts/images.py) rather than the chart's appVersion 1.35.0.
        "image": CLUSTER_AUTOSCALER.helm_values(config),
        "extraArgs": dict(FLAGS),
        "resources": RESOURCES,
        # A scale-down never evicts the autoscaler itself halfway through one.
        "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        # distroless/static:nonroot (uid 65532); nothing is written but stderr.
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    selector = apps_node_selector(config)
    if selector:
        values["nodeSelector"] = selector  # the apps nodes, never the tainted kafka group
    return values


# The capacity check's name for the values that size the pods (config/capacity.py): the release's own values.
pod_values = cluster_autoscaler_values


def autoscaler_statements(stack: Stack, config: EnvironmentConfig) -> list[iam.PolicyStatement]:
    """What 1.36.1's AWS provider calls (cloudprovider/aws/*.go), and nothing else.

    Reads have no resource-level permissions (or, for the ASG reads, none worth having: auto-discovery must list
    them). Changing a group - its desired size, or terminating one of its instances - is allowed only on ASGs
    EKS tagged as this cluster's; DescribeNodegroup only on this cluster's node groups."""
    return [
        iam.PolicyStatement(
            sid="Discover",
            actions=[
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeLaunchConfigurations",
                "autoscaling:DescribeScalingActivities",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions",
                "ec2:GetInstanceTypesFromInstanceRequirements",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="NodeGroupTemplates",
            actions=["eks:DescribeNodegroup"],
            resources=[
                stack.format_arn(service="eks", resource="nodegroup", resource_name=f"{config.cluster_name}/*/*")
            ],
        ),
        iam.PolicyStatement(
            sid="ScaleThisClustersGroups",
            actions=["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
            resources=[
                stack.format_arn(
                    service="autoscaling",
                    resource="autoScalingGroup",
                    resource_name="*:autoScalingGroupName/*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            conditions={"StringEquals": {f"aws:ResourceTag/{owner_tag(config)}": "owned"}},
        ),
    ]


def cluster_autoscaler(
    scope: Construct, *, cluster: eks.Cluster, config: EnvironmentConfig, nodegroups: list[eks.Nodegroup]
) -> eks.HelmChart:
    stack = Stack.of(scope)
    identity = PodIdentityRole(
        scope,
        "ClusterAutoscalerIdentity",
        cluster=cluster,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        statements=autoscaler_statements(stack, config),
    )
    acknowledge(
        identity.role,
        "AwsSolutions-IAM5[Resource::*]",
        "Only the Auto Scaling and EC2 reads use '*' (no resource-level permissions; discovery lists every ASG).",
    )
    acknowledge(
        identity.role,
        f"AwsSolutions-IAM5[Resource::arn:aws:eks:{stack.region}:{stack.account}:nodegroup/{config.cluster_name}/*/*]",
        "Node group names are generated by CloudFormation; the ARN is limited to this cluster's groups.",
    )
    acknowledge(
        identity.role,
        f"AwsSolutions-IAM5[Resource::arn:aws:autoscaling:{stack.region}:{stack.account}:"
        "autoScalingGroup:*:autoScalingGroupName/*]",
        "EKS names the node groups' ASGs; scaling is conditioned on this cluster's owned tag on the group.",
    )
    after = [identity, *nodegroups]
    values = cluster_autoscaler_values(config)
    return install(scope, "ClusterAutoscaler", ADDON, cluster=cluster, config=config, values=values, after=after)


# --- the night schedule's pause ---------------------------------------------------------------------------

# The Kubernetes group the scheduler's access entry puts its role in; bound below to one verb set on one object.
PAUSER_GROUP = "erp-autoscaler-pausers"
PAUSER_ROLE = "erp-autoscaler-pauser"


def pause_target() -> dict:
    """What the scheduler scales (AUTOSCALER in lambda_handlers/scheduler): 0 at night, REPLICAS in the morning."""
    return {"namespace": NAMESPACE, "name": NAME, "replicas": REPLICAS}


def pause_rbac_manifests() -> list[dict]:
    """A Role that may read and patch the autoscaler Deployment's scale subresource, and nothing else."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": PAUSER_ROLE, "namespace": NAMESPACE},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments/scale"],
                    "resourceNames": [NAME],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": PAUSER_ROLE, "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PAUSER_ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": PAUSER_GROUP}],
        },
    ]


class PauseAccess(Construct):
    """Lets `role` (the night scheduler's) scale the autoscaler Deployment: an EKS access entry putting it in
    PAUSER_GROUP (no access policy: nothing cluster-wide) and the Role above bound to that group."""

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster, role: iam.IRole) -> None:
        super().__init__(scope, id)
        self.entry = eks.CfnAccessEntry(
            self,
            "Entry",
            cluster_name=cluster.cluster_name,
            principal_arn=role.role_arn,
            type="STANDARD",
            kubernetes_groups=[PAUSER_GROUP],
        )
        self.rbac = eks.KubernetesManifest(self, "Rbac", cluster=cluster, manifest=pause_rbac_manifests())

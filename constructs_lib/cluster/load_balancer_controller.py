"""AWS Load Balancer Controller (Helm, pinned in config.cluster.helm) with a least-privilege Pod Identity role.

It only reconciles the TargetGroupBindings that put service pods into the NLB's target groups (the NLB
itself is CDK's, constructs_lib/network/nlb.py). Its image comes through the stage's pull-through cache.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.helm_addon import HelmAddon, install
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.pod_identity import PodIdentityRole
from k8s_charts.images import LOAD_BALANCER_CONTROLLER
from k8s_charts.placement import HelmDeployment

ALB_NAMESPACE = "kube-system"
ALB_SERVICE_ACCOUNT = "aws-load-balancer-controller"
ADDON = HelmAddon(
    "aws-load-balancer-controller",
    "https://aws.github.io/eks-charts",
    ALB_NAMESPACE,
    False,
    "aws_load_balancer_controller",
)
# Its Deployment and the values that size it (config/capacity.py counts them; chart default: 2 replicas, no requests).
PODS = (
    HelmDeployment("aws-load-balancer-controller", replicas="replicaCount", resources="resources", default_replicas=2),
)


def pod_values(config: EnvironmentConfig) -> dict:
    """Replicas and requests, set here so that the capacity check counts exactly what the pods ask for. It only
    reconciles a handful of TargetGroupBindings: a small, steady footprint."""
    return {
        "replicaCount": 2 if config.production else 1,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
    }


def load_balancer_controller(
    scope: Construct, *, cluster: eks.Cluster, config: EnvironmentConfig, nodegroups: list[eks.Nodegroup]
) -> eks.HelmChart:
    stack = Stack.of(scope)
    # The controller is only used for TargetGroupBindings (the NLB is CDK's), so it
    # needs to register pod IPs and open the node security group to the NLB — no more.
    alb_identity = PodIdentityRole(
        scope,
        "LoadBalancerControllerIdentity",
        cluster=cluster,
        namespace=ALB_NAMESPACE,
        service_account=ALB_SERVICE_ACCOUNT,
        statements=[
            iam.PolicyStatement(
                actions=["elasticloadbalancing:Describe*", "ec2:Describe*"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                actions=["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                resources=[stack.format_arn(service="elasticloadbalancing", resource="targetgroup", resource_name="*")],
            ),
            iam.PolicyStatement(
                actions=["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                resources=[
                    stack.format_arn(
                        service="ec2",
                        resource="security-group",
                        resource_name=cluster.cluster_security_group_id,
                    )
                ],
            ),
        ],
    )
    acknowledge(
        alb_identity.role,
        "AwsSolutions-IAM5[Action::elasticloadbalancing:Describe*]",
        "Describe calls have no resource-level permissions; read-only.",
    )
    acknowledge(
        alb_identity.role,
        "AwsSolutions-IAM5[Action::ec2:Describe*]",
        "EC2 Describe calls have no resource-level permissions.",
    )
    acknowledge(
        alb_identity.role,
        "AwsSolutions-IAM5[Resource::*]",
        "Only the Describe actions use '*'; register/deregister and SG changes are scoped.",
    )
    acknowledge(
        alb_identity.role,
        f"AwsSolutions-IAM5[Resource::arn:aws:elasticloadbalancing:{stack.region}:{stack.account}:targetgroup/*]",
        "Target groups live in the Api stack; referencing them here would make a dependency cycle.",
    )
    values = {
        "clusterName": cluster.cluster_name,
        "region": stack.region,
        "vpcId": cluster.vpc.vpc_id,
        **pod_values(config),
        "serviceAccount": {"create": True, "name": ALB_SERVICE_ACCOUNT},
        "enableServiceMutatorWebhook": False,
        # public.ecr.aws/eks/aws-load-balancer-controller through the stage's pull-through cache, at the tag pinned
        # (and scan-gated) in k8s_charts/images.py rather than the chart's appVersion.
        "image": LOAD_BALANCER_CONTROLLER.helm_values(config),
    }
    after = [alb_identity, *nodegroups]
    return install(scope, "LoadBalancerController", ADDON, cluster=cluster, config=config, values=values, after=after)

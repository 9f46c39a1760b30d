"""Controllers installed with Helm at pinned versions, each with a least-privilege Pod Identity role.

The versions come from config and match the CRDs vendored in ../shared/crds, so the
schema the tests validate against is the schema the running controller enforces.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.pod_identity import PodIdentityRole
from k8s_charts import names
from k8s_charts.images import ECR_PUBLIC_PREFIX, registry_host

ALB_NAMESPACE = "kube-system"
ALB_SERVICE_ACCOUNT = "aws-load-balancer-controller"


class ErpControllers(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.Cluster,
        config: EnvironmentConfig,
        nodegroups: list[eks.Nodegroup],
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        replicas = 2 if config.production else 1
        # A sleeping stage (night schedule, nodes at 0) cannot run the controllers' pods: Helm's --wait would
        # time out, roll back and leave the stack in UPDATE_ROLLBACK_FAILED. There the release is applied
        # without waiting; the pods start with the nodes in the morning.
        wait = config.schedule is None

        # The controller is only used for TargetGroupBindings (the NLB is CDK's), so it
        # needs to register pod IPs and open the node security group to the NLB — no more.
        alb_identity = PodIdentityRole(
            self,
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
                    resources=[
                        stack.format_arn(service="elasticloadbalancing", resource="targetgroup", resource_name="*")
                    ],
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
        self.load_balancer_controller = eks.HelmChart(
            self,
            "LoadBalancerController",
            cluster=cluster,
            chart="aws-load-balancer-controller",
            repository="https://aws.github.io/eks-charts",
            version=config.cluster.helm.aws_load_balancer_controller,
            release="aws-load-balancer-controller",
            namespace=ALB_NAMESPACE,
            create_namespace=False,
            wait=wait,
            timeout=Duration.minutes(10),
            values={
                "clusterName": cluster.cluster_name,
                "region": stack.region,
                "vpcId": cluster.vpc.vpc_id,
                "replicaCount": replicas,
                "serviceAccount": {"create": True, "name": ALB_SERVICE_ACCOUNT},
                "enableServiceMutatorWebhook": False,
                # public.ecr.aws/eks/aws-load-balancer-controller through the stage's pull-through cache.
                "image": {
                    "repository": f"{registry_host(config)}/{ECR_PUBLIC_PREFIX}/eks/aws-load-balancer-controller"
                },
            },
        )
        self.load_balancer_controller.node.add_dependency(alb_identity)
        # Helm waits for the pods: without nodes it only times out (a first create has none before this).
        self.load_balancer_controller.node.add_dependency(*nodegroups)

        secrets_identity = PodIdentityRole(
            self,
            "ExternalSecretsIdentity",
            cluster=cluster,
            namespace=names.EXTERNAL_SECRETS_NAMESPACE,
            service_account=names.EXTERNAL_SECRETS_SERVICE_ACCOUNT,
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[
                        stack.format_arn(
                            service="secretsmanager",
                            resource="secret",
                            resource_name=f"{config.secret_prefix}/*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            ],
        )
        acknowledge(
            secrets_identity.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:secretsmanager:{stack.region}:{stack.account}:secret:{config.secret_prefix}/*]",
            "Reads only this environment's secrets (erp/{env}/*); their ARNs end in a random suffix.",
        )
        self.external_secrets = eks.HelmChart(
            self,
            "ExternalSecrets",
            cluster=cluster,
            chart="external-secrets",
            repository="https://charts.external-secrets.io",
            version=config.cluster.helm.external_secrets,
            release="external-secrets",
            namespace=names.EXTERNAL_SECRETS_NAMESPACE,
            create_namespace=True,
            wait=wait,
            timeout=Duration.minutes(10),
            values={
                "installCRDs": True,
                "replicaCount": replicas,
                "serviceAccount": {"create": True, "name": names.EXTERNAL_SECRETS_SERVICE_ACCOUNT},
            },
        )
        self.external_secrets.node.add_dependency(secrets_identity, *nodegroups)

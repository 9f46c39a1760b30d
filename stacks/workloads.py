"""Workloads tier: the cdk8s charts applied to the cluster, fed with real values from the other stacks.

Its own stack because its manifests take values from Api and Data; on the Cluster
stack they would make a dependency cycle (Api -> Cluster -> Api).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cache import CACHE_PORT
from constructs_lib.database import MYSQL_PORT
from constructs_lib.nag import acknowledge
from constructs_lib.pod_identity import PodIdentityRole
from constructs_lib.registry import image_uri
from k8s_charts import build_charts, names
from k8s_charts.values import PlatformValues
from stacks.api import ApiStack
from stacks.data import DataStack

XRAY_WRITE_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
]


class WorkloadsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        cluster: eks.Cluster,
        vpc: ec2.IVpc,
        data: DataStack,
        api: ApiStack,
        repositories: Mapping[str, ecr.IRepository],
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        values = PlatformValues(
            region=self.region,
            vpc_cidr=vpc.vpc_cidr_block,
            db_host=data.database.instance.db_instance_endpoint_address,
            db_port=str(MYSQL_PORT),
            db_name=config.database.database_name,
            db_secret_arn=data.database.secret.secret_arn,
            cache_host=data.cache.endpoint,
            cache_port=str(CACHE_PORT),
            cache_secret_arn=data.cache.secret.secret_arn,
            target_group_arns=api.target_group_arns,
            nlb_security_group_id=api.nlb_security_group.security_group_id,
            images={s.name: image_uri(self, s, repositories) for s in config.services},
            log_group_name=config.application_log_group,
        )
        # Pods share the nodes' cluster security group (VPC CNI); the rules live here, not in
        # the Data stack, so that Data never depends on the cluster.
        for name, group, port in (
            ("Database", data.database.security_group, MYSQL_PORT),
            ("Cache", data.cache.security_group, CACHE_PORT),
        ):
            ec2.CfnSecurityGroupIngress(
                self,
                f"PodsTo{name}",
                group_id=group.security_group_id,
                source_security_group_id=cluster.cluster_security_group_id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"EKS pods to {name.lower()}",
            )
        self._identities(config, cluster)
        self.manifests: dict[str, eks.KubernetesManifest] = {}
        previous = None
        for chart_id, chart in build_charts(config, values).items():
            manifest = eks.KubernetesManifest(self, chart_id, cluster=cluster, manifest=chart.to_json(), overwrite=True)
            if previous is not None:
                # Namespace first, then secrets, Kafka, services...: each chart may use the previous one's objects.
                manifest.node.add_dependency(previous)
            previous = manifest
            self.manifests[chart_id] = manifest

    def _identities(self, config: EnvironmentConfig, cluster: eks.ICluster) -> None:
        """Pod Identity for the pods that write to AWS; the microservices call no AWS API, so get none."""
        log_group_arn = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=config.application_log_group,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        fluent_bit = PodIdentityRole(
            self,
            "FluentBitIdentity",
            cluster=cluster,
            namespace=names.LOGGING_NAMESPACE,
            service_account=names.FLUENT_BIT,
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[log_group_arn, f"{log_group_arn}:log-stream:*"],
                )
            ],
        )
        acknowledge(
            fluent_bit.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:logs:{self.region}:{self.account}:log-group:"
            f"{config.application_log_group}:log-stream:*]",
            "Fluent Bit creates one stream per pod in the one application log group; stream names are dynamic.",
        )
        xray = PodIdentityRole(
            self,
            "XRayDaemonIdentity",
            cluster=cluster,
            namespace=config.namespace,
            service_account=names.XRAY_DAEMON,
            statements=[iam.PolicyStatement(actions=XRAY_WRITE_ACTIONS, resources=["*"])],
        )
        acknowledge(
            xray.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray trace and sampling APIs have no resource-level permissions.",
        )

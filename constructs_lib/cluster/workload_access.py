"""What the pods may reach outside the cluster: the data tier by security group, AWS by Pod Identity.

Built in the Workloads stack, not beside the database: a rule in the Data stack naming the
cluster's security group would make Data depend on the cluster.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.api.employee_service import EmployeeService
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.pod_identity import PodIdentityRole
from constructs_lib.common.reference_fingerprint import fingerprint
from constructs_lib.data.cache import CACHE_PORT
from constructs_lib.data.database import MYSQL_PORT
from k8s_charts import names

# What the OTel collector calls: the awsxray exporter's PutTraceSegments (and PutTelemetryRecords), and the
# sampling calls the SDKs make through its awsxray receiver's proxy (the AWSXrayWriteOnlyAccess set).
XRAY_WRITE_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
]


class WorkloadAccess(Construct):
    """Pods share the nodes' cluster security group (VPC CNI); only Fluent Bit, the OTel collector, kafka-metrics
    and the employee proxy call AWS."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        cluster: eks.ICluster,
        database_security_group: ec2.ISecurityGroup,
        cache_security_group: ec2.ISecurityGroup,
        employees: EmployeeService | None = None,
    ) -> None:
        super().__init__(scope, id)
        for name, group, port, dependency in (
            ("Database", database_security_group, MYSQL_PORT, "mysql"),
            ("Cache", cache_security_group, CACHE_PORT, "cache"),
        ):
            # Only for what some service declares in `uses` (issue 18 item 17: every pod could reach MySQL).
            if not any(dependency in service.uses for service in config.services):
                continue
            ec2.CfnSecurityGroupIngress(
                self,
                f"PodsTo{name}",
                group_id=group.security_group_id,
                source_security_group_id=cluster.cluster_security_group_id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                # The fingerprint changes when the group is replaced, so this rule follows it (reference_fingerprint).
                description=f"EKS pods to {name.lower()} ({fingerprint([group])})",
            )

        stack = Stack.of(self)
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=config.application_log_group,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        def identity(id: str, namespace: str, service_account: str, **permissions) -> PodIdentityRole:
            """A Pod Identity role in this cluster for one service account."""
            return PodIdentityRole(
                self, id, cluster=cluster, namespace=namespace, service_account=service_account, **permissions
            )

        fluent_bit = identity(
            "FluentBitIdentity",
            names.LOGGING_NAMESPACE,
            names.FLUENT_BIT,
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[log_group_arn, f"{log_group_arn}:log-stream:*"],
                )
            ],
        )
        acknowledge(
            fluent_bit.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:logs:{stack.region}:{stack.account}:log-group:"
            f"{config.application_log_group}:log-stream:*]",
            "Fluent Bit creates one stream per pod in the one application log group; stream names are dynamic.",
        )
        collector = identity(
            "OtelCollectorIdentity",
            config.namespace,
            names.OTEL_COLLECTOR,
            statements=[iam.PolicyStatement(actions=XRAY_WRITE_ACTIONS, resources=["*"])],
        )
        acknowledge(
            collector.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray trace and sampling APIs have no resource-level permissions.",
        )
        # kafka-metrics' collector: its awsemf exporter writes EMF events into its one log group (created with
        # retention by the Observability stack) and one stream; CloudWatch extracts the metrics from them, so no
        # cloudwatch:PutMetricData (the exporter never calls it: internal/aws/cwlogs, v0.156.0).
        kafka_metrics_group = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=names.kafka_metrics_log_group(config),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        identity(
            "KafkaMetricsIdentity",
            config.namespace,
            names.KAFKA_METRICS,
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        kafka_metrics_group,
                        f"{kafka_metrics_group}:log-stream:{names.KAFKA_METRICS_LOG_STREAM}",
                    ],
                )
            ],
        )
        if employees is not None:
            # The in-cluster employee-service proxy: the one identity allowed to call the IAM-only function URL.
            proxy = identity("EmployeeProxyIdentity", config.namespace, names.EMPLOYEE_PROXY)
            employees.grant_internal_caller(proxy.role)
            self.employee_proxy_role = proxy.role

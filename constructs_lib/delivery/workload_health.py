"""What the pipeline's smoke test reads about the pods: a report, every minute, from inside the VPC (issue 18,
build item 4).

The smoke test runs in the toolchain account with the stage's read-only CDK lookup role, outside the VPC;
prod's Kubernetes API is private (and dev's admits only the office range). So a small function in the private
subnets reads every workload the platform ships (workload_inventory.expected_workloads: from the charts, never
typed) through the Kubernetes API and writes one JSON report to the SSM parameter
`/erp/<env>/smoke/workloads`, which the smoke test reads through the lookup role and requires to be fresh and
all available (tools/smoke_check.py; the handler is lambda_handlers/workload_health).

Least privilege: its role may write that one parameter; in the cluster it has an EKS access entry with
AmazonEKSViewPolicy at cluster scope (Kubernetes' `view`: workloads and pods, never Secrets); on the network
its own security group reaches the API endpoint on 443 (an ingress rule on the cluster security group) and
the AWS APIs through the NAT.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.delivery.workload_inventory import expected_workloads

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "workload_health"
VIEW_POLICY = "AmazonEKSViewPolicy"
REPORT_EVERY = Duration.minutes(1)


def report_parameter_name(config: EnvironmentConfig) -> str:
    return f"{config.ssm_prefix}/smoke/workloads"


class WorkloadHealthReporter(Construct):
    def __init__(
        self, scope: Construct, id: str, *, config: EnvironmentConfig, cluster: eks.Cluster, vpc: ec2.IVpc
    ) -> None:
        super().__init__(scope, id)
        self.workloads = [str(workload) for workload in expected_workloads(config)]
        self.parameter = ssm.StringParameter(
            self,
            "Report",
            parameter_name=report_parameter_name(config),
            description="Workload availability, written every minute by the workload health reporter",
            string_value=json.dumps({"checked_at": None}),
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Workload health reporter: HTTPS to the cluster API and the AWS APIs",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Kubernetes API, SSM, STS")
        cluster.cluster_security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(443), "workload health reporter reads the Kubernetes API"
        )
        self.function = PythonFunction(
            self,
            "Function",
            description=f"Reports every minute whether the workloads of {config.cluster_name} are available",
            entry=HANDLER_DIR,
            environment={
                "CLUSTER_NAME": cluster.cluster_name,
                "ENDPOINT": cluster.cluster_endpoint,
                "CA_DATA": cluster.cluster_certificate_authority_data,
                "WORKLOADS": json.dumps(self.workloads),
                "PARAMETER": self.parameter.parameter_name,
            },
            timeout=Duration.seconds(50),
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.security_group,
        )
        self.function.role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:PutParameter"], resources=[self.parameter.parameter_arn])
        )
        self.access = eks.AccessEntry(
            self,
            "ClusterView",
            cluster=cluster,
            principal=self.function.role.role_arn,
            access_policies=[
                eks.AccessPolicy.from_access_policy_name(VIEW_POLICY, access_scope_type=eks.AccessScopeType.CLUSTER)
            ],
        )
        self.schedule = events.Rule(
            self,
            "Every",
            description=f"Workload health report of {config.cluster_name}",
            schedule=events.Schedule.rate(REPORT_EVERY),
            targets=[targets.LambdaFunction(self.function.function, retry_attempts=0)],
        )

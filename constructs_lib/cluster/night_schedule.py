"""Office hours for a non-prod environment: node groups (and optionally the DB) sleep outside them.

EventBridge Scheduler + a small Lambda rather than scheduled actions: managed node
groups own their Auto Scaling groups (created by EKS, not in our templates), so the
only supported knob is eks:UpdateNodegroupConfig; Scheduler speaks time zones
(Asia/Seoul) natively, so office hours in config need no UTC arithmetic.

The Cluster Autoscaler (cluster_autoscaler.py) would undo the stop: it sees the evicted pods pending and scales
the groups straight back up (maxSize stays >= 1). So the Lambda also pauses it - its Deployment to 0 replicas
through the Kubernetes API - before the groups go to zero, and resumes it once they are back at their configured
sizes (the handler's docstring says what happens when a step fails). For that it runs in the private subnets
(dev's API endpoint admits only the office range from outside) with an access entry that may patch that one
Deployment's scale and nothing else (cluster_autoscaler.PauseAccess).
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster import cluster_autoscaler
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.python_function import PythonFunction

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "scheduler"


class NightSchedule(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        cluster: eks.ICluster,
        vpc: ec2.IVpc,
        nodegroups: dict[str, eks.Nodegroup],
        database: rds.IDatabaseInstance | None = None,
    ) -> None:
        super().__init__(scope, id)
        schedule = config.schedule
        if schedule is None:
            raise ValueError(f"{config.name}: NightSchedule needs config.schedule")
        stack = Stack.of(self)
        # Node group names are generated (CloudFormation values): the JSON is rendered by CloudFormation.
        groups = {g.name: g for g in config.cluster.node_groups}
        sizes = {
            nodegroups[name].nodegroup_name: {"min": g.min_size, "desired": g.desired_size, "max": g.max_size}
            for name, g in sorted(groups.items())
        }
        stop_database = schedule.stop_database and database is not None
        environment = {
            "CLUSTER_NAME": config.cluster_name,
            "NODEGROUP_SIZES": stack.to_json_string(sizes),
            "NODEGROUPS": stack.to_json_string([nodegroups[name].nodegroup_name for name in sorted(groups)]),
            "STOP_DATABASE": "true" if stop_database else "false",
            # The autoscaler paused at night and resumed in the morning, through the cluster's API.
            "AUTOSCALER": json.dumps(cluster_autoscaler.pause_target()),
            "ENDPOINT": cluster.cluster_endpoint,
            "CA_DATA": cluster.cluster_certificate_authority_data,
        }
        if stop_database:
            environment["DB_INSTANCE_ID"] = database.instance_identifier
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Night scheduler: HTTPS to the cluster API and the AWS APIs",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Kubernetes API, EKS, RDS, STS")
        cluster.cluster_security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(443), "night scheduler pauses the cluster autoscaler"
        )
        self.function = PythonFunction(
            self,
            "Scaler",
            description=f"Scales {config.cluster_name} to zero outside office hours and back",
            entry=HANDLER_DIR,
            environment=environment,
            timeout=Duration.minutes(2),
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.security_group,
        )
        role = self.function.role
        self.autoscaler_access = cluster_autoscaler.PauseAccess(self, "AutoscalerPause", cluster=cluster, role=role)
        role.add_to_policy(iam.PolicyStatement(actions=["eks:ListNodegroups"], resources=[cluster.cluster_arn]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["eks:DescribeNodegroup", "eks:UpdateNodegroupConfig"],
                resources=[nodegroups[name].nodegroup_arn for name in sorted(groups)],
            )
        )
        if stop_database:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["rds:DescribeDBInstances", "rds:StopDBInstance", "rds:StartDBInstance"],
                    resources=[database.instance_arn],
                )
            )

        start_h, start_m = schedule.start.split(":")
        stop_h, stop_m = schedule.stop.split(":")
        zone = TimeZone.of(schedule.timezone)
        for action, hour, minute in (("start", start_h, start_m), ("stop", stop_h, stop_m)):
            scheduler.Schedule(
                self,
                action.capitalize(),
                description=f"{action} {config.cluster_name} ({schedule.weekdays} {hour}:{minute} {schedule.timezone})",
                schedule=scheduler.ScheduleExpression.cron(
                    minute=str(int(minute)), hour=str(int(hour)), week_day=schedule.weekdays, time_zone=zone
                ),
                target=targets.LambdaInvoke(
                    self.function.function,
                    input=scheduler.ScheduleTargetInput.from_object({"action": action}),
                    retry_attempts=2,
                ),
            )
        for child in stack.node.children:
            if child.node.id.startswith("SchedulerRoleForTarget"):
                acknowledge(
                    child,
                    f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.function.function.node.default_child)}.Arn>:*]",
                    "Scheduler's role may invoke the scaler function's versions and aliases only.",
                )

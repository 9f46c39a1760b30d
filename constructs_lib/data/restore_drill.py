"""The restore drill (issue 21): proof that the database's latest recovery point restores, how long it takes (RTO)
and how old the data it brings back is (RPO). A backup never restored is a hope, not a backup.

A Standard Step Functions state machine (`<prefix>-restore-drill`) drives one Python Lambda
(lambda_handlers/restore_drill, the step chosen by the event) rather than one Lambda doing it all:
- an RDS restore takes 10-40 minutes, past Lambda's 15-minute cap; a Wait state waits for free, a polling
  Lambda would pay for every minute;
- Catch guarantees the cleanup: every Task's errors lead to cleanup (which deletes every instance tagged for this
  environment's drill, this run's and leftovers of earlier ones) and then the failure report and a Fail state;
  the cleanup repeats until the instances are gone;
- the execution history shows each step's input, output and error, which is the drill's record.
The state machine's timeout (config) is a backstop: a timed-out execution runs no Catch, so the status step gives
up CLEANUP_RESERVE earlier, while there is still time to clean up, and the next run deletes what is left anyway.

The temporary instance: restored from the recovery point's snapshot into the live instance's subnet group
(isolated subnets) and parameter group (TLS only), single-AZ, not public, no deletion protection, in a security
group of its own that admits MySQL from the drill function only. It gets a known master password (the drill
secret) because the snapshot keeps the password of its day, which rotation may have changed since.

Least privilege: the function may restore only to instances named `<prefix>-drill-*` carrying the tag
`erp:restore-drill=<prefix>` in the request, may modify and delete only instances with that name and tag, lists
recovery points of this vault only, reads the drill secret and the employee service's MySQL user (SELECT on the
live tables), and may use a KMS key only through RDS (restoring an encrypted snapshot). Describing instances
takes `*`: cleanup must find leftovers by their tag, and RDS filters by tag only after listing.

Results are metrics (namespace `<project>/<env>/backup`): DrillSucceeded, RestoreMinutes, RecoveryPointAgeHours
on every run, and DaysSinceLastDrill from a daily heartbeat when the drill is scheduled (a missed weekly run;
constructs_lib/observability/backup_alarms.py says why a heartbeat). The alarms live in the Observability stack.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, TimeZone, Token
from aws_cdk import aws_backup as backup
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import log_removal, retention
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.security_groups import closed_security_group, lambda_security_group
from constructs_lib.data.database import MYSQL_PORT

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "restore_drill"
SERVICE_NAME = "restore-drill"
TAG_KEY = "erp:restore-drill"
METRIC_NAMES = ("DrillSucceeded", "RestoreMinutes", "RecoveryPointAgeHours", "DaysSinceLastDrill")
# Kept back from the state machine's timeout for cleanup (an RDS delete takes 5-10 minutes) and the report.
CLEANUP_RESERVE = Duration.minutes(20)
POLL = Duration.minutes(1)
# The heartbeat's time of day (drill.timezone): it reports how long ago the last drill passed.
HEARTBEAT_SCHEDULE = "cron(0 12 * * ? *)"
# What RDS allows in a master password: printable ASCII except / ' " @ and space.
PASSWORD_EXCLUDES = "/'\"@ \\`"
FUNCTION_TIMEOUT = Duration.minutes(5)  # start counts live's five tables, the check the copy's


def state_machine_name(config: EnvironmentConfig) -> str:
    """Fixed: the Observability stack's alarms and the README's start-execution command find it by name."""
    return f"{config.resource_prefix}-restore-drill"


def state_machine_arn(scope: Construct, config: EnvironmentConfig) -> str:
    return Stack.of(scope).format_arn(
        service="states",
        resource="stateMachine",
        resource_name=state_machine_name(config),
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def metrics_namespace(config: EnvironmentConfig) -> str:
    return f"{config.project}/{config.name}/backup"


def instance_prefix(config: EnvironmentConfig) -> str:
    """Every drill instance's identifier starts so (lambda_handlers/restore_drill names them)."""
    return f"{config.resource_prefix}-drill-"


class RestoreDrill(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        database: rds.IDatabaseInstance,
        database_security_group: ec2.ISecurityGroup,
        live_secret: secretsmanager.ISecret,
        vault: backup.IBackupVault,
    ) -> None:
        super().__init__(scope, id)
        drill = config.backup.drill
        stack = Stack.of(self)
        timeout = Duration.minutes(drill.timeout_minutes)
        deadline_minutes = drill.timeout_minutes - CLEANUP_RESERVE.to_minutes()
        if deadline_minutes < 10:
            raise ValueError(
                f"backup.drill.timeout_minutes: {drill.timeout_minutes} leaves no time to restore after the "
                f"{CLEANUP_RESERVE.to_minutes()} minutes kept for cleanup"
            )
        self.function_security_group = lambda_security_group(
            self,
            "FunctionSecurityGroup",
            vpc=vpc,
            description="Restore drill Lambda: HTTPS out (AWS APIs), MySQL to the live and the restored database",
        )
        self.instance_security_group = closed_security_group(
            self,
            "InstanceSecurityGroup",
            vpc=vpc,
            description="Restore drill temporary instance: MySQL from the drill Lambda only",
        )
        self.password = secretsmanager.Secret(
            self,
            "Password",
            description=f"Master password the restore drill sets on its temporary instances ({config.resource_prefix})",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=32, exclude_characters=PASSWORD_EXCLUDES
            ),
        )
        # Kept in prod like every prod secret (tests/infra/test_safety.py): one left over costs $0.40 a month.
        self.password.apply_removal_policy(RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY)
        acknowledge(
            self.password,
            "AwsSolutions-SMG4",
            "Set afresh on each temporary drill instance, which lives under an hour; nothing else uses it.",
        )
        self.function = PythonFunction(
            self,
            "Function",
            description=f"Restore drill steps of {config.resource_prefix}: restore, check, clean up, report",
            entry=HANDLER_DIR,
            environment={
                "PREFIX": config.resource_prefix,
                "TAG_KEY": TAG_KEY,
                "VAULT_NAME": vault.backup_vault_name,
                "DB_INSTANCE_ID": database.instance_identifier,
                "DB_NAME": config.database.database_name,
                "DB_INSTANCE_CLASS": f"db.{drill.instance_class}",
                "DRILL_SECURITY_GROUP_ID": self.instance_security_group.security_group_id,
                "DRILL_SECRET_ARN": self.password.secret_arn,
                "LIVE_SECRET_ARN": live_secret.secret_arn,
                "ROW_COUNT_TOLERANCE_PCT": f"{drill.row_count_tolerance_pct:g}",
                "DEADLINE_MINUTES": str(deadline_minutes),
                "STATE_MACHINE_ARN": state_machine_arn(self, config),
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace(config),
            },
            timeout=FUNCTION_TIMEOUT,
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.function_security_group,
        )
        # allow_to puts the live database's ingress rule in this stack: the Data stack never depends on this one.
        self.function.connections.allow_to(
            database_security_group, ec2.Port.tcp(MYSQL_PORT), "restore drill reads live row counts"
        )
        self.function.connections.allow_to(
            self.instance_security_group, ec2.Port.tcp(MYSQL_PORT), "restore drill checks its restored copy"
        )
        self._grant(config, stack, vault, database, live_secret)
        self.state_machine = self._state_machine(config, timeout)
        self.schedules = self._schedule(config, stack)
        CfnOutput(
            self,
            "StateMachineArn",
            value=self.state_machine.state_machine_arn,
            description="Start a restore drill: aws stepfunctions start-execution --state-machine-arn <this>",
        )

    # ---- permissions --------------------------------------------------------------------------------------------

    def _grant(
        self,
        config: EnvironmentConfig,
        stack: Stack,
        vault: backup.IBackupVault,
        database: rds.IDatabaseInstance,
        live_secret: secretsmanager.ISecret,
    ) -> None:
        role = self.function.role
        prefix = config.resource_prefix

        def rds_arn(resource: str, name: str) -> str:
            return stack.format_arn(
                service="rds", resource=resource, resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
            )

        drill_instances = rds_arn("db", f"{instance_prefix(config)}*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RestoreOnlyTaggedDrillInstances",
                actions=["rds:RestoreDBInstanceFromDBSnapshot", "rds:AddTagsToResource"],
                resources=[drill_instances],
                conditions={"StringEquals": {f"aws:RequestTag/{TAG_KEY}": prefix}},
            )
        )
        # What a restore reads besides the new instance: AWS Backup's snapshot, the live instance's subnet and
        # parameter groups, the engine's default option group. Only usable for a restore the statement above allows.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RestoreFromBackupSnapshots",
                actions=["rds:RestoreDBInstanceFromDBSnapshot"],
                resources=[
                    rds_arn("snapshot", "awsbackup:*"),
                    rds_arn("subgrp", "*"),
                    rds_arn("pg", "*"),
                    rds_arn("og", "*"),
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ModifyAndDeleteOnlyTaggedDrillInstances",
                actions=["rds:ModifyDBInstance", "rds:DeleteDBInstance"],
                resources=[drill_instances],
                conditions={"StringEquals": {f"aws:ResourceTag/{TAG_KEY}": prefix}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="FindInstances", actions=["rds:DescribeDBInstances"], resources=["*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRecoveryPoints",
                actions=["backup:ListRecoveryPointsByBackupVault"],
                resources=[vault.backup_vault_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LastDrill",
                actions=["states:ListExecutions", "states:DescribeStateMachine"],
                resources=[state_machine_arn(self, config)],
            )
        )
        # The snapshot is encrypted with the live instance's key; RDS needs a grant on it for the new instance.
        key_arn = stack.format_arn(service="kms", resource="key", resource_name="*")
        via_rds = {"kms:ViaService": f"rds.{stack.region}.{stack.url_suffix}"}
        role.add_to_policy(
            iam.PolicyStatement(
                sid="KeyGrantThroughRds",
                actions=["kms:CreateGrant"],
                resources=[key_arn],
                conditions={"StringEquals": via_rds, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeKeyThroughRds",
                actions=["kms:DescribeKey"],
                resources=[key_arn],
                conditions={"StringEquals": via_rds},
            )
        )
        self.password.grant_read(role)
        live_secret.grant_read(role)

        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        rds_prefix = f"arn:{partition}:rds:{region}:{account}"
        reasons = {
            f"Resource::{rds_prefix}:db:{instance_prefix(config)}*": "Drill instances are named by the run's time; the "
            f"statement also requires the tag {TAG_KEY}={prefix}.",
            f"Resource::{rds_prefix}:snapshot:awsbackup:*": "AWS Backup names each RDS recovery point's snapshot by its "
            "job id; the vault listing picks the one.",
            f"Resource::{rds_prefix}:subgrp:*": "The live instance's subnet group, read at run time; only a drill "
            "instance may be restored into it.",
            f"Resource::{rds_prefix}:pg:*": "The live instance's parameter group, read at run time; only a drill "
            "instance may be restored with it.",
            f"Resource::{rds_prefix}:og:*": "The engine's default option group a restore attaches; only for a drill "
            "instance restore.",
            "Resource::*": "Cleanup lists every instance to find drill leftovers by tag; X-Ray and VPC network calls "
            "take no resource.",
            f"Resource::arn:{partition}:kms:{region}:{account}:key/*": "The live instance's key is RDS's choice; only "
            "RDS may use it on the drill's behalf (kms:ViaService).",
        }
        for finding, reason in reasons.items():
            acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)

    # ---- the state machine ---------------------------------------------------------------------------------------

    def _task(self, step: str, id: str, result_path: str | None, **payload) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self,
            id,
            lambda_function=self.function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "step": step,
                    "state": sfn.JsonPath.entire_payload,
                    "started": sfn.JsonPath.execution_start_time,
                    **payload,
                }
            ),
            payload_response_only=True,
            result_path=result_path if result_path is not None else sfn.JsonPath.DISCARD,
        )

    def _until_ready(self, id: str, then: sfn.IChainable, catch: sfn.IChainable) -> sfn.Wait:
        """Wait -> status -> ready? then : wait again."""
        wait = sfn.Wait(self, f"{id}Wait", time=sfn.WaitTime.duration(POLL))
        status = self._task("status", f"{id}Status", "$.status")
        status.add_catch(catch, result_path="$.error")
        ready = sfn.Choice(self, f"{id}Ready")
        ready.when(sfn.Condition.boolean_equals("$.status.ready", True), then).otherwise(wait)
        wait.next(status).next(ready)
        return wait

    def _cleanup(self, id: str, then: sfn.IChainable) -> tuple[tasks.LambdaInvoke, sfn.Choice]:
        """cleanup -> gone? then : wait -> cleanup. Retried: a throttled or failed delete is tried again."""
        cleanup = self._task("cleanup", id, "$.cleanup")
        cleanup.add_retry(errors=["States.ALL"], interval=Duration.seconds(30), max_attempts=3, backoff_rate=2)
        wait = sfn.Wait(self, f"{id}Wait", time=sfn.WaitTime.duration(POLL))
        gone = sfn.Choice(self, f"{id}Gone")
        gone.when(sfn.Condition.boolean_equals("$.cleanup.done", True), then).otherwise(wait)
        wait.next(cleanup)
        cleanup.next(gone)
        return cleanup, gone

    def _state_machine(self, config: EnvironmentConfig, timeout: Duration) -> sfn.StateMachine:
        # Failure path: cleanup (until gone) -> report 0 -> Fail with the first error.
        failed = sfn.Fail(self, "DrillFailed", error_path="$.error.Error", cause_path="$.error.Cause")
        report_failure = self._task("report", "ReportFailure", "$.report", succeeded=False)
        report_failure.add_retry(errors=["States.ALL"], interval=Duration.seconds(10), max_attempts=3)
        report_failure.next(failed)
        failure_cleanup, _ = self._cleanup("CleanupAfterFailure", report_failure)
        # A cleanup that keeps failing still reports (and the run fails); the next run deletes what is left.
        failure_cleanup.add_catch(report_failure, result_path="$.cleanup_error")

        # Success path: start -> ready -> password -> ready -> check -> cleanup (until gone) -> report -> Succeed.
        report = self._task("report", "Report", "$.report", succeeded=True)
        report.add_catch(failure_cleanup, result_path="$.error")
        report.next(sfn.Succeed(self, "DrillPassed"))
        cleanup, _ = self._cleanup("Cleanup", report)
        cleanup.add_catch(failure_cleanup, result_path="$.error")
        check = self._task("check", "Check", "$.check")
        # A fresh instance's DNS name or new password may need a minute before it answers.
        check.add_retry(errors=["DatabaseUnreachable"], interval=Duration.seconds(30), max_attempts=4, backoff_rate=2)
        check.add_catch(failure_cleanup, result_path="$.error")
        check.next(cleanup)
        wait_for_password = self._until_ready("Password", check, failure_cleanup)
        set_password = self._task("set_password", "SetPassword", None)
        set_password.add_catch(failure_cleanup, result_path="$.error")
        set_password.next(wait_for_password)
        wait_for_restore = self._until_ready("Restore", set_password, failure_cleanup)
        start = self._task("start", "Start", "$.drill")
        start.add_catch(failure_cleanup, result_path="$.error")
        start.next(wait_for_restore)

        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=retention(config.observability.log_retention_days),
            removal_policy=log_removal(config.production),
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name(config),
            state_machine_type=sfn.StateMachineType.STANDARD,
            comment=f"Restore drill of {config.resource_prefix}: latest recovery point -> temporary instance -> check",
            definition_body=sfn.DefinitionBody.from_chainable(start),
            timeout=timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        acknowledge(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions' log delivery and X-Ray calls take no resource (CDK's standard state machine policy).",
        )
        function_arn = Stack.of(self).get_logical_id(self.function.function.node.default_child)
        acknowledge(
            machine.role,
            f"AwsSolutions-IAM5[Resource::<{function_arn}.Arn>:*]",
            "The state machine may invoke the drill function's versions and aliases only.",
        )
        return machine

    # ---- schedules ----------------------------------------------------------------------------------------------

    def _schedule(self, config: EnvironmentConfig, stack: Stack) -> list[scheduler.Schedule]:
        drill = config.backup.drill
        if drill.schedule is None:
            return []  # on demand: README, `aws stepfunctions start-execution`
        zone = TimeZone.of(drill.timezone)
        schedules = [
            scheduler.Schedule(
                self,
                "Drill",
                description=f"Restore drill of {config.resource_prefix} ({drill.schedule} {drill.timezone})",
                schedule=scheduler.ScheduleExpression.expression(drill.schedule, time_zone=zone),
                target=targets.StepFunctionsStartExecution(self.state_machine, retry_attempts=0),
            ),
            scheduler.Schedule(
                self,
                "Heartbeat",
                description=f"Daily: days since {config.resource_prefix}'s last passed restore drill",
                schedule=scheduler.ScheduleExpression.expression(HEARTBEAT_SCHEDULE, time_zone=zone),
                target=targets.LambdaInvoke(
                    self.function.function,
                    input=scheduler.ScheduleTargetInput.from_object({"step": "heartbeat"}),
                    retry_attempts=2,
                ),
            ),
        ]
        function_arn = stack.get_logical_id(self.function.function.node.default_child)
        for child in stack.node.children:
            if child.node.id.startswith("SchedulerRoleForTarget"):
                acknowledge(
                    child,
                    f"AwsSolutions-IAM5[Resource::<{function_arn}.Arn>:*]",
                    "Scheduler's role may invoke the drill function's versions and aliases only.",
                )
        return schedules

"""The employee service (formerly a Spring pod on 8081), now a Lambda in the VPC next to the database."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from config.sections import AuthConfig, EmployeeFunctionConfig
from constructs_lib.common.deploy_trigger import deploy_trigger
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.security_groups import lambda_security_group
from constructs_lib.data.database import MYSQL_PORT

CODE_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "employee"
SERVICE_NAME = "employee-service"
MAX_BODY_BYTES = 16 * 1024


class EmployeeService(Construct):
    """Reads its DML-only user's secret, talks verified TLS to MySQL, HTTPS out (Secrets Manager), nothing else.

    `db_secret` must be the function's own consumer secret (DatabaseUsers), never the master's:
    the schema belongs to the migration function.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        config: EmployeeFunctionConfig,
        db_secret: secretsmanager.ISecret,
        db_name: str,
        db_security_group: ec2.ISecurityGroup,
        metrics_namespace: str,
        auth: AuthConfig,
        scope_prefix: str,
        log_retention_days: int,
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        self.security_group = lambda_security_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Employee Lambda: HTTPS out (AWS APIs) and MySQL to the database only",
        )
        self.service = PythonFunction(
            self,
            "Service",
            description="Employee service: /api/employees, /attendance, /quests, /leaves",
            entry=CODE_DIR,
            handler="app.handler",
            environment={
                "DB_SECRET_ARN": db_secret.secret_arn,
                "DB_NAME": db_name,
                "DB_TLS": "true",  # verified against the bundled RDS CA, host name checked
                # Privileged Cognito groups (groups claim or "<project>/<group>" scope); nothing else grants rights.
                "AUTH_ADMIN_GROUPS": ",".join(auth.admin_groups),
                "AUTH_MANAGER_GROUPS": ",".join(auth.manager_groups),
                "AUTH_SCOPE_PREFIX": scope_prefix,
                "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                # One check-in per employee and calendar day there (the migration backfills in the same zone).
                "BUSINESS_TIMEZONE": config.business_timezone,
                # The most one in-cluster deduct-leave call may take (approval-request trusts its body's ids).
                "MAX_LEAVE_DEDUCTION_DAYS": str(config.max_leave_deduction_days),
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            memory_mb=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            reserved_concurrency=config.reserved_concurrency,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.security_group,
            log_retention_days=log_retention_days,
            production=production,
        )
        self.function = self.service.function
        db_secret.grant_read(self.function)
        # allow_to (not the database's allow_from) puts the database's ingress rule in *this*
        # stack: the Data stack must never depend on the stacks that use it.
        self.function.connections.allow_to(db_security_group, ec2.Port.tcp(MYSQL_PORT), "employee Lambda to MySQL")

        # The in-cluster path (approval-request-service's employee lookups): a function URL that only
        # SigV4-signed callers granted by grant_internal_caller may invoke. The handler trusts requests
        # arriving this way (requestContext.authorizer.iam) for two routes only.
        self.internal_url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)

        # Every deploy that changes the function invokes it once (empty event: app.deploy_check) with its own
        # user, TLS and network path: a function that cannot reach the database fails the deploy.
        self.deploy_check = deploy_trigger(
            self,
            "DatabaseCheck",
            handler=self.function,
            # After the function's security group and the database ingress rule under it.
            execute_after=[self.security_group],
            timeout=Duration.minutes(2),
            log_retention_days=log_retention_days,
            production=production,
        )

    @property
    def internal_url_host(self) -> str:
        """The function URL's host (https://<host>/ -> <host>): what the in-cluster SigV4 proxy signs for."""
        return Fn.select(2, Fn.split("/", self.internal_url.url))

    def grant_internal_caller(self, grantee: iam.IGrantable) -> None:
        """Let one principal (the in-cluster proxy's role) call the function URL; nobody else may."""
        self.internal_url.grant_invoke_url(grantee)

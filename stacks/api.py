"""API tier: the HTTP API, the NLB in front of the EKS services, and the employee Lambda.

References run one way only: Api reads Network, Data and Auth; none of them reads Api.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.api.employee_service import EmployeeService
from constructs_lib.api.http_api import ErpHttpApi
from constructs_lib.api.routes import route_plan
from constructs_lib.data.database import ErpDatabase
from constructs_lib.network.nlb import ServiceNlb

EMPLOYEE_URL_HOST_OUTPUT = "EmployeeFunctionUrlHost"


@dataclass(frozen=True)
class ApiEndpoints:
    """What the workloads take from the API tier: the NLB's addresses, group and target groups, the employee
    function's caller grant and URL host (a weak reference: `employees.internal_url` is its producer)."""

    nlb_private_ips: list[str]
    nlb_security_group: ec2.ISecurityGroup
    target_groups: Mapping[str, elbv2.NetworkTargetGroup]
    target_group_arns: Mapping[str, str]
    employees: EmployeeService
    employee_function_url_host: str


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        database: ErpDatabase,
        employee_db_secret: secretsmanager.ISecret,
        user_pool: cognito.IUserPool,
        user_pool_client: cognito.IUserPoolClient,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        name = config.resource_prefix
        log_retention_days = config.observability.log_retention_days

        self.nlb = ServiceNlb(self, "ServiceNlb", vpc=vpc, services=config.services, network=config.network)
        self.nlb_security_group = self.nlb.security_group
        self.target_group_arns = self.nlb.target_group_arns

        self.api = ErpHttpApi(
            self,
            "Api",
            config=config.api,
            name=name,
            vpc=vpc,
            user_pool=user_pool,
            user_pool_client=user_pool_client,
            log_retention_days=log_retention_days,
            production=config.production,
        )
        self.http_api = self.api.http_api
        self.nlb.admit(self.api.vpc_link_security_group, "HTTP API VPC Link")
        self.api.add_health_route()
        self.employees = EmployeeService(
            self,
            "EmployeeService",
            vpc=vpc,
            config=config.employee_function,
            db_secret=employee_db_secret,  # its own DML-only user, never the master
            db_name=config.database.database_name,
            db_security_group=database.security_group,
            metrics_namespace=config.project.upper(),
            auth=config.auth,
            scope_prefix=config.project,
            log_retention_days=log_retention_days,
            production=config.production,
        )
        self.employee_function = self.employees.function
        self._add_routes(config)

        # The pipeline's smoke test reads this output: base URL, no trailing slash.
        self.url_output = CfnOutput(self, "ApiUrl", value=self.api.url, description="HTTP API base URL")
        if self.api.domain_name is not None:
            CfnOutput(
                self,
                "ApiDomainTarget",
                value=self.api.domain_name.regional_domain_name,
                description=f"CNAME/alias target for {config.api.domain_name}",
            )

    def _add_routes(self, config: EnvironmentConfig) -> None:
        self.api.add_planned_routes(
            route_plan(config),
            lambda_integration=integrations.HttpLambdaIntegration("Employees", self.employee_function),
            listeners=self.nlb.listeners,
        )
        # A plain output read with Fn::GetStackOutput, like every other value the Workloads stack takes from here:
        # an export (Fn::ImportValue) would forbid any change of its value, so replacing the function URL would
        # fail this stack's update (issue 18 item 8). The host is split out here, in the producer: cfn-lint
        # rejects Fn::Split over Fn::GetStackOutput. The Workloads manifests carry the URL's fingerprint
        # (reference_fingerprint.follow), so a replaced URL changes them and they re-read this output.
        host = CfnOutput(
            self,
            EMPLOYEE_URL_HOST_OUTPUT,
            value=self.employees.internal_url_host,
            description="Host of the employee function's IAM-only URL (the in-cluster SigV4 proxy signs for it)",
        )
        host.override_logical_id(EMPLOYEE_URL_HOST_OUTPUT)
        self.employee_function_url_host = Fn.get_stack_output(self.stack_name, EMPLOYEE_URL_HOST_OUTPUT, self.region)
        self.endpoints = ApiEndpoints(
            nlb_private_ips=self.nlb.private_ips,
            nlb_security_group=self.nlb_security_group,
            target_groups=self.nlb.target_groups,
            target_group_arns=self.target_group_arns,
            employees=self.employees,
            employee_function_url_host=self.employee_function_url_host,
        )

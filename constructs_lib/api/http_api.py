"""The public HTTP API: one $default stage, JWT auth from Cognito, JSON access logs, a VPC Link into the VPC.

Routes are added by the stack; this construct decides what every route has in common:
the authorizer on everything except the few public routes named explicitly, and an
unauthenticated CORS preflight route next to every authenticated ``ANY`` route
(otherwise the ``ANY`` route catches the browser's OPTIONS and its authorizer rejects
it for lack of a token).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.sections import ApiConfig
from constructs_lib.api.routes import EMPLOYEE_FUNCTION, PlannedRoute
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import log_removal, retention
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.security_groups import closed_security_group

CORS_METHODS = [
    apigw.CorsHttpMethod.GET,
    apigw.CorsHttpMethod.POST,
    apigw.CorsHttpMethod.PUT,
    apigw.CorsHttpMethod.PATCH,
    apigw.CorsHttpMethod.DELETE,
    apigw.CorsHttpMethod.OPTIONS,
]
CORS_HEADERS = ["Authorization", "Content-Type"]
HEALTH_PATH = "/api/health"

# One JSON object per request: what the on-call needs to follow a request to its backend.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "integrationError": "$context.integration.error",
    "authorizerError": "$context.authorizer.error",
    "caller": "$context.authorizer.claims.sub",
}

# The gateway's own answers: 200 for the health check, 204 for CORS preflights.
GATEWAY_RESPONDER = """
import json


def handler(event, _context):
    if event.get("requestContext", {}).get("http", {}).get("method") == "OPTIONS":
        return {"statusCode": 204}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps({"status": "ok"})}
"""


class ErpHttpApi(Construct):
    """HTTP API + default stage + Cognito JWT authorizer + VPC Link (with its own security group)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: ApiConfig,
        name: str,
        vpc: ec2.IVpc,
        user_pool: cognito.IUserPool,
        user_pool_client: cognito.IUserPoolClient,
        log_retention_days: int,
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        cors = (
            apigw.CorsPreflightOptions(
                allow_origins=config.cors_origins,
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                max_age=Duration.hours(1),
            )
            if config.cors_origins
            else None
        )
        self._cors = cors is not None
        self._preflights: set[str] = set()
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            api_name=f"{name}-http-api",  # a label in the console, not an identifier: two may share it
            description=f"{name} front door",
            cors_preflight=cors,
            create_default_stage=False,
            # api.edge_only: answers only at its own domain, which only the edge uses as its origin.
            disable_execute_api_endpoint=config.edge_only,
        )

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{name}-http-api",
            retention=retention(config.access_log_retention_days),
            removal_policy=log_removal(production),
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=config.throttle_rate, burst_limit=config.throttle_burst),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )

        self.authorizer = authorizers.HttpUserPoolAuthorizer(
            "CognitoJwt", user_pool, user_pool_clients=[user_pool_client]
        )
        self.vpc_link_security_group = closed_security_group(
            self, "VpcLinkSecurityGroup", vpc=vpc, description="HTTP API VPC Link: sends only to the service NLB"
        )
        self.vpc_link = apigw.VpcLink(
            self,
            "VpcLink",
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.vpc_link_security_group],
        )
        self.responder = PythonFunction(
            self,
            "GatewayResponder",
            description=f"{name}: GET /health and CORS preflight answers; touches no data",
            inline_code=GATEWAY_RESPONDER,
            memory_mb=128,
            timeout=Duration.seconds(3),
            log_retention_days=log_retention_days,
            production=production,
        )
        self._responder_integration = integrations.HttpLambdaIntegration("Responder", self.responder.function)

        self.domain_name: apigw.DomainName | None = None
        if config.domain_name and config.certificate_arn:
            self.domain_name = apigw.DomainName(
                self,
                "DomainName",
                domain_name=config.domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn),
            )
            apigw.ApiMapping(self, "DomainMapping", api=self.http_api, domain_name=self.domain_name, stage=self.stage)

    @property
    def url(self) -> str:
        """Where the API itself answers (the stage adds no path segment), without a trailing slash: its own domain
        when execute-api is off, else the execute-api address."""
        if self.domain_name is not None and self.http_api.disable_execute_api_endpoint:
            return f"https://{self.domain_name.name}"
        return f"https://{self.http_api.api_id}.execute-api.{Stack.of(self).region}.{Stack.of(self).url_suffix}"

    def add_health_route(self, path: str = HEALTH_PATH) -> None:
        """GET only, and the one route without the authorizer: the pipeline's smoke test calls it through the edge,
        which passes /api/* to the API (so the path is under /api)."""
        routes = self.http_api.add_routes(
            path=path, methods=[apigw.HttpMethod.GET], integration=self._responder_integration
        )
        for route in routes:
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                "Health check for the smoke test and load balancers: answers 200 and touches no data.",
            )

    def add_route(
        self, path: str, method: str, integration: apigw.HttpRouteIntegration, scopes: Sequence[str] | None = None
    ) -> None:
        """One route behind the authorizer; ``scopes``: the access token must carry one of them (group members)."""
        self.http_api.add_routes(
            path=path,
            methods=[apigw.HttpMethod[method]],
            integration=integration,
            authorizer=self.authorizer,
            authorization_scopes=list(scopes) if scopes else None,
        )
        if not self._cors or path in self._preflights:
            return
        self._preflights.add(path)
        for route in self.http_api.add_routes(
            path=path, methods=[apigw.HttpMethod.OPTIONS], integration=self._responder_integration
        ):
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                "CORS preflight: browsers send OPTIONS without credentials; answered 204, no backend reached.",
            )

    def add_planned_routes(
        self,
        plan: Sequence[PlannedRoute],
        *,
        lambda_integration: apigw.HttpRouteIntegration,
        listeners: Mapping[str, elbv2.INetworkListener],
    ) -> None:
        """The route table (constructs_lib.api.routes): one NLB integration per service and path rewrite."""
        nlb_integrations: dict[tuple[str, str | None], integrations.HttpNlbIntegration] = {}
        for planned in plan:
            if planned.target == EMPLOYEE_FUNCTION:
                integration = lambda_integration
            else:
                key = (planned.target, planned.backend_path)
                if key not in nlb_integrations:
                    nlb_integrations[key] = self.nlb_integration(
                        f"{planned.target}-{len(nlb_integrations)}", listeners[planned.target], planned.backend_path
                    )
                integration = nlb_integrations[key]
            self.add_route(planned.path, planned.method, integration, planned.scopes)

    def nlb_integration(
        self, id: str, listener: elbv2.INetworkListener, backend_path: str | None
    ) -> integrations.HttpNlbIntegration:
        """``backend_path``: overwrite:path value (e.g. ``/approvals/$request.path.proxy``); None keeps the path."""
        mapping = (
            apigw.ParameterMapping().overwrite_path(apigw.MappingValue.custom(backend_path))
            if backend_path is not None
            else None
        )
        return integrations.HttpNlbIntegration(id, listener, vpc_link=self.vpc_link, parameter_mapping=mapping)


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return apigw_v1.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")))

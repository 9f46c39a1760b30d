"""The API front door per environment: NLB and target groups, routes and auth, the employee Lambda."""

from __future__ import annotations

import ipaddress
import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from config.hosting import nlb_private_ips, private_subnet_cidrs
from config.sections import ApiConfig
from constructs_lib.api.http_api import ErpHttpApi
from constructs_lib.api.routes import EMPLOYEE_FUNCTION, route_plan
from constructs_lib.common.python_function import VPC_NETWORK_INTERFACE_ACTIONS
from tests.conftest import properties_of, resources_of

ENVS = ["dev", "prod"]
HEALTH = "GET /api/health"
LAMBDA_PREFIXES = ("/api/employees", "/api/attendance", "/api/quests", "/api/leaves")


def api_template(stack_templates, env) -> dict:
    return stack_templates[f"erp-{env}-api"]


def one(template_json: dict, resource_type: str, **match) -> tuple[str, dict]:
    found = [
        (logical_id, resource)
        for logical_id, resource in resources_of(template_json, resource_type).items()
        if all(resource["Properties"].get(key) == value for key, value in match.items())
    ]
    assert len(found) == 1, f"expected one {resource_type} with {match}, found {len(found)}"
    return found[0]


def routes(template_json: dict) -> dict[str, dict]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources_of(template_json, "AWS::ApiGatewayV2::Route").values()
    }


def integration_of(template_json: dict, route: dict) -> dict:
    target = route["Target"]["Fn::Join"][1]
    assert target[0] == "integrations/"
    return template_json["Resources"][target[1]["Ref"]]["Properties"]


def nlb_properties(template_json: dict) -> dict:
    """The Properties of the API stack's one load balancer (the internal NLB)."""
    return one(template_json, "AWS::ElasticLoadBalancingV2::LoadBalancer")[1]["Properties"]


def employee_function(template_json: dict) -> tuple[str, dict]:
    functions = resources_of(template_json, "AWS::Lambda::Function")
    found = [
        (k, v)
        for k, v in functions.items()
        if "DB_SECRET_ARN" in v["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(found) == 1
    return found[0]


# --- NLB and target groups ----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_internal_nlb_in_private_subnets_with_a_security_group(stack_templates, env):
    props = nlb_properties(api_template(stack_templates, env))
    assert props["Type"] == "network"
    assert props["Scheme"] == "internal"
    assert "Subnets" not in props
    subnets = json.dumps([m["SubnetId"] for m in props["SubnetMappings"]])
    assert "privateSubnet" in subnets and "publicSubnet" not in subnets and "isolatedSubnet" not in subnets
    assert len(props["SecurityGroups"]) == 1
    attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
    assert attributes["load_balancing.cross_zone.enabled"] == "true"


@pytest.mark.parametrize("env", ENVS)
def test_one_ip_target_group_and_one_tcp_listener_per_service(stack_templates, configs, env):
    api = api_template(stack_templates, env)
    services = configs[env].services
    groups = resources_of(api, "AWS::ElasticLoadBalancingV2::TargetGroup")
    listeners = resources_of(api, "AWS::ElasticLoadBalancingV2::Listener")
    assert len(groups) == len(listeners) == len(services)
    by_port = {g["Properties"]["Port"]: (logical_id, g["Properties"]) for logical_id, g in groups.items()}
    for service in services:
        logical_id, group = by_port[service.port]
        assert group["TargetType"] == "ip"
        assert group["Protocol"] == "TCP"
        # The same check as the pod probes: TCP unless config names a path the service really serves.
        if service.health.type == "http":
            assert (group["HealthCheckProtocol"], group["HealthCheckPath"]) == ("HTTP", service.health.path)
        else:
            assert group["HealthCheckProtocol"] == "TCP" and "HealthCheckPath" not in group
        assert group["HealthCheckPort"] == "traffic-port"
        attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
        assert attributes["preserve_client_ip.enabled"] == "false"  # pods see, and admit, the NLB's SG
        (_, listener) = one(api, "AWS::ElasticLoadBalancingV2::Listener", Port=service.port)
        assert listener["Properties"]["Protocol"] == "TCP"
        assert listener["Properties"]["DefaultActions"] == [{"TargetGroupArn": {"Ref": logical_id}, "Type": "forward"}]


@pytest.mark.parametrize("env", ENVS)
def test_nlb_admits_only_the_vpc_link_on_service_ports(stack_templates, configs, env):
    api = api_template(stack_templates, env)
    nlb_sg = nlb_properties(api)["SecurityGroups"][0]
    assert "SecurityGroupIngress" not in api["Resources"][nlb_sg["Fn::GetAtt"][0]]["Properties"]
    (_, link) = one(api, "AWS::ApiGatewayV2::VpcLink")
    link_sg = link["Properties"]["SecurityGroupIds"][0]
    ingress = properties_of(api, "AWS::EC2::SecurityGroupIngress", GroupId=nlb_sg)
    assert sorted(rule["FromPort"] for rule in ingress) == sorted(s.port for s in configs[env].services)
    for rule in ingress:
        assert rule["SourceSecurityGroupId"] == link_sg
        assert rule["FromPort"] == rule["ToPort"] and rule["IpProtocol"] == "tcp"
    # ...and the VPC Link may send to nothing but the NLB.
    assert "SecurityGroupEgress" not in api["Resources"][link_sg["Fn::GetAtt"][0]]["Properties"]
    egress = properties_of(api, "AWS::EC2::SecurityGroupEgress", GroupId=link_sg)
    assert len(egress) == len(configs[env].services)
    assert all(rule["DestinationSecurityGroupId"] == nlb_sg for rule in egress)


@pytest.mark.parametrize("env", ENVS)
def test_nlb_has_fixed_private_ips_and_sends_only_to_the_private_subnets(stack_templates, configs, env):
    """Issue 12: the pods' NetworkPolicies admit these /32s; they must be the NLB's real addresses."""
    api = api_template(stack_templates, env)
    network = configs[env].network
    nlb = nlb_properties(api)
    mappings = nlb["SubnetMappings"]
    assert [m["PrivateIPv4Address"] for m in mappings] == nlb_private_ips(network)
    # Each address lies in the subnet it is mapped to: the private subnets' CIDRs as the network stack creates them.
    vpc = stack_templates[f"erp-{env}-network"]["Resources"]
    private_cidrs = sorted(
        r["Properties"]["CidrBlock"] for k, r in vpc.items() if r["Type"] == "AWS::EC2::Subnet" and "privateSubnet" in k
    )
    assert private_cidrs == sorted(private_subnet_cidrs(network))
    for mapping, block in zip(mappings, private_subnet_cidrs(network), strict=True):
        assert ipaddress.ip_address(mapping["PrivateIPv4Address"]) in ipaddress.ip_network(block)
        assert f"privateSubnet{private_subnet_cidrs(network).index(block) + 1}" in json.dumps(mapping["SubnetId"])
    nlb_sg = nlb["SecurityGroups"][0]["Fn::GetAtt"][0]
    egress = api["Resources"][nlb_sg]["Properties"]["SecurityGroupEgress"]
    assert {e["CidrIp"] for e in egress} == set(private_subnet_cidrs(network))
    assert {e["FromPort"] for e in egress} == {s.port for s in configs[env].services}


# --- routes, auth, integrations -----------------------------------------------------------


def expected_route_keys(config) -> set[str]:
    keys = {HEALTH}
    for planned in route_plan(config):
        keys.add(planned.key)
        if config.api.cors_origins:
            keys.add(f"OPTIONS {planned.path}")
    return keys


@pytest.mark.parametrize("env", ENVS)
def test_routes_are_exactly_the_services_employees_health_and_preflights(stack_templates, configs, env):
    assert set(routes(api_template(stack_templates, env))) == expected_route_keys(configs[env])
    # The edge's pages call the API on their own origin; preflights only for dev's extra origin (localhost).
    assert bool(configs[env].api.cors_origins) == (not configs[env].production)


@pytest.mark.parametrize("env", ENVS)
def test_jwt_authorizer_on_every_route_but_health_and_preflight(stack_templates, env):
    api = api_template(stack_templates, env)
    (authorizer_id, authorizer) = one(api, "AWS::ApiGatewayV2::Authorizer")
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    issuer = json.dumps(props["JwtConfiguration"]["Issuer"])
    assert "https://cognito-idp.ap-northeast-2." in issuer and f"erp-{env}-auth" in issuer
    audience = props["JwtConfiguration"]["Audience"]
    assert len(audience) == 1 and "SpaClient" in json.dumps(audience) and f"erp-{env}-auth" in json.dumps(audience)
    for key, route in routes(api).items():
        if key == HEALTH or key.startswith("OPTIONS "):
            assert route["AuthorizationType"] == "NONE", key
            assert "AuthorizerId" not in route, key
        else:
            assert route["AuthorizationType"] == "JWT", key
            assert route["AuthorizerId"] == {"Ref": authorizer_id}, key


# Who may call what, typed from the ERP contract (../shared/erp-services.md; config/sections.py ApiConfig and the
# employee Lambda's own checks), not read from route_plan: route key -> the groups whose scope the token needs.
# Every other authenticated route asks for the verified-identity scope only.
RESTRICTED_ROUTES = {
    "DELETE /api/approvals": ("admin",),  # deletes every approval in the real service
    "PUT /api/approvals/{id}/approve": ("admin", "manager"),
    "PUT /api/approvals/{id}/reject": ("admin", "manager"),
    "ANY /api/process/{proxy+}": ("admin", "manager"),  # driving the processing queue decides approvals
    "ANY /api/processing/{proxy+}": ("admin", "manager"),  # the seed's alias
    "DELETE /api/employees/{proxy+}": ("admin", "manager"),
    "PUT /api/employees/{id}/leave-balance": ("admin", "manager"),
    "POST /api/employees/{id}/deduct-leave": ("admin",),  # the in-cluster caller's, or an admin's
}


@pytest.mark.parametrize("env", ENVS)
def test_every_route_asks_for_exactly_the_scopes_of_who_may_call_it(stack_templates, configs, env):
    """Each restricted route (config's api.restricted_routes and the services' group routes) against the table
    above, and every other route against the verified scope: dropping one group's scope, or a whole restricted
    route (its requests then fall to ANY .../{proxy+} and the verified scope), fails here."""
    config = configs[env]
    project = config.project
    in_template = routes(api_template(stack_templates, env))
    for key, groups in RESTRICTED_ROUTES.items():
        assert key in in_template, f"{key} is not a route: its requests reach a route any verified user may call"
        assert sorted(in_template[key].get("AuthorizationScopes", [])) == sorted(f"{project}/{g}" for g in groups), key
    for key, route in in_template.items():
        if key == HEALTH or key.startswith("OPTIONS ") or key in RESTRICTED_ROUTES:
            continue
        assert route["AuthorizationScopes"] == [f"{project}/verified"], key
    # A route restricted in config but missing from the table must be added to it, with who may call it.
    configured = {f"{r.method} {r.path}": tuple(r.groups) for r in config.api.restricted_routes} | {
        f"ANY {r.path}/{{proxy+}}": tuple(r.groups) for r in config.all_routes if r.groups
    }
    assert {k: sorted(g) for k, g in configured.items()} == {k: sorted(g) for k, g in RESTRICTED_ROUTES.items()}


@pytest.mark.parametrize("env", ENVS)
def test_service_routes_go_through_the_vpc_link_to_their_own_listener(stack_templates, configs, env):
    api = api_template(stack_templates, env)
    all_routes = routes(api)
    (link_id, _) = one(api, "AWS::ApiGatewayV2::VpcLink")
    ports = {s.name: s.port for s in configs[env].services}
    for planned in route_plan(configs[env]):
        if planned.target == EMPLOYEE_FUNCTION:
            continue
        (listener_id, _) = one(api, "AWS::ElasticLoadBalancingV2::Listener", Port=ports[planned.target])
        integration = integration_of(api, all_routes[planned.key])
        assert integration["IntegrationType"] == "HTTP_PROXY"
        assert integration["ConnectionType"] == "VPC_LINK"
        assert integration["ConnectionId"] == {"Ref": link_id}
        assert integration["IntegrationUri"] == {"Ref": listener_id}
        # The services have no /api prefix: the gateway rewrites the path (tests/contract checks each value).
        assert integration["RequestParameters"] == {"overwrite:path": planned.backend_path}


@pytest.mark.parametrize("env", ENVS)
def test_employee_routes_invoke_the_employee_lambda(stack_templates, configs, env):
    api = api_template(stack_templates, env)
    function_id, _ = employee_function(api)
    all_routes = routes(api)
    lambda_routes = [p for p in route_plan(configs[env]) if p.target == EMPLOYEE_FUNCTION]
    assert {p.path for p in lambda_routes} >= {f"{r}{tail}" for r in LAMBDA_PREFIXES for tail in ("", "/{proxy+}")}
    for planned in lambda_routes:
        integration = integration_of(api, all_routes[planned.key])
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["PayloadFormatVersion"] == "2.0"  # what the handler's resolver expects
        assert integration["IntegrationUri"] == {"Fn::GetAtt": [function_id, "Arn"]}
        assert "RequestParameters" not in integration  # the Lambda keeps /api
    permissions = [
        p["Properties"]
        for p in resources_of(api, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    # One invoke permission per route (CDK scopes each to its route's source ARN).
    assert len(permissions) == len(lambda_routes)
    assert all(p["Principal"] == "apigateway.amazonaws.com" for p in permissions)


@pytest.mark.parametrize("env", ENVS)
def test_health_and_preflights_are_served_by_the_inline_responder(stack_templates, env):
    api = api_template(stack_templates, env)
    all_routes = routes(api)
    responder_targets = {
        json.dumps(all_routes[k]["Target"]) for k in all_routes if k == HEALTH or k.startswith("OPTIONS ")
    }
    assert len(responder_targets) == 1
    integration = integration_of(api, all_routes[HEALTH])
    function_id = integration["IntegrationUri"]["Fn::GetAtt"][0]
    function = api["Resources"][function_id]["Properties"]
    assert "VpcConfig" not in function
    namespace: dict = {}
    exec(function["Code"]["ZipFile"], namespace)  # the inline code, run as Lambda would
    health = namespace["handler"]({"requestContext": {"http": {"method": "GET"}}}, None)
    assert health["statusCode"] == 200 and json.loads(health["body"]) == {"status": "ok"}
    assert namespace["handler"]({"requestContext": {"http": {"method": "OPTIONS"}}}, None) == {"statusCode": 204}


@pytest.mark.parametrize("env", ENVS)
def test_stage_throttling_cors_and_json_access_logs(stack_templates, configs, env):
    api = api_template(stack_templates, env)
    config = configs[env].api
    (_, stage) = one(api, "AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.throttle_rate
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.throttle_burst
    log_format = json.loads(props["AccessLogSettings"]["Format"])
    assert log_format["requestId"] == "$context.requestId"
    assert {"status", "routeKey", "integrationError", "authorizerError", "caller"} <= set(log_format)
    log_group_id = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    log_group = api["Resources"][log_group_id]
    assert log_group["Properties"]["LogGroupName"] == f"/aws/apigateway/erp-{env}-http-api"
    assert log_group["Properties"]["RetentionInDays"] == config.access_log_retention_days
    assert log_group["DeletionPolicy"] == ("RetainExceptOnCreate" if configs[env].production else "Delete")
    (_, http_api) = one(api, "AWS::ApiGatewayV2::Api")
    assert http_api["Properties"]["Name"] == f"erp-{env}-http-api"
    if not config.cors_origins:
        assert "CorsConfiguration" not in http_api["Properties"]
        return
    cors = http_api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == config.cors_origins
    assert cors["AllowHeaders"] == ["Authorization", "Content-Type"]
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= set(cors["AllowMethods"])


@pytest.mark.parametrize("env", ENVS)
def test_api_url_output_is_where_the_api_itself_answers(stack_templates, configs, env):
    """execute-api without a domain; with api.edge_only the API's own domain, and execute-api is off (prod)."""
    api = api_template(stack_templates, env)
    config = configs[env].api
    (api_id, http_api) = one(api, "AWS::ApiGatewayV2::Api")
    if not config.edge_only:
        value = api["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
        assert value[0] == "https://" and value[1] == {"Ref": api_id}
        assert value[2] == f".execute-api.{configs[env].region}." and value[3] == {"Ref": "AWS::URLSuffix"}
        assert http_api["Properties"].get("DisableExecuteApiEndpoint") in (None, False)
        assert resources_of(api, "AWS::ApiGatewayV2::DomainName") == {}
        return
    assert http_api["Properties"]["DisableExecuteApiEndpoint"] is True
    ((domain_id, domain),) = resources_of(api, "AWS::ApiGatewayV2::DomainName").items()
    assert api["Outputs"]["ApiUrl"]["Value"] == {"Fn::Join": ["", ["https://", {"Ref": domain_id}]]}
    assert domain["Properties"]["DomainName"] == config.domain_name
    assert domain["Properties"]["DomainNameConfigurations"][0]["CertificateArn"] == config.certificate_arn
    ((_, mapping),) = resources_of(api, "AWS::ApiGatewayV2::ApiMapping").items()
    assert mapping["Properties"]["ApiId"] == {"Ref": api_id}


# --- employee Lambda ----------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_employee_lambda_shape(stack_templates, configs, env):
    config = configs[env]
    api = api_template(stack_templates, env)
    _, function = employee_function(api)
    props = function["Properties"]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "app.handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["MemorySize"] == config.employee_function.memory_mb
    assert props["Timeout"] == config.employee_function.timeout_seconds
    assert props.get("ReservedConcurrentExecutions") == config.employee_function.reserved_concurrency
    subnets = json.dumps(props["VpcConfig"]["SubnetIds"])
    assert "privateSubnet" in subnets and "isolatedSubnet" not in subnets
    assert len(props["VpcConfig"]["SecurityGroupIds"]) == 1
    variables = props["Environment"]["Variables"]
    # Its own DML-only user's secret (erp/{env}/mysql/employee_app), never the master secret.
    assert f"erp-{env}-data" in json.dumps(variables["DB_SECRET_ARN"])
    assert "DatabaseUsersSecretemployeeapp" in json.dumps(variables["DB_SECRET_ARN"])
    assert "DatabaseInstanceSecret" not in json.dumps(variables["DB_SECRET_ARN"])
    assert variables["DB_NAME"] == config.database.database_name
    assert variables["DB_TLS"] == "true"
    assert "DB_CA_BUNDLE" not in variables  # the bundled RDS CA file, chain and host name verified
    assert variables["AUTH_ADMIN_GROUPS"] == ",".join(config.auth.admin_groups)
    assert variables["AUTH_MANAGER_GROUPS"] == ",".join(config.auth.manager_groups)
    assert variables["AUTH_SCOPE_PREFIX"] == config.project
    assert int(variables["MAX_BODY_BYTES"]) > 0
    assert variables["POWERTOOLS_SERVICE_NAME"] == "employee-service"
    log_group = api["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == config.observability.log_retention_days


@pytest.mark.parametrize("env", ENVS)
def test_employee_lambda_reads_only_its_secret_and_writes_only_its_log_group(stack_templates, env):
    api = api_template(stack_templates, env)
    _, function = employee_function(api)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in api["Resources"][role_id]["Properties"]
    policies = [
        p["Properties"]
        for p in resources_of(api, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    by_action = {a: s for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert f"erp-{env}-data" in json.dumps(by_action["secretsmanager:GetSecretValue"]["Resource"])
    log_group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert by_action["logs:PutLogEvents"]["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    wildcard = {a for a, s in by_action.items() if s["Resource"] == "*"}
    assert wildcard <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords", *VPC_NETWORK_INTERFACE_ACTIONS}


@pytest.mark.parametrize("env", ENVS)
def test_database_admits_the_lambda_through_a_rule_in_the_api_stack(stack_templates, env):
    api = api_template(stack_templates, env)
    _, function = employee_function(api)
    lambda_sg = function["Properties"]["VpcConfig"]["SecurityGroupIds"][0]
    db_rules = properties_of(api, "AWS::EC2::SecurityGroupIngress", FromPort=3306)
    assert len(db_rules) == 1
    assert db_rules[0]["SourceSecurityGroupId"] == lambda_sg
    assert "DatabaseSecurityGroup" in json.dumps(db_rules[0]["GroupId"]) and f"erp-{env}-data" in json.dumps(
        db_rules[0]["GroupId"]
    )
    # Lambda SG: HTTPS out and MySQL to the database, nothing else.
    lambda_sg_props = api["Resources"][lambda_sg["Fn::GetAtt"][0]]["Properties"]
    assert [(e["FromPort"], e["CidrIp"]) for e in lambda_sg_props["SecurityGroupEgress"]] == [(443, "0.0.0.0/0")]


@pytest.mark.parametrize("env", ENVS)
def test_no_reference_cycle_data_and_auth_never_read_the_api_stack(stack_templates, env):
    for stack in ("network", "data", "auth"):
        assert f"erp-{env}-api" not in json.dumps(stack_templates[f"erp-{env}-{stack}"]), stack


@pytest.mark.parametrize("env", ENVS)
def test_every_log_group_has_retention_and_no_log_retention_custom_resource(stack_templates, env):
    api = api_template(stack_templates, env)
    groups = resources_of(api, "AWS::Logs::LogGroup")
    assert len(groups) == 4  # access logs, employee Lambda, responder Lambda, CDK's Trigger provider
    assert all("RetentionInDays" in g["Properties"] for g in groups.values())
    assert resources_of(api, "Custom::LogRetention") == {}
    named = [g["Properties"].get("LogGroupName") for g in groups.values()]
    for logical_id, function in resources_of(api, "AWS::Lambda::Function").items():
        if "LoggingConfig" in function["Properties"]:
            assert function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups
        else:  # CDK's own provider function: its default group is created first, with retention
            assert {"Fn::Join": ["", ["/aws/lambda/", {"Ref": logical_id}]]} in named, logical_id


# --- the bundle that is deployed ----------------------------------------------------------


def asset_dir(cdk_out, s3_key: str):
    found = list(cdk_out.rglob(f"asset.{s3_key.removesuffix('.zip')}"))
    assert len(found) == 1, s3_key
    return found[0]


def test_employee_bundle_holds_the_handler_and_its_arm64_dependencies(stack_templates, cdk_out):
    _, function = employee_function(api_template(stack_templates, "dev"))
    bundle = asset_dir(cdk_out, function["Properties"]["Code"]["S3Key"])
    names = {p.name for p in bundle.iterdir()}
    assert {"app.py", "db.py", "repository.py", "validation.py", "authz.py", "rds-ca-bundle.pem"} <= names
    assert {"pymysql", "aws_lambda_powertools", "aws_xray_sdk"} <= names
    assert "requirements.txt" not in names and "__pycache__" not in names
    # Compiled wheels are the Lambda's (cp313, aarch64), not the build machine's.
    compiled = [p.name for p in bundle.rglob("*.so")]
    assert compiled and all("aarch64" in name for name in compiled), compiled
    assert all("cpython-313" in name or "abi3" in name for name in compiled), compiled


def test_same_code_same_asset_in_every_environment(stack_templates):
    keys = {employee_function(api_template(stack_templates, env))[1]["Properties"]["Code"]["S3Key"] for env in ENVS}
    assert len(keys) == 1


# --- optional custom domain (no environment sets one yet) ---------------------------------


def test_custom_domain_and_mapping_only_when_configured():
    """The construct alone, in a throwaway stack: the app itself is synthesized once, by conftest."""
    app = cdk.App()
    stack = cdk.Stack(app, "DomainCheck", env=cdk.Environment(account="111111111111", region="ap-northeast-2"))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    pool = cognito.UserPool(stack, "Pool")
    certificate = "arn:aws:acm:ap-northeast-2:111111111111:certificate/0f0e0d0c-0b0a-0908-0706-050403020100"
    ErpHttpApi(
        stack,
        "Api",
        config=ApiConfig(domain_name="api.erp.example.com", certificate_arn=certificate),
        name="erp-test",
        vpc=vpc,
        user_pool=pool,
        user_pool_client=pool.add_client("Client"),
        log_retention_days=14,
        production=False,
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::ApiGatewayV2::DomainName",
        {
            "DomainName": "api.erp.example.com",
            "DomainNameConfigurations": [{"CertificateArn": certificate, "EndpointType": "REGIONAL"}],
        },
    )
    template.resource_count_is("AWS::ApiGatewayV2::ApiMapping", 1)
    # No CORS origins configured: no CORS configuration and no preflight routes either.
    (http_api,) = template.find_resources("AWS::ApiGatewayV2::Api").values()
    assert "CorsConfiguration" not in http_api["Properties"]
    template.resource_count_is("AWS::ApiGatewayV2::Route", 0)


@pytest.mark.parametrize("env", ENVS)
def test_every_change_to_the_employee_function_proves_it_reaches_the_database(stack_templates, env):
    """Issue 13: a Trigger invokes the deployed version synchronously after its security-group rule to MySQL
    exists; the handler answers an empty event with a query as its own user (tests/handlers), so a function
    that cannot reach the database fails the deploy."""
    api = api_template(stack_templates, env)
    function_id, _ = employee_function(api)
    versions = [
        k
        for k, v in resources_of(api, "AWS::Lambda::Version").items()
        if v["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    triggers = [
        (k, t)
        for k, t in resources_of(api, "Custom::Trigger").items()
        if t["Properties"]["HandlerArn"] in [{"Ref": v} for v in versions]
    ]
    assert len(triggers) == 1
    _, trigger = triggers[0]
    props = trigger["Properties"]
    assert props["InvocationType"] == "RequestResponse" and props["ExecuteOnHandlerChange"] is True
    rules = [
        k
        for k, r in resources_of(api, "AWS::EC2::SecurityGroupIngress").items()
        if r["Properties"].get("FromPort") == 3306
    ]
    assert rules and set(rules) <= set(trigger.get("DependsOn", []))

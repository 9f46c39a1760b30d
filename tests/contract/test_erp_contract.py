"""The contract with the real ERP system (../shared/erp-services.md): section 6, one test per row, and every
frontend call of section 1, checked against what `make synth` produces (templates) and the charts.

The gateway is simulated from the synthesized HTTP API by the journeys' model (tests/support/http_api.py):
route selection as API Gateway does it (most specific path first, a method route before ANY), then the
integration the route targets and the path its parameter mapping sends. A test here fails as soon as a row stops being met.
"""

from __future__ import annotations

import json
import re

import pytest

from config import load_environment
from k8s_charts import names
from tests.charts.conftest import build
from tests.conftest import resources_of
from tests.support.charts import find, selector_matches
from tests.support.cloudformation import Stacks
from tests.support.cognito import Clock, TokenIssuer
from tests.support.http_api import HttpApi, HttpRequest, Route

ENVS = ["dev", "prod"]
LAMBDA = "employee Lambda"
PORTS = {8082: "approval-request-service", 8083: "approval-processing-service", 8084: "notification-service"}

# Section 1: every call the frontend makes -> (backend, path that backend must receive). The employee service's
# context path is /api (kept); the three Spring services have none (the old gateway stripped /api).
FRONTEND_CALLS = [
    ("GET", "/api/employees", LAMBDA, "/api/employees"),
    ("POST", "/api/employees", LAMBDA, "/api/employees"),
    ("PUT", "/api/employees/17", LAMBDA, "/api/employees/17"),
    ("GET", "/api/employees/17", LAMBDA, "/api/employees/17"),
    ("GET", "/api/attendance/progress/17", LAMBDA, "/api/attendance/progress/17"),
    ("POST", "/api/attendance/check-in/17", LAMBDA, "/api/attendance/check-in/17"),
    ("GET", "/api/quests", LAMBDA, "/api/quests"),
    ("POST", "/api/quests", LAMBDA, "/api/quests"),
    ("POST", "/api/quests/5/accept", LAMBDA, "/api/quests/5/accept"),
    ("POST", "/api/quests/5/complete", LAMBDA, "/api/quests/5/complete"),
    ("POST", "/api/quests/5/claim", LAMBDA, "/api/quests/5/claim"),
    ("PUT", "/api/quests/5/approve", LAMBDA, "/api/quests/5/approve"),
    ("PUT", "/api/quests/5/reject", LAMBDA, "/api/quests/5/reject"),
    ("DELETE", "/api/quests/5", LAMBDA, "/api/quests/5"),
    ("POST", "/api/approvals", "approval-request-service", "/approvals"),
    ("GET", "/api/approvals", "approval-request-service", "/approvals"),
    ("GET", "/api/approvals/pending/17", "approval-request-service", "/approvals/pending/17"),
    ("PUT", "/api/approvals/42/approve", "approval-request-service", "/approvals/42/approve"),
    ("PUT", "/api/approvals/42/reject", "approval-request-service", "/approvals/42/reject"),
]
# Section 6 "Routes": the rest of what the old gateway routed (the UI itself never calls these).
OTHER_ROUTES = [
    ("GET", "/api/process/17", "approval-processing-service", "/process/17"),
    ("POST", "/api/process/17/42", "approval-processing-service", "/process/17/42"),
    ("POST", "/api/processing/17/42", "approval-processing-service", "/process/17/42"),  # the seed's alias
    ("GET", "/api/notifications/health", "notification-service", "/notifications/health"),
    ("GET", "/api/leaves/balance/17", LAMBDA, "/api/leaves/balance/17"),
    ("POST", "/api/leaves", LAMBDA, "/api/leaves"),
    ("DELETE", "/api/approvals", "approval-request-service", "/approvals"),
]


# --- the gateway: the journeys' model of HTTP API routing over the synthesized template ----------------


_APIS: dict[str, HttpApi] = {}


def _http_api(stack_templates: dict, env: str) -> HttpApi:
    """Route selection and integrations of erp-<env>-api (tests/support/http_api.py cites the AWS rules)."""
    if env not in _APIS:
        config = load_environment(env)
        stacks = Stacks(stack_templates, region=config.region, account=config.account)
        clock = Clock()
        ports = {s.port: s.name for s in config.services}
        stack = f"{config.resource_prefix}-api"
        _APIS[env] = HttpApi(stacks, stack, service_ports=ports, issuer=TokenIssuer(clock), clock=clock)
    return _APIS[env]


def gateway(stack_templates: dict, env: str, method: str, path: str) -> tuple[str, str, Route]:
    """(backend, path it receives, route) for a request, read from the synthesized Api stack."""
    api = _http_api(stack_templates, env)
    selected = api.select(method, path)
    assert selected is not None, f"no route for {method} {path}: the gateway answers 404"
    route, variables = selected
    integration = api.integrations[route.integration]
    if integration.kind == "lambda":
        function = api.stacks.resource(api.stack, integration.target)["Properties"]
        assert "DB_SECRET_ARN" in function["Environment"]["Variables"]
        return LAMBDA, path, route
    return integration.target, api.forwarded(HttpRequest(method, path), integration, variables).path, route


def api_of(stack_templates, env: str) -> dict:
    return stack_templates[f"erp-{env}-api"]


def deployment_env(env: str, service: str) -> dict[str, dict]:
    (deployment,) = find(build(env).chart("services"), "Deployment", service)
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def policies(env: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p["spec"] for p in find(build(env).chart("namespace"), "NetworkPolicy")}


def egress_ports(env: str, service: str) -> set[tuple[int, str]]:
    spec = policies(env).get(f"allow-{service}-egress", {"egress": []})
    return {(p["port"], p.get("protocol", "TCP")) for r in spec["egress"] for p in r.get("ports", [])}


# --- section 1: the frontend's calls -------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(("method", "path", "backend", "received"), FRONTEND_CALLS + OTHER_ROUTES)
def test_call_reaches_its_backend_on_the_path_it_serves(stack_templates, env, method, path, backend, received):
    got_backend, got_path, route = gateway(stack_templates, env, method, path)
    assert (got_backend, got_path) == (backend, received), route.key
    # JWT on every call (the deliberate difference from the old gateway; see the CORS / auth row).
    assert route.authorization == "JWT"


# --- section 6, one test per row -----------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_row_routes(stack_templates, env):
    """/api/{employees,attendance,quests,leaves}... keep /api; /api/approvals, /api/process, /api/notifications
    reach 8082/8083/8084 with /api stripped, bare paths and sub-paths alike."""
    for prefix in ("employees", "attendance", "quests", "leaves"):
        for path in (f"/api/{prefix}", f"/api/{prefix}/1/x"):
            assert gateway(stack_templates, env, "GET", path)[:2] == (LAMBDA, path)
    assert gateway(stack_templates, env, "GET", "/api/approvals")[:2] == ("approval-request-service", "/approvals")
    assert gateway(stack_templates, env, "GET", "/api/approvals/a/b")[:2] == (
        "approval-request-service",
        "/approvals/a/b",
    )
    assert gateway(stack_templates, env, "GET", "/api/process/a/b")[:2] == (
        "approval-processing-service",
        "/process/a/b",
    )
    assert gateway(stack_templates, env, "GET", "/api/notifications")[:2] == ("notification-service", "/notifications")
    # Deliberate difference (issue 17): sending broadcasts to everyone; only approval-request-service sends,
    # from inside the cluster. From outside no route matches, so the gateway answers 404.
    for path in ("/api/notifications/send", "/api/notifications/send/7"):
        with pytest.raises(AssertionError, match="no route"):
            gateway(stack_templates, env, "POST", path)


@pytest.mark.parametrize("env", ENVS)
def test_row_cors_and_auth(stack_templates, env):
    """Deliberate difference: a Cognito access token on every route but /api/health and preflight (README: Hosting
    a service here, "app-side changes") carrying the verified-identity scope or a group scope; deciding an
    approval and driving processing need the manager or admin scope, DELETE /api/approvals the admin scope.
    CORS: the frontend is served on the edge's origin and calls /api/* there (no CORS at all, tests/journeys);
    an extra origin (dev: a local frontend) gets the five methods and the headers it sends."""
    api = api_of(stack_templates, env)
    config = load_environment(env)
    (http_api,) = resources_of(api, "AWS::ApiGatewayV2::Api").values()
    if config.api.cors_origins:
        cors = http_api["Properties"]["CorsConfiguration"]
        assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= set(cors["AllowMethods"])
        assert {"Content-Type", "Authorization"} <= set(cors["AllowHeaders"])
        assert cors["AllowOrigins"] == config.api.cors_origins
    else:
        assert "CorsConfiguration" not in http_api["Properties"]
    for route in resources_of(api, "AWS::ApiGatewayV2::Route").values():
        key = route["Properties"]["RouteKey"]
        public = key == "GET /api/health" or key.startswith("OPTIONS ")
        assert route["Properties"]["AuthorizationType"] == ("NONE" if public else "JWT"), key
        if not public:
            assert route["Properties"]["AuthorizationScopes"], f"{key}: a token without a scope would pass"
    _, _, delete_all = gateway(stack_templates, env, "DELETE", "/api/approvals")
    assert delete_all.key == "DELETE /api/approvals"
    assert list(delete_all.scopes) == [f"{config.project}/{g}" for g in config.auth.admin_groups[:1]]
    deciders = {f"{config.project}/{g}" for g in (*config.auth.admin_groups[:1], *config.auth.manager_groups[:1])}
    for method, path in (("PUT", "/api/approvals/42/approve"), ("PUT", "/api/approvals/42/reject")) + tuple(
        (m, "/api/process/17/42") for m in ("GET", "POST", "PUT", "DELETE")
    ):
        assert set(gateway(stack_templates, env, method, path)[2].scopes) == deciders, f"{method} {path}"
    for method, path in (("GET", "/api/approvals"), ("POST", "/api/approvals"), ("GET", "/api/employees")):
        assert gateway(stack_templates, env, method, path)[2].scopes == (f"{config.project}/verified",)


@pytest.mark.parametrize("env", ENVS)
def test_row_network_paths(env):
    """EMPLOYEE_SERVICE_URL ends in /api and names a Service on 8081 with pods behind it (the SigV4 proxy);
    NOTIFICATION_SERVICE_URL names notification-service:8084; the policies let the calls through."""
    variables = deployment_env(env, "approval-request-service")
    ns = f"erp-{env}"
    employee_url = variables["EMPLOYEE_SERVICE_URL"]["value"]
    assert employee_url == f"http://employee-service.{ns}.svc.cluster.local:8081/api"
    assert variables["NOTIFICATION_SERVICE_URL"]["value"] == f"http://notification-service.{ns}.svc.cluster.local:8084"
    services = build(env).chart("services")
    for name, port in (("employee-service", 8081), ("notification-service", 8084)):
        (svc,) = find(services, "Service", name)
        assert [p["port"] for p in svc["spec"]["ports"]] == [port]
        (deployment,) = find(services, "Deployment", name)
        assert selector_matches(
            {"matchLabels": svc["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"]
        )
    assert {(8081, "TCP"), (8084, "TCP")} <= egress_ports(env, "approval-request-service")
    (proxy,) = find(services, "Deployment", "employee-service")
    args = proxy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--name") + 1] == "lambda" and args[args.index("--port") + 1] == ":8081"


@pytest.mark.parametrize("env", ENVS)
def test_row_mysql_for_the_employee_service(stack_templates, env):
    """MySQL 8 database `erp` for the employee service (now the Lambda) with its credentials from Secrets Manager."""
    data = stack_templates[f"erp-{env}-data"]
    (db,) = resources_of(data, "AWS::RDS::DBInstance").values()
    assert db["Properties"]["Engine"] == "mysql" and db["Properties"]["EngineVersion"].startswith("8.")
    assert db["Properties"]["DBName"] == "erp"
    api = api_of(stack_templates, env)
    (function,) = [
        f
        for f in resources_of(api, "AWS::Lambda::Function").values()
        if "DB_SECRET_ARN" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert function["Properties"]["Environment"]["Variables"]["DB_NAME"] == "erp"
    # No EKS service declares mysql, so none gets datasource variables.
    for service in load_environment(env).services:
        assert not [v for v in deployment_env(env, service.name) if v.startswith("SPRING_DATASOURCE")]


@pytest.mark.parametrize("env", ENVS)
def test_row_mongodb_and_its_secret(stack_templates, env):
    """MONGODB_URI from erp/{env}/mongodb (Secrets Manager, value not in git) for approval-request-service only;
    egress on 27017 for it only."""
    variables = deployment_env(env, "approval-request-service")
    ref = variables["MONGODB_URI"]["valueFrom"]["secretKeyRef"]
    (external,) = find(build(env).chart("secrets"), "ExternalSecret", ref["name"])
    (item,) = [d for d in external["spec"]["data"] if d["secretKey"] == ref["key"]]
    assert item["remoteRef"]["property"] == "uri"
    secrets = resources_of(stack_templates[f"erp-{env}-data"], "AWS::SecretsManager::Secret")
    assert f"erp/{env}/mongodb" in {s["Properties"]["Name"] for s in secrets.values()}
    for other in ("approval-processing-service", "notification-service"):
        assert "MONGODB_URI" not in deployment_env(env, other)
        assert (27017, "TCP") not in egress_ports(env, other)
    assert (27017, "TCP") in egress_ports(env, "approval-request-service")


@pytest.mark.parametrize("env", ENVS)
def test_row_kafka(env):
    """Plaintext Kafka, SPRING_KAFKA_BOOTSTRAP_SERVERS and the topic names for both Kafka users; both topics
    pre-created (auto-creation is off)."""
    bootstrap = f"kafka.erp-{env}.svc.cluster.local:9092"
    for service in ("approval-request-service", "approval-processing-service"):
        variables = deployment_env(env, service)
        assert variables["SPRING_KAFKA_BOOTSTRAP_SERVERS"]["value"] == bootstrap
        assert variables["KAFKA_TOPICS_APPROVAL_REQUESTS"]["value"] == "approval-requests"
        assert variables["KAFKA_TOPICS_APPROVAL_RESULTS"]["value"] == "approval-results"
        assert (9092, "TCP") in egress_ports(env, service)
    (job,) = find(build(env).chart("kafka"), "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    for topic in ("approval-requests", "approval-results"):
        assert f"--create --if-not-exists --topic {topic} " in script
    (broker,) = find(build(env).chart("kafka"), "StatefulSet")
    settings = {e["name"]: e.get("value") for e in broker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "PLAINTEXT:PLAINTEXT" in settings["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]


def test_row_redis(stack_templates):
    """REDIS_HOST/REDIS_PORT for notification-service. Dev: no password, no TLS (the service runs unmodified).
    Prod: deliberately TLS + AUTH (config refuses the plaintext switch there; README lists the app change)."""
    for env in ENVS:
        variables = deployment_env(env, "notification-service")
        assert {"REDIS_HOST", "REDIS_PORT"} <= set(variables)
        assert (6379, "TCP") in egress_ports(env, "notification-service")
        (cache,) = resources_of(stack_templates[f"erp-{env}-data"], "AWS::ElastiCache::ReplicationGroup").values()
        plaintext = load_environment(env).cache.allow_plaintext_clients
        assert cache["Properties"]["TransitEncryptionEnabled"] is (not plaintext)
        assert ("AuthToken" in cache["Properties"]) is (not plaintext)
    assert load_environment("dev").cache.allow_plaintext_clients
    assert not load_environment("prod").cache.allow_plaintext_clients


@pytest.mark.parametrize("env", ENVS)
def test_row_runtime(stack_templates, env):
    """Ports 8082-8084, linux/amd64 images on x86 nodes, uid 1000, and a health check the service really has
    (TCP, or GET /notifications/health) shared by the pod probes and the NLB target group."""
    api = api_of(stack_templates, env)
    groups = {
        g["Properties"]["Port"]: g["Properties"]
        for g in resources_of(api, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    }
    for port, name in PORTS.items():
        (deployment,) = find(build(env).chart("services"), "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert pod["nodeSelector"]["kubernetes.io/arch"] == "amd64"
        assert pod["securityContext"]["runAsUser"] == 1000
        group = groups[port]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if name == "notification-service":
                assert container[probe]["httpGet"]["path"] == "/notifications/health"
                assert (group["HealthCheckProtocol"], group["HealthCheckPath"]) == ("HTTP", "/notifications/health")
            else:
                assert "tcpSocket" in container[probe] and group["HealthCheckProtocol"] == "TCP"
            assert "actuator" not in json.dumps(container[probe])
    cluster = stack_templates[f"erp-{env}-cluster"]
    amis = {n["Properties"]["AmiType"] for n in resources_of(cluster, "AWS::EKS::Nodegroup").values()}
    assert "AL2023_x86_64_STANDARD" in amis


@pytest.mark.parametrize("env", ENVS)
def test_row_one_replica(env):
    """approval-processing-service keeps its queue in memory: one pod, no HPA, no budget blocking drains."""
    services = build(env).chart("services")
    (deployment,) = find(services, "Deployment", "approval-processing-service")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not find(services, "HorizontalPodAutoscaler", "approval-processing-service")
    assert not find(services, "PodDisruptionBudget", "approval-processing-service")


@pytest.mark.parametrize("env", ENVS)
def test_row_optional_xray(env):
    """AWS_XRAY_DAEMON_ADDRESS (UDP 2000) for approval-request and notification, which read it."""
    for service in ("approval-request-service", "notification-service"):
        assert deployment_env(env, service)["AWS_XRAY_DAEMON_ADDRESS"]["value"] == names.xray_address(build(env).env)
        assert (2000, "UDP") in egress_ports(env, service)
    assert "AWS_XRAY_DAEMON_ADDRESS" not in deployment_env(env, "approval-processing-service")


@pytest.mark.parametrize("env", ENVS)
def test_row_frontend(stack_templates, env):
    """What the frontend build needs: the API base URL and a Cognito pool + SPA client (outputs), and the
    attributes it signs up with and reads. (Static hosting of the SPA is not part of this row's check.)"""
    assert "ApiUrl" in api_of(stack_templates, env)["Outputs"]
    auth = stack_templates[f"erp-{env}-auth"]
    assert {"UserPoolId", "UserPoolClientId"} <= set(auth["Outputs"])
    (pool,) = resources_of(auth, "AWS::Cognito::UserPool").values()
    schema = {a["Name"]: a for a in pool["Properties"]["Schema"]}
    assert schema["position"]["AttributeDataType"] == "String" and schema["department"]["AttributeDataType"] == "String"
    assert schema["employeeId"]["AttributeDataType"] == "Number"
    (client,) = resources_of(auth, "AWS::Cognito::UserPoolClient").values()
    writable = set(client["Properties"]["WriteAttributes"])
    assert {"custom:position", "custom:department", "email", "name"} <= writable
    assert "custom:employeeId" not in writable
    assert {"custom:position", "custom:department", "custom:employeeId"} <= set(client["Properties"]["ReadAttributes"])


@pytest.mark.parametrize("env", ENVS)
def test_row_secrets(stack_templates, env):
    """DB credentials and the Mongo URI live in Secrets Manager, generated or set by hand: no value in git, in a
    template or in a manifest (the seeds hard-coded a Mongo URI with credentials)."""
    data = stack_templates[f"erp-{env}-data"]
    for secret in resources_of(data, "AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"] and "GenerateSecretString" in secret["Properties"]
    rendered = json.dumps(build(env).everything) + json.dumps(stack_templates[f"erp-{env}-workloads"])
    assert not re.search(r"mongodb(\+srv)?://[^\s\"']*:[^\s\"'@]*@", rendered)
    variables = deployment_env(env, "approval-request-service")
    assert "valueFrom" in variables["MONGODB_URI"] and "value" not in variables["MONGODB_URI"]

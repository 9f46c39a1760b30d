"""Names and ports two places must agree on, compared where each side really lives (issue 14 item 4).

Product modules share such values by import (k8s_charts/names.py, EnvironmentConfig.resource_prefix and
secret_name), so comparing those imports compares a constant with an alias of itself. Here each side is read
where it takes effect: the synthesized templates (the port the database and the cache listen on, the key the
cache secret is generated under), the rendered charts (the ports NetworkPolicies open, the JSON properties
External Secrets reads), a Lambda's own copy (read with `ast`, without importing the handler: a Lambda is
bundled from its own folder and cannot import them), and the README's instruction to operators.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from config import load_environment
from config.base import EMPLOYEES_PATH
from config.hosting import isolated_subnet_cidrs
from config.sections import VERIFIED_SCOPE
from k8s_charts import build_charts, names
from tests.charts.conftest import build, fake_values
from tests.conftest import resources_of
from tests.support.charts import find

ENVS = ("dev", "prod")
REPO = Path(__file__).resolve().parents[2]


def constant(path: Path, name: str):
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


def the_one(template: dict, resource_type: str) -> dict:
    (resource,) = resources_of(template, resource_type).values()
    return resource["Properties"]


def external_secret_properties(env_name: str) -> dict[str, str]:
    """Secrets Manager ARN -> the JSON property External Secrets reads from it, over every ExternalSecret."""
    return {
        item["remoteRef"]["key"]: item["remoteRef"]["property"]
        for secret in find(build(env_name).chart("services") + build(env_name).chart("secrets"), "ExternalSecret")
        for item in secret["spec"]["data"]
    }


def egress_ports_to(specs, blocks: list[str]) -> set[int]:
    """Ports of the egress rules whose peers are exactly these CIDR blocks."""
    return {
        p["port"]
        for spec in specs
        for rule in spec.get("egress", [])
        if [peer.get("ipBlock", {}).get("cidr") for peer in rule.get("to", [])] == blocks
        for p in rule["ports"]
    }


@pytest.mark.parametrize("env_name", ENVS)
def test_the_rotation_lambda_writes_the_key_the_stack_generates_and_the_cluster_reads(stack_templates, env_name):
    rotation = constant(REPO / "lambda_handlers" / "cache_rotation" / "app.py", "TOKEN_KEY")
    env = load_environment(env_name)
    data = stack_templates[f"{env.resource_prefix}-data"]
    (generated,) = [
        s["Properties"]["GenerateSecretString"]["GenerateStringKey"]
        for s in resources_of(data, "AWS::SecretsManager::Secret").values()
        if s["Properties"]["Name"] == env.secret_name("cache")
    ]
    assert rotation == generated
    auth_token = the_one(data, "AWS::ElastiCache::ReplicationGroup").get("AuthToken")
    read = external_secret_properties(env_name).get(build(env_name).values.cache_secret_arn)
    if env.cache.allow_plaintext_clients:  # dev: no AUTH, nothing reads the token
        assert auth_token is None and read is None
        return
    assert f":SecretString:{rotation}::}}}}" in str(auth_token)  # what the cache is created with
    assert read == rotation  # what the pods get


@pytest.mark.parametrize("env_name", ENVS)
def test_the_ports_the_data_tier_listens_on_are_the_ports_pods_and_functions_may_reach(stack_templates, env_name):
    """The RDS instance's and the cache's Port in the Data template against the NetworkPolicy egress the charts
    render (a service declaring mysql is built for it: none in config does) and the security group rules."""
    env = load_environment(env_name)
    data = stack_templates[f"{env.resource_prefix}-data"]
    db_port = int(the_one(data, "AWS::RDS::DBInstance")["Port"])
    cache_port = int(the_one(data, "AWS::ElastiCache::ReplicationGroup")["Port"])

    first = env.services[0].model_copy(update={"uses": [*env.services[0].uses, "mysql"]})
    with_mysql = env.model_copy(update={"services": [first, *env.services[1:]]})
    values = dataclasses.replace(fake_values(env), mysql_secret_arns={first.name: "arn:aws:secretsmanager:x"})
    policies = {
        p["metadata"]["name"]: p["spec"]
        for p in find(build_charts(with_mysql, values)["namespace"].to_json(), "NetworkPolicy")
    }
    # Both live in the isolated subnets (their subnet groups): the service reaches the database's port there, and
    # the isolated subnets are reached on nothing but the two ports.
    isolated = isolated_subnet_cidrs(env.network)
    assert db_port in egress_ports_to([policies[f"allow-{first.name}-egress"]], isolated)
    assert egress_ports_to(policies.values(), isolated) == {db_port, cache_port}

    # Every ingress rule into the Data stack's security groups (the employee Lambda's, the pods') is on one of them.
    into_data = [
        r["Properties"]
        for name, template in stack_templates.items()
        if name.startswith(f"{env.resource_prefix}-")
        for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if f"{env.resource_prefix}-data" in str(r["Properties"]["GroupId"])
    ]
    assert into_data and {(r["FromPort"], r["ToPort"]) for r in into_data} <= {
        (db_port, db_port),
        (cache_port, cache_port),
    }
    assert (db_port, db_port) in {(r["FromPort"], r["ToPort"]) for r in into_data}  # the employee Lambda


def test_the_mongodb_property_the_pods_read_is_the_one_operators_are_told_to_write():
    written = re.search(r"""jq -cn --arg uri "\$URI" '\{(\w+): \$uri\}'""", (REPO / "README.md").read_text())
    assert written, "README: the put-secret-value step for erp/<env>/mongodb moved"
    for env_name in ENVS:
        values = build(env_name).values
        assert external_secret_properties(env_name)[values.mongodb_secret_arn] == written.group(1)


def test_every_secret_name_is_under_the_prefix_the_external_secrets_role_may_read():
    env = load_environment("dev")
    assert env.secret_prefix == f"{env.project}/{env.name}"
    for name in (env.secret_name("mysql"), env.secret_name("cache"), names.mongodb_secret_name(env)):
        assert name.startswith(env.secret_prefix + "/")
    assert env.cluster_name == env.namespace == env.resource_prefix == f"{env.project}-{env.name}"


def test_the_employee_lambda_serves_every_path_the_gateway_sends_it():
    served = re.findall(r'@app\.\w+\("([^"]+)"', (REPO / "lambda_handlers" / "employee" / "app.py").read_text())
    assert EMPLOYEES_PATH in served
    for route in load_environment("dev").employee_function.routes:
        assert any(path == route.path or path.startswith(route.path + "/") for path in served), route.path


def test_the_pre_token_trigger_grants_the_scope_every_gateway_route_asks_for():
    """The gateway's default scope is f"{project}/{VERIFIED_SCOPE}"; the trigger has its own copy of the name."""
    assert constant(REPO / "lambda_handlers" / "pretoken" / "app.py", "VERIFIED") == VERIFIED_SCOPE

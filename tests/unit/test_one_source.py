"""Names two places must agree on, where one cannot import the other (issue 14 item 4).

Product modules share such names by import (k8s_charts/names.py, EnvironmentConfig.resource_prefix and
secret_name). A Lambda is bundled from its own folder and cannot import them, so its copy is held here to
the one source; the constants are read with `ast`, without importing the handler.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from config import load_environment
from config.base import EMPLOYEES_PATH
from config.sections import VERIFIED_SCOPE
from constructs_lib.data import cache, database, mongodb
from k8s_charts import names

REPO = Path(__file__).resolve().parents[2]


def constant(path: Path, name: str):
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


def test_the_rotation_lambda_writes_the_key_the_cluster_reads():
    rotation = constant(REPO / "lambda_handlers" / "cache_rotation" / "app.py", "TOKEN_KEY")
    assert rotation == cache.AUTH_TOKEN_KEY == names.CACHE_SECRET_JSON_KEY


def test_ports_and_keys_have_one_value():
    assert database.MYSQL_PORT == names.MYSQL_PORT
    assert cache.CACHE_PORT == names.REDIS_PORT
    assert mongodb.URI_KEY == names.MONGODB_SECRET_JSON_KEY


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

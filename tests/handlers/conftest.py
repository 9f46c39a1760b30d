"""Fixtures for the Lambda handler tests: a real MariaDB, Secrets Manager via moto, and
HTTP API (payload format 2.0) events as API Gateway sends them."""

import base64
import importlib
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import boto3
import pytest
from moto import mock_aws

from tests.support.mariadb import MariaDBNotInstalled, MariaDBServer, start_mariadb

EMPLOYEE_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "employee"
CREDENTIALS_NAME = "erp/db/app"
SERVICE_NAME = "employee-service"


@pytest.fixture(scope="session")
def mariadb() -> MariaDBServer:
    try:
        server = start_mariadb()
    except MariaDBNotInstalled as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    yield server
    server.stop()


@dataclass
class Secret:
    """The RDS-style secret in moto's Secrets Manager."""

    arn: str
    client: object

    def put(self, server: MariaDBServer) -> None:
        self.client.put_secret_value(SecretId=self.arn, SecretString=json.dumps(rds_secret(server)))


def rds_secret(server: MariaDBServer) -> dict:
    return {
        "username": server.user,
        "password": server.password,
        "host": server.host,
        "port": server.port,
        "dbname": server.database,
        "engine": "mysql",
    }


@pytest.fixture(scope="module")
def db_secret(mariadb) -> Secret:
    """Environment of the deployed function, with moto standing in for AWS.

    Module-scoped: the fake credentials, the environment and the mock must not outlive the
    employee tests, since other test modules share this directory.
    """
    fake_credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")
    env = {name: "testing" for name in fake_credentials} | {
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ERP",
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "DB_NAME": mariadb.database,
        "DB_TLS": "false",  # TLS has its own tests; the rest save ~25 ms per connection
    }
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name, value in env.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "DB_HOST", "DB_CA_BUNDLE"):
            mp.delenv(name, raising=False)
        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name=CREDENTIALS_NAME, SecretString=json.dumps(rds_secret(mariadb)))["ARN"]
        mp.setenv("DB_SECRET_ARN", arn)
        yield Secret(arn=arn, client=client)


@pytest.fixture(scope="module")
def employee(db_secret) -> SimpleNamespace:
    """The handler's modules (app, db, repository, validation), imported as Lambda would.

    Every function folder has an `app.py` (and maybe a `db.py`), so the modules are removed
    from sys.modules again right after import: another function's tests get their own.
    """
    names = [path.stem for path in EMPLOYEE_DIR.glob("*.py")]
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(EMPLOYEE_DIR))
    try:
        modules = {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(EMPLOYEE_DIR))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return SimpleNamespace(**modules)


@pytest.fixture
def new_container(employee, monkeypatch):
    """Give the handler a fresh Database, as a new Lambda container would have."""

    def start(load_secret=None):
        kwargs = {"load_secret": load_secret} if load_secret else {}
        database = employee.db.Database(
            employee.db.Settings.from_env(), setup=employee.repository.create_schema, **kwargs
        )
        monkeypatch.setattr(employee.app, "db", database)
        return database

    return start


@pytest.fixture
def clean_database(mariadb, db_secret):
    """No table, no open application sessions, and a secret that matches the server."""
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS employees")
    mariadb.kill_connections(mariadb.user)
    db_secret.put(mariadb)


@dataclass
class ApiResponse:
    status: int
    headers: dict
    body: object  # decoded JSON, or None for an empty body


def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name=SERVICE_NAME,
        memory_limit_in_mb=256,
        invoked_function_arn=f"arn:aws:lambda:ap-northeast-2:123456789012:function:{SERVICE_NAME}",
        aws_request_id=str(uuid.uuid4()),
    )


def http_api_event(
    method: str,
    path: str,
    *,
    json_body=None,
    body: str | bytes | None = None,
    base64_body: bool = False,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """An HTTP API payload v2 event for the gateway routes `/api/employees` and `/api/employees/{id}`.

    `path` is the decoded path; rawPath is percent-encoded, as API Gateway sends it.
    """
    if json_body is not None:
        body = json.dumps(json_body)
    if base64_body and body is not None:
        body = base64.b64encode(body.encode() if isinstance(body, str) else body).decode()
    raw_path = quote(path, safe="/")
    prefix, _, employee_id = path.partition("/api/employees/")
    if not prefix and employee_id:
        route_key, path_parameters = f"{method} /api/employees/{{id}}", {"id": employee_id}
    else:
        route_key, path_parameters = f"{method} /api/employees", None
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": urlencode(query or {}),
        "headers": {
            "accept": "application/json",
            "authorization": "Bearer test-token",
            "content-type": "application/json",
            "host": "api.example.test",
            "user-agent": "pytest",
            "x-amzn-trace-id": "Root=1-00000000-000000000000000000000000",
            "x-forwarded-for": "203.0.113.10",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "erpapi0001",
            "authorizer": {
                "jwt": {
                    "claims": {
                        "sub": "3f0a2b1c-7d4e-4f5a-9b8c-1d2e3f4a5b6c",
                        "email": "approver@example.com",
                        "iss": "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_Example",
                        "cognito:groups": "[hr-admins]",
                        "token_use": "access",
                    },
                    "scopes": None,
                }
            },
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = body
    return event


@pytest.fixture
def api(employee, clean_database, new_container):
    """Call the handler the way API Gateway does; one fresh container per test."""
    new_container()

    def call(method: str, path: str, event_overrides: dict | None = None, **event_options) -> ApiResponse:
        event = http_api_event(method, path, **event_options) | (event_overrides or {})
        result = employee.app.handler(event, lambda_context())
        assert not result.get("isBase64Encoded")
        body = result.get("body")
        return ApiResponse(result["statusCode"], result.get("headers", {}), json.loads(body) if body else None)

    return call


@pytest.fixture
def make_employee(api):
    """Create an employee through the API; emails are unique unless given."""

    def create(**fields) -> dict:
        payload = {
            "email": f"{uuid.uuid4().hex[:12]}@example.com",
            "name": "Kim Minji",
            "department": "Finance",
            **fields,
        }
        response = api("POST", "/api/employees", json_body=payload)
        assert response.status == 201, response.body
        return response.body

    return create

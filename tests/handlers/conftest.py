"""Fixtures for the Lambda handler tests: a real MariaDB, Secrets Manager via moto, and
HTTP API (payload format 2.0) events as API Gateway sends them.

The employee tests serve a database that starts life as the Spring service left it: the
Hibernate DDL (tests/support/hibernate_schema.sql) with sample rows, then the migration
function runs (as the master user) and creates the DML-only `employee_app` user the
employee function connects with.
"""

import base64
import importlib
import importlib.util
import json
import secrets
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import FAKE_CREDENTIALS
from tests.support.mariadb import MariaDBNotInstalled, MariaDBServer, start_mariadb

ROOT = Path(__file__).resolve().parents[2]
EMPLOYEE_DIR = ROOT / "lambda_handlers" / "employee"
MIGRATE_DIR = ROOT / "lambda_handlers" / "db_migrate"
HIBERNATE_SCHEMA = ROOT / "tests" / "support" / "hibernate_schema.sql"
SERVICE_NAME = "employee-service"
TABLES = ("employees", "attendance", "leaves", "quests", "quest_progress")
MASTER_USER = "erpadmin"
APP_USER = "employee_app"

# Sample rows as the old service wrote them, NULLs included (balance/count were nullable).
SEED = [
    "INSERT INTO employees (id, name, email, department, position, annual_leave_balance, attendance_count,"
    " created_at) VALUES"
    " (1, 'Kim Minji', 'owner@example.com', 'DEVELOPMENT', 'STAFF', 5.0, 29, '2025-03-01 09:00:00.123456'),"
    " (2, 'Lee Manager', 'manager@example.com', 'DEVELOPMENT', 'MANAGER', 10.0, 0, '2025-03-01 09:00:00'),"
    " (3, 'Park Legacy', NULL, 'SALES', 'STAFF', NULL, NULL, NULL)",
    "INSERT INTO quests (id, title, description, reward_days, department, created_by, status, created_at) VALUES"
    " (1, 'Fix login bug', 'SRP flow', 1.5, 'DEVELOPMENT', 2, 'AVAILABLE', '2025-03-02 10:00:00'),"
    " (2, 'Old quest', NULL, 1.0, 'DEVELOPMENT', 2, 'DELETED', '2025-03-02 10:00:00')",
    "INSERT INTO quest_progress (id, quest_id, employee_id, status, accepted_at) VALUES"
    " (1, 2, 1, 'IN_PROGRESS', '2025-03-02 11:00:00')",
    "INSERT INTO leaves (id, employee_id, start_date, end_date, days, reason, status, created_at) VALUES"
    " (1, 1, '2025-04-01', '2025-04-02', 2, 'Trip', 'APPROVED', '2025-03-03 09:00:00'),"
    " (2, 1, '2025-05-01', '2025-05-01', 1, NULL, 'PENDING', '2025-03-04 09:00:00')",
    "INSERT INTO attendance (id, employee_id, check_in_time, status, created_at) VALUES"
    " (1, 1, '2025-03-05 08:55:00', 'COMPLETED', '2025-03-05 08:55:00')",
]
OWNER_EMAIL, MANAGER_EMAIL = "owner@example.com", "manager@example.com"


def load_function(directory: Path) -> SimpleNamespace:
    """A function folder's modules, imported as Lambda would (its folder is the import root).

    Every function folder has an `app.py`, so the modules leave sys.modules right after import:
    another function's tests get their own.
    """
    names = [path.stem for path in directory.glob("*.py")]
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(directory))
    try:
        modules = {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(directory))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return SimpleNamespace(**modules)


def load_app_copy(employee: SimpleNamespace, tag: str):
    """A second, independent app module (its own resolver and Database): another Lambda container."""
    names = [path.stem for path in EMPLOYEE_DIR.glob("*.py") if path.stem != "app"]
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update({name: getattr(employee, name) for name in names})
    try:
        spec = importlib.util.spec_from_file_location(f"employee_app_{tag}", EMPLOYEE_DIR / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, module_before in saved.items():
            if module_before is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module_before
    return module


@pytest.fixture(scope="session")
def mariadb() -> MariaDBServer:
    try:
        server = start_mariadb()
    except MariaDBNotInstalled as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    master_password = secrets.token_urlsafe(24)
    with server.admin_connection() as conn, conn.cursor() as cur:
        # RDS's master user: every privilege, may create users and grant.
        cur.execute(f"CREATE USER '{MASTER_USER}'@'%%' IDENTIFIED BY %s", (master_password,))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{MASTER_USER}'@'%' WITH GRANT OPTION")
    server.master_password = master_password
    server.app_password = secrets.token_urlsafe(24)
    server.migrated = False
    yield server
    server.stop()


def rds_secret(server: MariaDBServer, user: str, password: str) -> dict:
    return {
        "username": user,
        "password": password,
        "host": server.host,
        "port": server.port,
        "dbname": server.database,
        "engine": "mysql",
    }


@dataclass
class Secrets:
    client: object
    master_arn: str
    app_arn: str
    server: MariaDBServer

    def app_secret(self) -> dict:
        return json.loads(self.client.get_secret_value(SecretId=self.app_arn)["SecretString"])

    def put_app(self, **changes) -> None:
        self.client.put_secret_value(SecretId=self.app_arn, SecretString=json.dumps(self.app_secret() | changes))


def reset_old_database(server: MariaDBServer, database: str | None = None) -> None:
    """The database as the Spring service left it: Hibernate's tables with sample rows, no migrations."""
    database = database or server.database
    with server.admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute(f"USE `{database}`")
        for statement in HIBERNATE_SCHEMA.read_text().split(";"):
            if statement.strip():
                cur.execute(statement)
        for statement in SEED:
            cur.execute(statement)


def reseed(server: MariaDBServer) -> None:
    with server.admin_connection(database=server.database) as conn, conn.cursor() as cur:
        for table in TABLES:
            cur.execute(f"TRUNCATE TABLE {table}")
        for statement in SEED:
            cur.execute(statement)


@contextmanager
def aws_environment(mariadb):
    """Environment of the deployed functions, with moto standing in for AWS. The passwords are
    the server's (fixed for its lifetime), so the users on it match every module's secrets."""
    env = {name: "testing" for name in FAKE_CREDENTIALS} | {
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ERP",
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "DB_NAME": mariadb.database,
        "DB_TLS": "false",  # TLS has its own tests; the rest save ~25 ms per connection
        "AUTH_ADMIN_GROUPS": "admin,hr-admins",
        "AUTH_MANAGER_GROUPS": "manager",
        "AUTH_SCOPE_PREFIX": "erp",
    }
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name, value in env.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "DB_HOST", "DB_CA_BUNDLE"):
            mp.delenv(name, raising=False)
        client = boto3.client("secretsmanager")
        master_arn = client.create_secret(
            Name="erp/test/mysql", SecretString=json.dumps(rds_secret(mariadb, MASTER_USER, mariadb.master_password))
        )["ARN"]
        app_arn = client.create_secret(
            Name=f"erp/test/mysql/{APP_USER}",
            SecretString=json.dumps(rds_secret(mariadb, APP_USER, mariadb.app_password)),
        )["ARN"]
        mp.setenv("MASTER_SECRET_ARN", master_arn)
        mp.setenv("CONSUMERS", json.dumps({APP_USER: {"secret_arn": app_arn, "privileges": "DML"}}))
        mp.setenv("DB_SECRET_ARN", app_arn)
        yield Secrets(client=client, master_arn=master_arn, app_arn=app_arn, server=mariadb)


@pytest.fixture(scope="module")
def aws_env(mariadb):
    """Module-scoped: fake credentials and the mock must not outlive these tests."""
    with aws_environment(mariadb) as env:
        yield env


@pytest.fixture(scope="module")
def migrator(aws_env) -> SimpleNamespace:
    return load_function(MIGRATE_DIR)


@pytest.fixture(scope="module")
def migrated(mariadb, aws_env, migrator):
    """The old database, adopted by the migration function (which also creates employee_app).

    Once per run: the database outlives the modules, the migration tests work on a database of
    their own (test_db_migrate.py), and every module's secrets hold the session's passwords.
    """
    if not mariadb.migrated:
        reset_old_database(mariadb)
        migrator.app.handler({}, None)
        mariadb.migrated = True
    return aws_env


@pytest.fixture(scope="module")
def employee(migrated) -> SimpleNamespace:
    return load_function(EMPLOYEE_DIR)


@pytest.fixture
def new_container(employee, monkeypatch):
    """Give the handler a fresh Database, as a new Lambda container would have."""

    def start(load_secret=None):
        kwargs = {"load_secret": load_secret} if load_secret else {}
        database = employee.db.Database(employee.db.Settings.from_env(), **kwargs)
        monkeypatch.setattr(employee.app, "db", database)
        return database

    return start


@pytest.fixture
def clean_database(mariadb, migrated):
    """The sample rows again, and no open application sessions."""
    reseed(mariadb)
    mariadb.kill_connections(APP_USER)


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


ROLES = ("anonymous", "unverified", "user", "owner", "linked", "manager", "admin", "internal")
SUB = "3f0a2b1c-7d4e-4f5a-9b8c-1d2e3f4a5b6c"
LEGACY_ID = 3  # the seed's employee without an email, the one the "linked" caller is linked to


def authorizer_for(role: str) -> dict | None:
    """requestContext.authorizer as API Gateway passes it for each kind of caller.

    unverified: signed up but never opened the sign-up link (the pre-token trigger then adds no email
    and no scope); linked: only the `custom:employeeId` an administrator set (legacy record 3, no email).
    """
    if role == "anonymous":
        return None
    if role == "internal":  # function URL with AWS_IAM auth
        return {"iam": {"accessKey": "ASIA0000", "accountId": "123456789012", "userArn": "arn:aws:sts::1:x"}}
    claims = {
        "sub": SUB,
        "iss": "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_Example",
        "token_use": "access",
        "custom:position": "MANAGER",  # client-writable: must grant nothing
    }
    scopes = None
    if role == "user":
        claims["email"] = "someone@example.com"
    elif role == "linked":
        claims["custom:employeeId"] = str(LEGACY_ID)
    elif role == "owner":
        claims["email"] = OWNER_EMAIL
    elif role == "manager":
        claims |= {"email": MANAGER_EMAIL, "cognito:groups": "[manager]"}
    elif role == "admin":
        claims |= {"email": "admin@example.com"}
        scopes = ["aws.cognito.signin.user.admin", "erp/admin"]
    return {"jwt": {"claims": claims, "scopes": scopes}}


def http_api_event(
    method: str,
    path: str,
    *,
    role: str = "admin",
    json_body=None,
    body: str | bytes | None = None,
    base64_body: bool = False,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """An HTTP API payload v2 event for the greedy routes `/api/<area>/{proxy+}`."""
    if json_body is not None:
        body = json.dumps(json_body)
    if base64_body and body is not None:
        body = base64.b64encode(body.encode() if isinstance(body, str) else body).decode()
    raw_path = quote(path, safe="/")
    parts = path.split("/")
    area = "/".join(parts[:3])
    route_key = f"ANY {area}/{{proxy+}}" if len(parts) > 3 else f"ANY {area}"
    now = time.time()
    request_context = {
        "accountId": "123456789012",
        "apiId": "erpapi0001",
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
    }
    authorizer = authorizer_for(role)
    if authorizer is not None:
        request_context["authorizer"] = authorizer
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": urlencode(query or {}),
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "host": "api.example.test",
            "user-agent": "pytest",
            "x-amzn-trace-id": "Root=1-00000000-000000000000000000000000",
            **(headers or {}),
        },
        "requestContext": request_context,
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if len(parts) > 3:
        event["pathParameters"] = {"proxy": "/".join(parts[3:])}
    if body is not None:
        event["body"] = body
    return event


def call(app_module, method: str, path: str, **event_options) -> ApiResponse:
    result = app_module.handler(http_api_event(method, path, **event_options), lambda_context())
    assert not result.get("isBase64Encoded")
    body = result.get("body")
    return ApiResponse(result["statusCode"], result.get("headers", {}), json.loads(body) if body else None)


@pytest.fixture
def api(employee, clean_database, new_container):
    """Call the handler the way API Gateway does; one fresh container per test."""
    new_container()

    def request(method: str, path: str, **event_options) -> ApiResponse:
        return call(employee.app, method, path, **event_options)

    return request

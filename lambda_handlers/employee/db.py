"""Database connection for the employee service, kept warm across invocations.

Credentials come from the employee service's own DML-only MySQL user (secret
erp/{env}/mysql/employee_app, the RDS secret shape {"username", "password", "host", "port",
"dbname", "engine"}), named by DB_SECRET_ARN. They are read once per container and re-read
once when the server rejects them (MySQL error 1045): with multi-user rotation the secret
switches between two users, so the old password keeps working until the next rotation and
the re-read only happens after that.

TLS is always verified: the chain against the RDS CA bundle shipped beside this file
(rds-ca-bundle.pem; DB_CA_BUNDLE may name another file) and the host name against the
certificate. There is no unverified mode. DB_TLS=false turns TLS off entirely, for local
test servers only (RDS refuses plaintext: require_secure_transport=1).
"""

import json
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import pymysql
from aws_lambda_powertools import Logger
from pymysql.constants import CLIENT, ER

logger = Logger(child=True)
DEFAULT_CA_BUNDLE = str(Path(__file__).resolve().with_name("rds-ca-bundle.pem"))


@dataclass(frozen=True)
class Settings:
    secret_id: str
    database: str = "erp"
    host: str | None = None  # overrides the host in the secret, e.g. to go through RDS Proxy
    tls: bool = True
    ca_bundle: str = DEFAULT_CA_BUNDLE

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            secret_id=os.environ["DB_SECRET_ARN"],
            database=os.environ.get("DB_NAME") or "erp",
            host=os.environ.get("DB_HOST") or None,
            tls=os.environ.get("DB_TLS", "true").strip().lower() not in {"false", "0", "no", "off"},
            ca_bundle=os.environ.get("DB_CA_BUNDLE") or DEFAULT_CA_BUNDLE,
        )


def read_secret(secret_id: str) -> dict:
    # A client per read is fine: reads happen once per container and once per rotation.
    response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return json.loads(response["SecretString"])


def tls_options(settings: Settings) -> dict:
    """pymysql keyword arguments for the TLS policy described in the module docstring."""
    if not settings.tls:
        return {"ssl_disabled": True}
    context = ssl.create_default_context(cafile=settings.ca_bundle)  # CERT_REQUIRED, check_hostname=True
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Passing a context (not ssl_* flags) makes TLS required: no silent plaintext fallback.
    return {"ssl": context}


class Database:
    """Caches the credentials and one connection for the lifetime of a container.

    The connection is per thread: Lambda runs one request at a time, but the concurrency
    tests and the benchmark drive one container from many threads, each with its own session.
    The schema is the migration function's business; this class never runs DDL.
    """

    def __init__(self, settings: Settings, load_secret: Callable[[str], dict] = read_secret):
        self._settings = settings
        self._load_secret = load_secret
        self._secret: dict | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def connection(self) -> pymysql.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.ping(reconnect=False)
            except pymysql.err.Error:
                logger.info("Database connection went away; reconnecting")
                conn = None
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _connect(self) -> pymysql.Connection:
        with self._lock:
            if self._secret is None:
                self._secret = self._load_secret(self._settings.secret_id)
            secret = self._secret
        try:
            return self._open(secret)
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != ER.ACCESS_DENIED_ERROR:
                raise
            logger.info("Database rejected the cached credentials; re-reading the secret")
            with self._lock:
                self._secret = self._load_secret(self._settings.secret_id)
                secret = self._secret
            return self._open(secret)

    def _open(self, secret: dict) -> pymysql.Connection:
        return pymysql.connect(
            host=self._settings.host or secret["host"],
            port=int(secret.get("port", 3306)),
            user=secret["username"],
            password=secret["password"],
            database=self._settings.database,
            charset="utf8mb4",
            cursorclass=pymysql.cursors.DictCursor,
            autocommit=True,
            client_flag=CLIENT.FOUND_ROWS,  # UPDATE reports matched rows: "found" even if unchanged
            init_command="SET time_zone = '+00:00'",  # DATETIME columns hold UTC
            connect_timeout=5,
            read_timeout=10,
            write_timeout=10,
            **tls_options(self._settings),
        )

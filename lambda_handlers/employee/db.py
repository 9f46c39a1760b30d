"""Database connection for the employee service, kept warm across invocations.

Credentials come from the RDS-generated Secrets Manager secret named by DB_SECRET_ARN
({"username", "password", "host", "port", "dbname", "engine"}). They are read once per
container and re-read once when the server rejects them (MySQL error 1045): that is how
the function survives a password rotation without waiting for a new container.

TLS: the production instance enforces require_secure_transport, so connections are
encrypted by default. The RDS CA bundle cannot be vendored into this offline build, so
unless DB_CA_BUNDLE names a CA file the server certificate is NOT verified (the link is
encrypted but the server is not authenticated; acceptable only inside the VPC). With
DB_CA_BUNDLE set, the certificate chain and the host name (DB_HOST, else the secret's
host) are verified. DB_TLS=false turns TLS off entirely, for local test servers only.
"""

import json
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pymysql
from aws_lambda_powertools import Logger
from pymysql.constants import CLIENT, ER

logger = Logger(child=True)


@dataclass(frozen=True)
class Settings:
    secret_id: str
    database: str = "erp"
    host: str | None = None  # overrides the host in the secret, e.g. to go through RDS Proxy
    tls: bool = True
    ca_bundle: str | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            secret_id=os.environ["DB_SECRET_ARN"],
            database=os.environ.get("DB_NAME") or "erp",
            host=os.environ.get("DB_HOST") or None,
            tls=os.environ.get("DB_TLS", "true").strip().lower() not in {"false", "0", "no", "off"},
            ca_bundle=os.environ.get("DB_CA_BUNDLE") or None,
        )


def read_secret(secret_id: str) -> dict:
    # A client per read is fine: reads happen once per container and once per rotation.
    response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return json.loads(response["SecretString"])


def tls_options(settings: Settings) -> dict:
    """pymysql keyword arguments for the TLS policy described in the module docstring."""
    if not settings.tls:
        return {"ssl_disabled": True}
    if settings.ca_bundle:
        context = ssl.create_default_context(cafile=settings.ca_bundle)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # Passing a context (not ssl_* flags) makes TLS required: no silent plaintext fallback.
    return {"ssl": context}


class Database:
    """Caches the credentials and one connection for the lifetime of a container.

    `setup` runs once, on the first successful connection (schema creation).
    """

    def __init__(
        self,
        settings: Settings,
        setup: Callable[[pymysql.Connection], None],
        load_secret: Callable[[str], dict] = read_secret,
    ):
        self._settings = settings
        self._setup = setup
        self._load_secret = load_secret
        self._secret: dict | None = None
        self._conn: pymysql.Connection | None = None
        self._set_up = False

    def connection(self) -> pymysql.Connection:
        if self._conn is not None:
            try:
                self._conn.ping(reconnect=False)
            except pymysql.err.Error:
                logger.info("Database connection went away; reconnecting")
                self._conn = None
        if self._conn is None:
            self._conn = self._connect()
        if not self._set_up:
            self._setup(self._conn)
            self._set_up = True
        return self._conn

    def _connect(self) -> pymysql.Connection:
        if self._secret is None:
            self._secret = self._load_secret(self._settings.secret_id)
        try:
            return self._open(self._secret)
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != ER.ACCESS_DENIED_ERROR:
                raise
            logger.info("Database rejected the cached credentials; re-reading the secret")
            self._secret = self._load_secret(self._settings.secret_id)
            return self._open(self._secret)

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

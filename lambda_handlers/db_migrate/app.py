"""Schema migrations and per-consumer MySQL users, run once per deploy by a CDK Trigger.

Connects with the RDS master secret (MASTER_SECRET_ARN): the only DDL-capable credentials.
1. yoyo-migrations applies what migrations/ holds and the database has not recorded, under
   yoyo's lock. 0001 is the Hibernate schema with CREATE TABLE IF NOT EXISTS, so an existing
   database is adopted in place (rows kept, baseline recorded) and an empty one is built.
   0003 dates check-ins by the calendar day in BUSINESS_TIMEZONE (default Asia/Seoul): the
   CDK passes the employee function the same value, as the day the unique key is about.
2. Every consumer in CONSUMERS ({"name": {"secret_arn": ..., "privileges": "DML"|"DDL"}})
   gets its MySQL user with exactly its privileges on DB_NAME. The user named in the secret
   gets the secret's password; its multi-user-rotation twin "<name>_clone" (created by the
   rotation function with copied grants) gets the same privileges when it exists.
Any error propagates: the Trigger then fails and so does the deploy.

TLS as in the employee function: verified chain (bundled RDS CA) and host name.
"""

import json
import os
import re
import ssl
from pathlib import Path

import boto3
import pymysql
from yoyo import read_migrations
from yoyo.backends.core.mysql import MySQLBackend
from yoyo.connections import parse_uri

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
DEFAULT_CA_BUNDLE = str(HERE / "rds-ca-bundle.pem")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,25}")  # fits MySQL's 32-char user names with "_clone"

PRIVILEGES = {
    "DML": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "DDL": (
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "ALTER",
        "DROP",
        "INDEX",
        "REFERENCES",
        "CREATE VIEW",
        "SHOW VIEW",
        "LOCK TABLES",
        "CREATE TEMPORARY TABLES",
    ),
}
KNOWN = PRIVILEGES["DDL"] + ("EXECUTE", "CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "TRIGGER", "GRANT OPTION")


def read_secret(secret_arn: str) -> dict:
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])


def connect_kwargs(secret: dict, database: str | None, tls: bool, ca_bundle: str) -> dict:
    kwargs = {
        "host": os.environ.get("DB_HOST") or secret["host"],
        "port": int(secret.get("port", 3306)),
        "user": secret["username"],
        "password": secret["password"],
        "database": database,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": 10,
    }
    if tls:
        context = ssl.create_default_context(cafile=ca_bundle)  # CERT_REQUIRED, check_hostname=True
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        kwargs["ssl"] = context
    else:
        kwargs["ssl_disabled"] = True
    return kwargs


def _backend(kwargs: dict) -> MySQLBackend:
    """yoyo's MySQL backend on our own pymysql connection (its URI form cannot carry an SSLContext)."""

    class Backend(MySQLBackend):
        def connect(self, dburi):
            return pymysql.connect(**kwargs)

    backend = Backend(parse_uri(f"mysql://migrator@db/{kwargs['database']}"), "_yoyo_migration")
    backend.init_database()
    return backend


def migrate(kwargs: dict, break_lock: bool = False) -> list[str]:
    """Apply the pending migrations; the ids applied (empty when up to date).

    `break_lock` clears a lock left by a run that died mid-way (an operator's manual invoke
    with {"break_lock": true}; yoyo otherwise waits 10 s, then fails, and so would the deploy).
    """
    backend = _backend(kwargs)
    try:
        if break_lock:
            backend.break_lock()
        migrations = read_migrations(str(MIGRATIONS))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


def _user_exists(cur, user: str) -> bool:
    cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user = %s AND host = '%%'", (user,))
    return cur.fetchone()[0] > 0


def ensure_user(cur, database: str, name: str, level: str, secret: dict) -> list[str]:
    """Create/align one consumer's user(s); the user names handled."""
    if not _IDENT.fullmatch(name) or level not in PRIVILEGES:
        raise ValueError(f"consumer {name!r}: name must match {_IDENT.pattern}, privileges one of {sorted(PRIVILEGES)}")
    current = secret["username"]
    if current not in (name, f"{name}_clone"):
        raise ValueError(f"consumer {name!r}: its secret names user {current!r}")
    cur.execute(f"CREATE USER IF NOT EXISTS '{current}'@'%%' IDENTIFIED BY %s", (secret["password"],))
    cur.execute(f"ALTER USER '{current}'@'%%' IDENTIFIED BY %s", (secret["password"],))
    handled = []
    wanted = PRIVILEGES[level]
    for user in (name, f"{name}_clone"):
        if not _user_exists(cur, user):
            continue
        # Grant first, then take away the rest: the user is never without what it needs.
        cur.execute(f"GRANT {', '.join(wanted)} ON `{database}`.* TO '{user}'@'%'")
        for privilege in KNOWN:
            if privilege in wanted:
                continue
            try:
                cur.execute(f"REVOKE {privilege} ON `{database}`.* FROM '{user}'@'%'")
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1141:  # ER_NONEXISTING_GRANT: it never had it
                    raise
        handled.append(user)
    return handled


def handler(event, context):
    database = os.environ["DB_NAME"]
    if not _IDENT.fullmatch(database):
        raise ValueError(f"DB_NAME {database!r} is not a plain identifier")
    tls = os.environ.get("DB_TLS", "true").strip().lower() not in {"false", "0", "no", "off"}
    ca_bundle = os.environ.get("DB_CA_BUNDLE") or DEFAULT_CA_BUNDLE
    master = read_secret(os.environ["MASTER_SECRET_ARN"])
    kwargs = connect_kwargs(master, database, tls, ca_bundle)
    applied = migrate(kwargs, break_lock=bool((event or {}).get("break_lock")))
    users = {}
    consumers = json.loads(os.environ.get("CONSUMERS", "{}"))
    with pymysql.connect(**kwargs) as conn, conn.cursor() as cur:
        for name, spec in sorted(consumers.items()):
            users[name] = ensure_user(cur, database, name, spec["privileges"], read_secret(spec["secret_arn"]))
    result = {"applied": applied, "users": users}
    print(json.dumps(result))  # the Trigger's log: what this deploy changed
    return result

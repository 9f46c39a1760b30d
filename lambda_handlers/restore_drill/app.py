"""The restore drill's steps (issue 21): one function, the step named by the event, driven by the state machine in
constructs_lib/data/restore_drill.py (which says why Step Functions waits and this function only acts).

    start         the latest COMPLETED recovery point of the live instance in the vault -> a temporary instance
                  `<prefix>-drill-<yyyymmddhhmm>` restored from it (its RDS snapshot), tagged erp:restore-drill;
                  live's row counts are taken here, while live is known to be awake: the check needs only the
                  copy, so a live database the night schedule stops during the drill does not fail it
    status        is the temporary instance ready (available, nothing pending)? a failed restore or a drill past
                  its deadline raises, so the state machine's Catch cleans up while there is time
    set_password  the drill secret's password as the instance's master password: the snapshot keeps the master
                  password of its day, which rotation may have changed since
    check         the five employee tables exist in the copy and their row counts are plausible against live's,
                  as counted at start
    cleanup       deletes this run's instance and the leftovers of earlier runs (drill instances of this
                  environment started more than DEADLINE_MINUTES ago); returns those still there, so the state
                  machine waits until they are gone. A younger one belongs to a drill still running: start refuses
                  to run beside it, and cleanup leaves it to that drill
    report        metrics DrillSucceeded (1/0), RestoreMinutes (RTO) and RecoveryPointAgeHours (RPO)
    heartbeat     (daily, from its own schedule, not the state machine) metric DaysSinceLastDrill: how long ago
                  the last execution passed, or the state machine was created if none has

The event is {"step": <name>, "state": <the execution's state>, "started": <execution start time>}; each step reads
what it needs from `state` (the failure path cannot know which steps ran). Errors are raised as named exceptions:
the state machine retries DatabaseUnreachable and catches everything into cleanup + report.

Environment:
    PREFIX                     the environment's prefix (erp-dev): drill instance names and their tag's value
    TAG_KEY                    the tag drill instances carry (erp:restore-drill); the role may touch no other
    VAULT_NAME                 the backup vault holding the database's recovery points
    DB_INSTANCE_ID             the live instance
    DB_NAME                    the application schema
    DB_INSTANCE_CLASS          the temporary instance's class (db.t4g.micro)
    DRILL_SECURITY_GROUP_ID    the temporary instance's security group (MySQL from this function only)
    DRILL_SECRET_ARN           the password the temporary instance gets (plain string secret)
    LIVE_SECRET_ARN            the employee service's MySQL user (RDS secret shape): reads the live row counts
    ROW_COUNT_TOLERANCE_PCT    how far a restored count may lie from live (percent)
    DEADLINE_MINUTES           after this long since the execution started, status gives up (cleanup still fits)
    STATE_MACHINE_ARN          the drill's state machine (heartbeat)
    DB_CA_BUNDLE               optional: another CA file than the bundled rds-ca-bundle.pem (tests)
"""

from __future__ import annotations

import json
import math
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pymysql
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import ClientError

logger = Logger()
metrics = Metrics()

# The schema lambda_handlers/db_migrate/migrations/0001_baseline.sql adopts: the employee service's five tables.
TABLES = ("employees", "attendance", "leaves", "quests", "quest_progress")
# The CA lambda_handlers/employee verifies against (constructs_lib/data/database.py sets it on the live instance).
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
DEFAULT_CA_BUNDLE = str(Path(__file__).resolve().with_name("rds-ca-bundle.pem"))
# States from which a restore never becomes available (RDS DB instance status list).
FAILED_STATES = frozenset(
    {
        "failed",
        "incompatible-network",
        "incompatible-option-group",
        "incompatible-parameters",
        "incompatible-restore",
        "inaccessible-encryption-credentials",
        "restore-error",
        "storage-full",
    }
)
# The live instance's states under dev's night schedule: start could not count its rows.
LIVE_ASLEEP_STATES = frozenset({"stopped", "stopping", "starting"})
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
CONNECT_TIMEOUT_SECONDS = 10


class DrillError(Exception):
    """Base of the errors the state machine sees by name (Error = the class name)."""


class NoRecoveryPoint(DrillError):
    pass


class RestoreFailed(DrillError):
    pass


class DrillTimedOut(DrillError):
    pass


class LiveDatabaseDown(DrillError):
    """Not retried: the drill judges the copy by live's row counts, which a stopped database cannot give."""


class DatabaseUnreachable(DrillError):
    """Retried by the state machine: a fresh instance's DNS name or new password may need a minute."""


class DrillCheckFailed(DrillError):
    pass


class UnknownStep(DrillError):
    pass


@dataclass(frozen=True)
class Settings:
    prefix: str
    tag_key: str
    vault: str
    live_instance: str
    database: str
    instance_class: str
    security_group: str
    drill_secret: str
    live_secret: str
    tolerance_pct: float
    deadline_minutes: float
    state_machine: str
    ca_bundle: str = DEFAULT_CA_BUNDLE

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            prefix=env["PREFIX"],
            tag_key=env["TAG_KEY"],
            vault=env["VAULT_NAME"],
            live_instance=env["DB_INSTANCE_ID"],
            database=env["DB_NAME"],
            instance_class=env["DB_INSTANCE_CLASS"],
            security_group=env["DRILL_SECURITY_GROUP_ID"],
            drill_secret=env["DRILL_SECRET_ARN"],
            live_secret=env["LIVE_SECRET_ARN"],
            tolerance_pct=float(env["ROW_COUNT_TOLERANCE_PCT"]),
            deadline_minutes=float(env["DEADLINE_MINUTES"]),
            state_machine=env["STATE_MACHINE_ARN"],
            ca_bundle=env.get("DB_CA_BUNDLE") or DEFAULT_CA_BUNDLE,
        )

    @property
    def instance_prefix(self) -> str:
        """Every drill instance's name starts so; the role may touch no other (constructs_lib/data/restore_drill)."""
        return f"{self.prefix}-drill-"


@dataclass
class Clients:
    rds: Any
    backup: Any
    secrets: Any
    states: Any

    @classmethod
    def default(cls) -> Clients:
        return cls(
            rds=boto3.client("rds", config=AWS_CONFIG),
            backup=boto3.client("backup", config=AWS_CONFIG),
            secrets=boto3.client("secretsmanager", config=AWS_CONFIG),
            states=boto3.client("stepfunctions", config=AWS_CONFIG),
        )


Connect = Callable[..., pymysql.Connection]


def connect(*, host: str, port: int, user: str, password: str, database: str, ca_bundle: str) -> pymysql.Connection:
    """TLS always, chain and host name verified (as lambda_handlers/employee/db.py): RDS refuses plaintext."""
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        charset="utf8mb4",
        ssl=context,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        autocommit=True,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _time(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _describe(rds, instance_id: str) -> dict | None:
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "DBInstanceNotFound":
            return None
        raise


def _is_drill(instance: dict, settings: Settings) -> bool:
    tags = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
    return tags.get(settings.tag_key) == settings.prefix and instance["DBInstanceIdentifier"].startswith(
        settings.instance_prefix
    )


def _started(instance_id: str, settings: Settings) -> datetime | None:
    """When the run that named the instance started (start names it `<prefix>-drill-<yyyymmddhhmm>`)."""
    try:
        return datetime.strptime(instance_id.removeprefix(settings.instance_prefix), "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def _another_runs(instance: dict, settings: Settings, own: str | None, now: datetime) -> bool:
    """A drill instance of a run that may still be working on it: not this run's, and started within the deadline
    (a minute of slack for the name's whole minutes). Past it, that run's status step has given up."""
    instance_id = instance["DBInstanceIdentifier"]
    started = _started(instance_id, settings)
    return (
        instance_id != own
        and started is not None
        and (now - started).total_seconds() <= (settings.deadline_minutes + 1) * 60
    )


def _drill_instances(settings: Settings, rds) -> list[dict]:
    return [
        instance
        for page in rds.get_paginator("describe_db_instances").paginate()
        for instance in page["DBInstances"]
        if _is_drill(instance, settings)
    ]


def _drill_instance(state: dict, settings: Settings, rds) -> dict:
    drill = state.get("drill") or {}
    instance_id = drill.get("instance_id")
    if not instance_id:
        raise DrillError("no drill instance in the state: the start step did not run")
    instance = _describe(rds, instance_id)
    if instance is None:
        raise RestoreFailed(f"drill instance {instance_id} does not exist (deleted behind the drill's back?)")
    if not _is_drill(instance, settings):
        raise DrillError(f"{instance_id} is not tagged {settings.tag_key}={settings.prefix}: the drill leaves it alone")
    return instance


# ---- steps ------------------------------------------------------------------------------------------------------


def latest_recovery_point(backup, vault: str, resource_arn: str) -> dict:
    """The newest COMPLETED recovery point of `resource_arn` in `vault` (partial or expired ones restore nothing)."""
    points: list[dict] = []
    token = None
    while True:
        kwargs = {"BackupVaultName": vault, "ByResourceArn": resource_arn}
        if token:
            kwargs["NextToken"] = token
        page = backup.list_recovery_points_by_backup_vault(**kwargs)
        points += [p for p in page.get("RecoveryPoints", []) if p.get("Status") == "COMPLETED"]
        token = page.get("NextToken")
        if not token:
            break
    if not points:
        raise NoRecoveryPoint(f"no COMPLETED recovery point of {resource_arn} in backup vault {vault}")
    return max(points, key=lambda p: _time(p["CreationDate"]))


def start(state: dict, settings: Settings, clients: Clients, now: datetime, connector: Connect) -> dict:
    live = _describe(clients.rds, settings.live_instance)
    if live is None:
        raise DrillError(f"live instance {settings.live_instance} not found")
    if live["DBInstanceStatus"] in LIVE_ASLEEP_STATES:
        raise LiveDatabaseDown(
            f"live instance {settings.live_instance} is {live['DBInstanceStatus']}: the drill judges the copy by "
            "its row counts, so this drill restored nothing (a stage with a night schedule: wake it first, then re-run)"
        )
    point = latest_recovery_point(clients.backup, settings.vault, live["DBInstanceArn"])
    # An RDS recovery point's ARN is the snapshot's ARN (arn:...:snapshot:awsbackup:job-...).
    snapshot = point["RecoveryPointArn"]
    instance_id = f"{settings.instance_prefix}{now:%Y%m%d%H%M}"
    # One drill at a time: a second one (started by hand during the scheduled run) stops before it restores.
    busy = [
        i["DBInstanceIdentifier"]
        for i in _drill_instances(settings, clients.rds)
        if _another_runs(i, settings, instance_id, now)
    ]
    if busy:
        raise DrillError(
            f"another drill is still running ({', '.join(busy)}): one drill at a time, this one restored nothing"
        )
    # Nearest in time to the recovery point, and live is awake now (it may be stopped by the time the copy is).
    live_counts = _live_counts(settings, clients, connector)
    request = {
        "DBInstanceIdentifier": instance_id,
        "DBSnapshotIdentifier": snapshot,
        "DBInstanceClass": settings.instance_class,
        # The live instance's isolated subnets and parameters (require_secure_transport): the same rules as live.
        "DBSubnetGroupName": live["DBSubnetGroup"]["DBSubnetGroupName"],
        "DBParameterGroupName": live["DBParameterGroups"][0]["DBParameterGroupName"],
        "VpcSecurityGroupIds": [settings.security_group],
        "MultiAZ": False,
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "CopyTagsToSnapshot": False,
        "CACertificateIdentifier": CA_CERTIFICATE,
        # Only this tag (explicit tags replace the snapshot's): the backup plan's selection tags must not make the
        # copy a backup source, and cleanup finds it by this tag.
        "Tags": [{"Key": settings.tag_key, "Value": settings.prefix}],
    }
    try:
        clients.rds.restore_db_instance_from_db_snapshot(**request)
    except ClientError as exc:
        # A retried invocation of this step (same minute) finds its own restore already under way.
        existing = _describe(clients.rds, instance_id)
        if (
            exc.response["Error"]["Code"] != "DBInstanceAlreadyExists"
            or not existing
            or not _is_drill(existing, settings)
        ):
            raise
    created = _time(point["CreationDate"])
    logger.info("restore requested", extra={"instance": instance_id, "recovery_point": snapshot})
    return {
        "instance_id": instance_id,
        "recovery_point_arn": snapshot,
        "recovery_point_time": _iso(created),
        "restore_requested": _iso(now),
        "recovery_point_age_hours": round((now - created).total_seconds() / 3600, 3),
        "live_counts": live_counts,
        "live_counted_at": _iso(now),
    }


def status(state: dict, settings: Settings, clients: Clients, now: datetime, started: datetime) -> dict:
    instance = _drill_instance(state, settings, clients.rds)
    current = instance["DBInstanceStatus"]
    if current in FAILED_STATES:
        raise RestoreFailed(f"drill instance {instance['DBInstanceIdentifier']} is {current}")
    elapsed = (now - started).total_seconds() / 60
    if elapsed > settings.deadline_minutes:
        raise DrillTimedOut(
            f"drill instance {instance['DBInstanceIdentifier']} still {current} after {elapsed:.0f} minutes "
            f"(deadline {settings.deadline_minutes:.0f}; the rest of the timeout is for cleanup)"
        )
    # Right after a modify, the status may still read `available` with the change pending.
    pending = instance.get("PendingModifiedValues") or {}
    return {"ready": current == "available" and not pending, "status": current}


def set_password(state: dict, settings: Settings, clients: Clients) -> dict:
    instance = _drill_instance(state, settings, clients.rds)
    password = clients.secrets.get_secret_value(SecretId=settings.drill_secret)["SecretString"]
    clients.rds.modify_db_instance(
        DBInstanceIdentifier=instance["DBInstanceIdentifier"], MasterUserPassword=password, ApplyImmediately=True
    )
    return {"instance_id": instance["DBInstanceIdentifier"]}


def _open(connector: Connect, what: str, **kwargs) -> pymysql.Connection:
    try:
        return connector(**kwargs)
    except pymysql.err.OperationalError as exc:
        raise DatabaseUnreachable(f"{what} ({kwargs['host']}): {exc}") from exc


def _live_counts(settings: Settings, clients: Clients, connector: Connect) -> dict[str, int | None]:
    """Live's row counts, read as the employee service's MySQL user."""
    secret = json.loads(clients.secrets.get_secret_value(SecretId=settings.live_secret)["SecretString"])
    return _counts(
        connector,
        "live database",
        host=secret["host"],
        port=int(secret.get("port", 3306)),
        user=secret["username"],
        password=secret["password"],
        database=settings.database,
        ca_bundle=settings.ca_bundle,
    )


def _counts(connector: Connect, what: str, **kwargs) -> dict[str, int | None]:
    conn = _open(connector, what, **kwargs)
    try:
        return table_counts(conn)
    finally:
        conn.close()


def table_counts(conn: pymysql.Connection) -> dict[str, int | None]:
    """Row count of each of TABLES in the connection's schema; None for a table that does not exist."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        present = {row[0] for row in cur.fetchall()}
        counts: dict[str, int | None] = {}
        for table in TABLES:
            if table in present:
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")  # noqa: S608 - names from TABLES only
                counts[table] = cur.fetchone()[0]
            else:
                counts[table] = None
    return counts


def plausible(restored: int, live: int, tolerance_pct: float) -> bool:
    """The recovery point is older than live: a little smaller is normal (rows added since), much larger is not
    (rows vanished from live, or the copy is of something else). Rounded outwards to whole rows."""
    # Rounded to 6 places first: 100 * 1.1 is 110.00000000000001 in floating point, not 111 rows.
    low, high = (round(live * (100 + sign * tolerance_pct) / 100, 6) for sign in (-1, 1))
    return math.floor(low) <= restored <= math.ceil(high)


def compare(restored: dict[str, int | None], live: dict[str, int | None], tolerance_pct: float) -> list[str]:
    problems = []
    for table in TABLES:
        if restored[table] is None:
            problems.append(f"table {table} is missing from the restored copy")
        elif live[table] is None:
            problems.append(f"table {table} is missing from the live database")
        elif not plausible(restored[table], live[table], tolerance_pct):
            problems.append(
                f"table {table}: {restored[table]} rows restored against {live[table]} live, "
                f"outside ±{tolerance_pct:g}%"
            )
    return problems


def check(state: dict, settings: Settings, clients: Clients, now: datetime, connector: Connect) -> dict:
    instance = _drill_instance(state, settings, clients.rds)
    endpoint = instance["Endpoint"]
    live = state["drill"].get("live_counts")
    if live is None:
        raise DrillError("no live row counts in the state: the start step did not count them")
    drill_password = clients.secrets.get_secret_value(SecretId=settings.drill_secret)["SecretString"]
    restored = _counts(
        connector,
        "restored copy",
        host=endpoint["Address"],
        port=int(endpoint["Port"]),
        user=instance["MasterUsername"],
        password=drill_password,
        database=settings.database,
        ca_bundle=settings.ca_bundle,
    )
    counts = {table: {"restored": restored[table], "live": live[table]} for table in TABLES}
    problems = compare(restored, live, settings.tolerance_pct)
    if problems:
        logger.error("restored copy failed the check", extra={"counts": counts})
        raise DrillCheckFailed("; ".join(problems))
    requested = _time(state["drill"]["restore_requested"])
    return {
        "tables": counts,
        "checked_at": _iso(now),
        "restore_minutes": round((now - requested).total_seconds() / 60, 2),
    }


def cleanup(state: dict, settings: Settings, clients: Clients, now: datetime) -> dict:
    """Deletes this run's instance and earlier runs' leftovers, never a running drill's; `remaining` lists those
    not yet gone."""
    own = (state.get("drill") or {}).get("instance_id")
    deleted, remaining = [], []
    for instance in _drill_instances(settings, clients.rds):
        if _another_runs(instance, settings, own, now):
            continue
        instance_id = instance["DBInstanceIdentifier"]
        remaining.append(instance_id)
        if instance["DBInstanceStatus"] == "deleting":
            continue
        try:
            clients.rds.delete_db_instance(
                DBInstanceIdentifier=instance_id, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            )
            deleted.append(instance_id)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "DBInstanceNotFound":
                remaining.remove(instance_id)
            elif code != "InvalidDBInstanceState":  # e.g. still creating: deleted on the next round
                raise
    if deleted:
        logger.info("deleting drill instances", extra={"instances": deleted})
    return {"deleted": deleted, "remaining": remaining, "done": not remaining}


def report(state: dict, succeeded: bool) -> dict:
    drill = state.get("drill") or {}
    metrics.add_metric(name="DrillSucceeded", unit=MetricUnit.Count, value=1 if succeeded else 0)
    if "recovery_point_age_hours" in drill:
        # Also on failure: an old recovery point is worth knowing whatever else went wrong.
        metrics.add_metric(
            name="RecoveryPointAgeHours", unit=MetricUnit.NoUnit, value=drill["recovery_point_age_hours"]
        )
    result = {"succeeded": succeeded, "recovery_point_age_hours": drill.get("recovery_point_age_hours")}
    if succeeded:
        minutes = state["check"]["restore_minutes"]
        metrics.add_metric(name="RestoreMinutes", unit=MetricUnit.NoUnit, value=minutes)
        result |= {"restore_minutes": minutes, "tables": state["check"]["tables"]}
        logger.info("restore drill passed", extra=result)
    else:
        error = state.get("error") or {}
        result |= {"error": error.get("Error"), "cause": _cause(error.get("Cause"))}
        logger.error("restore drill failed", extra=result)
    metrics.flush_metrics()
    return result


def heartbeat(settings: Settings, clients: Clients, now: datetime) -> dict:
    """Days since the last passed drill: a weekly drill that stops running (schedule gone, start refused) shows
    here, where a once-a-week result metric cannot (constructs_lib/observability/backup_alarms.py)."""
    page = clients.states.list_executions(
        stateMachineArn=settings.state_machine, statusFilter="SUCCEEDED", maxResults=1
    )
    executions = page.get("executions", [])  # newest first
    if executions:
        since, basis = _time(executions[0]["stopDate"]), "last passed drill"
    else:
        created = clients.states.describe_state_machine(stateMachineArn=settings.state_machine)["creationDate"]
        since, basis = _time(created), "state machine created (no drill has passed yet)"
    days = round((now - since).total_seconds() / 86400, 3)
    metrics.add_metric(name="DaysSinceLastDrill", unit=MetricUnit.NoUnit, value=days)
    metrics.flush_metrics()
    logger.info("days since the last passed drill", extra={"days": days, "since": _iso(since), "basis": basis})
    return {"days_since_last_drill": days, "since": _iso(since), "basis": basis}


def _cause(cause: str | None) -> str | None:
    """A Lambda error's Cause is JSON with errorMessage; keep the message."""
    if not cause:
        return cause
    try:
        return json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        return cause


def handler(
    event: dict,
    context,  # noqa: ARG001
    *,
    clients: Clients | None = None,
    connector: Connect = connect,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict:
    settings = Settings.from_env()
    clients = clients or Clients.default()
    step = event.get("step")
    state = event.get("state") or {}
    moment = now()
    logger.append_keys(step=step)
    if step == "start":
        return start(state, settings, clients, moment, connector)
    if step == "status":
        return status(state, settings, clients, moment, _time(event["started"]))
    if step == "set_password":
        return set_password(state, settings, clients)
    if step == "check":
        return check(state, settings, clients, moment, connector)
    if step == "cleanup":
        return cleanup(state, settings, clients, moment)
    if step == "report":
        return report(state, bool(event.get("succeeded")))
    if step == "heartbeat":
        return heartbeat(settings, clients, moment)
    raise UnknownStep(f"unknown step {step!r}")

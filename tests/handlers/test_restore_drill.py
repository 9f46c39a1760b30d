"""The restore drill's steps (issue 21), driven in the state machine's order, against moto's RDS, EC2 and Secrets
Manager and a real MariaDB for the check.

moto 5.2.5's AWS Backup has no recovery points, so ListRecoveryPointsByBackupVault is stubbed (Stubber) with
the live instance's snapshot as the recovery point (moto's snapshot names take no colon: `awsbackup-job-...`
stands in for AWS Backup's `awsbackup:job-...`). moto's instances are available at once; states RDS passes
through (creating, failed) are set on moto's backend.

"Live" and "restored" are two schemas on the test server with different row counts, each read by its own user:
the live one by the employee service's user from the live secret, the restored one by the snapshot's master
user with the drill secret's password. The connector sends each endpoint to its schema over verified TLS.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools import Metrics
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.rds.models import rds_backends

from tests.handlers.conftest import load_function, reset_old_database
from tests.support.aws import use_fake_credentials

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "restore_drill"
app = load_function(HANDLER_DIR).app  # imported as Lambda would (tests/handlers/conftest.py)

REGION = "ap-northeast-2"
TAG_KEY = "erp:restore-drill"
STATE_MACHINE = "arn:aws:states:ap-northeast-2:123456789012:stateMachine:erp-dev-restore-drill"
PREFIX = "erp-dev"
VAULT = "erp-dev-backup"
LIVE_ID = "erp-dev-database"
MASTER_USER = "drill_master"
LIVE_USER = "drill_reader"
LIVE_SCHEMA, RESTORED_SCHEMA = "drill_live", "drill_restored"
TOLERANCE_PCT = 10
DEADLINE_MINUTES = 100
# One row with only the NOT NULL columns, per table (the Hibernate schema: no foreign keys).
MINIMAL_ROW = {
    "employees": "(name, department, position) VALUES ('n', 'D', 'STAFF')",
    "attendance": "(employee_id, check_in_time) VALUES (1, '2025-03-05 09:00:00')",
    "leaves": "(employee_id, start_date, end_date, days) VALUES (1, '2025-04-01', '2025-04-01', 1)",
    "quests": "(title, reward_days, department, created_by) VALUES ('t', 1, 'D', 1)",
    "quest_progress": "(quest_id, employee_id) VALUES (1, 1)",
}
LIVE_ROWS = {"employees": 40, "attendance": 100, "leaves": 20, "quests": 10, "quest_progress": 0}
# Older than live (rows added since), inside ±10 %.
RESTORED_ROWS = {"employees": 38, "attendance": 91, "leaves": 20, "quests": 9, "quest_progress": 0}


def set_rows(server, schema: str, rows: dict[str, int]) -> None:
    with server.admin_connection(database=schema) as conn, conn.cursor() as cur:
        for table, count in rows.items():
            cur.execute(f"DELETE FROM {table}")
            for _ in range(count):
                cur.execute(f"INSERT INTO {table} {MINIMAL_ROW[table]}")


@pytest.fixture(scope="module")
def schemas(mariadb):
    """The two schemas and their users (passwords fixed for the module)."""
    passwords = {MASTER_USER: secrets.token_urlsafe(18), LIVE_USER: secrets.token_urlsafe(18)}
    for schema in (LIVE_SCHEMA, RESTORED_SCHEMA):
        reset_old_database(mariadb, schema)
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        for user, schema in ((MASTER_USER, RESTORED_SCHEMA), (LIVE_USER, LIVE_SCHEMA)):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (passwords[user],))
            cur.execute(f"GRANT SELECT ON `{schema}`.* TO '{user}'@'%'")
    return passwords


class Backup:
    """Stubbed AWS Backup: the recovery points one listing returns."""

    def __init__(self) -> None:
        self.client = boto3.client("backup", region_name=REGION)
        self.stub = Stubber(self.client)

    def lists(self, resource_arn: str, points: list[dict]) -> None:
        self.stub.add_response(
            "list_recovery_points_by_backup_vault",
            {"RecoveryPoints": points},
            {"BackupVaultName": VAULT, "ByResourceArn": resource_arn},
        )


def recovery_point(arn: str, created: datetime, status: str = "COMPLETED") -> dict:
    return {"RecoveryPointArn": arn, "CreationDate": created, "Status": status, "ResourceType": "RDS"}


class Aws:
    def __init__(self, passwords: dict[str, str]) -> None:
        self.rds = boto3.client("rds", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        self.secrets = boto3.client("secretsmanager", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
                "SubnetId"
            ]
            for i, az in enumerate("ab")
        ]
        self.drill_group = ec2.create_security_group(GroupName="drill", Description="drill", VpcId=vpc)["GroupId"]
        self.rds.create_db_subnet_group(
            DBSubnetGroupName="isolated", DBSubnetGroupDescription="isolated", SubnetIds=subnets
        )
        self.rds.create_db_parameter_group(
            DBParameterGroupName="tls-only", DBParameterGroupFamily="mysql8.4", Description="TLS only"
        )
        live = self.rds.create_db_instance(
            DBInstanceIdentifier=LIVE_ID,
            DBInstanceClass="db.t4g.small",
            Engine="mysql",
            MasterUsername=MASTER_USER,
            MasterUserPassword="the-password-of-that-day",  # pragma: allowlist secret (rotated since: the drill sets its own)
            AllocatedStorage=20,
            DBSubnetGroupName="isolated",
            DBParameterGroupName="tls-only",
            StorageEncrypted=True,
            Tags=[{"Key": "backup", "Value": "erp-dev"}],
        )["DBInstance"]
        self.live_arn = live["DBInstanceArn"]
        self.snapshot_arn = self.rds.create_db_snapshot(
            DBInstanceIdentifier=LIVE_ID, DBSnapshotIdentifier="awsbackup-job-0001"
        )["DBSnapshot"]["DBSnapshotArn"]
        self.drill_secret = self.secrets.create_secret(
            Name="erp/dev/restore-drill", SecretString=passwords[MASTER_USER]
        )["ARN"]
        live_secret = {
            "username": LIVE_USER,
            "password": passwords[LIVE_USER],
            "host": live["Endpoint"]["Address"],
            "port": 3306,
            "dbname": "erp",
            "engine": "mysql",
        }
        self.live_secret = self.secrets.create_secret(
            Name="erp/dev/mysql/employee_app", SecretString=json.dumps(live_secret)
        )["ARN"]
        self.backup = Backup()
        self.states = boto3.client("stepfunctions", region_name=REGION)
        self.clients = app.Clients(rds=self.rds, backup=self.backup.client, secrets=self.secrets, states=self.states)

    def instances(self) -> dict[str, dict]:
        return {i["DBInstanceIdentifier"]: i for i in self.rds.describe_db_instances()["DBInstances"]}

    def restore(self, instance_id: str, tag_value: str | None = PREFIX) -> None:
        """An instance as an earlier run (or someone else) left it."""
        tags = [{"Key": TAG_KEY, "Value": tag_value}] if tag_value else []
        self.rds.restore_db_instance_from_db_snapshot(
            DBInstanceIdentifier=instance_id, DBSnapshotIdentifier=self.snapshot_arn, Tags=tags
        )

    def set_status(self, instance_id: str, status: str) -> None:
        rds_backends[DEFAULT_ACCOUNT_ID][REGION].databases[instance_id].status = status


@pytest.fixture
def aws(monkeypatch, mariadb, schemas):
    use_fake_credentials(monkeypatch, REGION)
    with mock_aws():
        env = Aws(schemas)
        for name, value in {
            "PREFIX": PREFIX,
            "TAG_KEY": TAG_KEY,
            "STATE_MACHINE_ARN": STATE_MACHINE,
            "VAULT_NAME": VAULT,
            "DB_INSTANCE_ID": LIVE_ID,
            "DB_NAME": "erp",
            "DB_INSTANCE_CLASS": "db.t4g.micro",
            "DRILL_SECURITY_GROUP_ID": env.drill_group,
            "DRILL_SECRET_ARN": env.drill_secret,
            "LIVE_SECRET_ARN": env.live_secret,
            "ROW_COUNT_TOLERANCE_PCT": str(TOLERANCE_PCT),
            "DEADLINE_MINUTES": str(DEADLINE_MINUTES),
            "DB_CA_BUNDLE": str(mariadb.ca_file),
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(app, "metrics", Metrics(namespace="erp/dev/backup", service="restore-drill"))
        set_rows(mariadb, LIVE_SCHEMA, LIVE_ROWS)
        set_rows(mariadb, RESTORED_SCHEMA, RESTORED_ROWS)
        yield env


@pytest.fixture
def connector(mariadb):
    """Every endpoint to the test server over verified TLS (its certificate names localhost), each to its schema;
    records which endpoint was opened as which user. A host in `down` refuses connections (a stopped instance)."""
    opened, down = [], set()

    def connect(**kwargs):
        schema = RESTORED_SCHEMA if kwargs["host"].startswith(f"{PREFIX}-drill-") else LIVE_SCHEMA
        host = kwargs["host"].split(".")[0]
        opened.append((host, kwargs["user"], kwargs["database"]))
        port = 1 if host in down else mariadb.port
        return app.connect(**kwargs | {"host": "localhost", "port": port, "database": schema})

    connect.opened, connect.down = opened, down
    return connect


def invoke(step: str, state: dict, connector, clients, **extra) -> dict:
    event = {"step": step, "state": state, "started": extra.pop("started", datetime.now(UTC).isoformat()), **extra}
    return app.handler(event, None, clients=clients, connector=connector)


def drive(aws: Aws, connector, after_start: Callable[[], None] = lambda: None) -> tuple[dict, list[str]]:
    """The state machine's path (constructs_lib/data/restore_drill.py): start, wait for the instance, set the
    password, wait again, check, clean up until nothing is left, report; any error -> cleanup, report 0, fail.
    Returns (the final state, the steps run)."""
    state: dict = {}
    steps: list[str] = []

    def run(step: str, **extra) -> dict:
        steps.append(step)
        return invoke(step, state, connector, aws.clients, **extra)

    def until_gone() -> None:
        while not (cleanup := run("cleanup"))["done"]:
            assert len(steps) < 20, "cleanup never finished"
        state["cleanup"] = cleanup

    def until_ready() -> None:
        while not run("status")["ready"]:
            assert len(steps) < 20, "the instance never became ready"

    aws.backup.stub.activate()
    try:
        state["drill"] = run("start")
        after_start()
        until_ready()
        run("set_password")
        until_ready()
        state["check"] = run("check")
        until_gone()
        state["report"] = run("report", succeeded=True)
    except app.DrillError as exc:
        state["error"] = {"Error": type(exc).__name__, "Cause": json.dumps({"errorMessage": str(exc)})}
        until_gone()
        state["report"] = run("report", succeeded=False)
    except Exception as exc:  # botocore/moto errors: what Step Functions would catch as well
        state["error"] = {"Error": type(exc).__name__, "Cause": str(exc)}
        until_gone()
        state["report"] = run("report", succeeded=False)
    finally:
        aws.backup.stub.deactivate()
    aws.backup.stub.assert_no_pending_responses()
    return state, steps


def written_metrics(capsys) -> dict[str, float]:
    written = {}
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if "_aws" in record:
            (directive,) = record["_aws"]["CloudWatchMetrics"]
            assert directive["Namespace"] == "erp/dev/backup"
            assert directive["Dimensions"] == [["service"]]
            for metric in directive["Metrics"]:
                (written[metric["Name"]],) = record[metric["Name"]]  # EMF: one value per report
    return written


def test_a_good_recovery_point_restores_checks_reports_and_leaves_nothing_behind(aws, connector, capsys):
    created = datetime.now(UTC) - timedelta(hours=20)
    aws.backup.lists(
        aws.live_arn,
        [
            recovery_point(
                "arn:aws:rds:ap-northeast-2:123456789012:snapshot:awsbackup-job-old", created - timedelta(days=1)
            ),
            recovery_point(aws.snapshot_arn, created),
            # Newer, but not usable.
            recovery_point(
                "arn:aws:rds:ap-northeast-2:123456789012:snapshot:awsbackup-job-part", datetime.now(UTC), "PARTIAL"
            ),
        ],
    )
    state, steps = drive(aws, connector)

    assert steps == ["start", "status", "set_password", "status", "check", "cleanup", "cleanup", "report"]
    assert "error" not in state
    drill = state["drill"]
    assert drill["recovery_point_arn"] == aws.snapshot_arn
    assert drill["instance_id"].startswith(f"{PREFIX}-drill-")
    assert 19.9 < drill["recovery_point_age_hours"] < 20.1
    assert state["check"]["tables"] == {
        table: {"restored": RESTORED_ROWS[table], "live": LIVE_ROWS[table]} for table in app.TABLES
    }
    # The restored copy was read as the snapshot's master user, live as the employee service's user.
    restored_host, live_host = drill["instance_id"], LIVE_ID
    assert (restored_host, MASTER_USER, "erp") in connector.opened
    assert (live_host, LIVE_USER, "erp") in connector.opened
    assert state["cleanup"]["remaining"] == []
    assert set(aws.instances()) == {LIVE_ID}
    written = written_metrics(capsys)
    assert written["DrillSucceeded"] == 1
    assert 19.9 < written["RecoveryPointAgeHours"] < 20.1
    assert 0 <= written["RestoreMinutes"] < 5
    assert state["report"]["restore_minutes"] == written["RestoreMinutes"]


def test_the_restore_request_is_the_isolated_private_single_az_copy_the_construct_promises(aws, connector):
    sent = []
    aws.rds.meta.events.register(
        "provide-client-params.rds.RestoreDBInstanceFromDBSnapshot", lambda params, **_: sent.append(dict(params))
    )
    aws.backup.lists(aws.live_arn, [recovery_point(aws.snapshot_arn, datetime.now(UTC))])
    aws.backup.stub.activate()
    drill = invoke("start", {}, connector, aws.clients)
    aws.backup.stub.deactivate()
    ((request,),) = [sent]
    assert request == {
        "DBInstanceIdentifier": drill["instance_id"],
        "DBSnapshotIdentifier": aws.snapshot_arn,
        "DBInstanceClass": "db.t4g.micro",
        "DBSubnetGroupName": "isolated",  # the live instance's (isolated subnets)
        "DBParameterGroupName": "tls-only",
        "VpcSecurityGroupIds": [aws.drill_group],
        "MultiAZ": False,
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "CopyTagsToSnapshot": False,
        "CACertificateIdentifier": "rds-ca-rsa2048-g1",
        # Only the drill's tag: the live instance's backup-selection tag must not make the copy a backup source.
        "Tags": [{"Key": TAG_KEY, "Value": PREFIX}],
    }
    instance = aws.instances()[drill["instance_id"]]
    assert instance["TagList"] == [{"Key": TAG_KEY, "Value": PREFIX}]


def drop_quest_progress(server) -> str:
    with server.admin_connection(database=RESTORED_SCHEMA) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE quest_progress")
    return "table quest_progress is missing from the restored copy"


def double_attendance(server) -> str:
    """Twice the live count: rows vanished from live, or the copy is of something else."""
    set_rows(server, RESTORED_SCHEMA, {"attendance": 2 * LIVE_ROWS["attendance"]})
    return "table attendance: 200 rows restored against 100 live, outside ±10%"


@pytest.mark.parametrize("damage", [drop_quest_progress, double_attendance])
def test_a_copy_that_fails_the_check_is_still_deleted_and_reported_as_failed(aws, connector, capsys, mariadb, damage):
    message = damage(mariadb)
    aws.backup.lists(aws.live_arn, [recovery_point(aws.snapshot_arn, datetime.now(UTC) - timedelta(hours=3))])
    try:
        state, steps = drive(aws, connector)
    finally:
        reset_old_database(mariadb, RESTORED_SCHEMA)

    assert steps[-4:] == ["check", "cleanup", "cleanup", "report"]
    assert state["error"]["Error"] == "DrillCheckFailed"
    assert state["report"]["error"] == "DrillCheckFailed"
    assert message in state["report"]["cause"]
    assert set(aws.instances()) == {LIVE_ID}
    written = written_metrics(capsys)
    assert written["DrillSucceeded"] == 0
    assert 2.9 < written["RecoveryPointAgeHours"] < 3.1
    assert "RestoreMinutes" not in written


@pytest.mark.parametrize(
    ("restored", "live", "ok"),
    [(90, 100, True), (89, 100, False), (110, 100, True), (111, 100, False), (0, 0, True), (1, 0, False), (2, 3, True)],
)
def test_plausible_counts_lie_within_the_tolerance_rounded_outwards_to_whole_rows(restored, live, ok):
    assert app.plausible(restored, live, 10) is ok


def test_a_failed_restore_request_still_deletes_leftovers_of_earlier_runs_and_only_those(aws, connector, capsys):
    aws.restore(f"{PREFIX}-drill-202611280300")  # an earlier run whose cleanup failed
    aws.restore(f"{PREFIX}-drill-202611290300", tag_value="erp-prod")  # not this environment's
    aws.restore("erp-dev-drill-copy-by-hand", tag_value=None)  # the name, but not the tag
    # The recovery point names a snapshot that no longer exists: the restore call fails.
    gone = "arn:aws:rds:ap-northeast-2:123456789012:snapshot:awsbackup-job-expired"
    aws.backup.lists(aws.live_arn, [recovery_point(gone, datetime.now(UTC))])

    state, steps = drive(aws, connector)

    assert steps == ["start", "cleanup", "cleanup", "report"]
    assert "DBSnapshotNotFound" in state["error"]["Cause"]
    assert state["cleanup"]["remaining"] == []
    assert set(aws.instances()) == {LIVE_ID, f"{PREFIX}-drill-202611290300", "erp-dev-drill-copy-by-hand"}
    assert written_metrics(capsys) == {"DrillSucceeded": 0}


def drill_id(minutes_ago: float) -> str:
    return f"{PREFIX}-drill-{datetime.now(UTC) - timedelta(minutes=minutes_ago):%Y%m%d%H%M}"


def test_a_second_drill_refuses_to_run_beside_a_running_one_and_leaves_its_instance_alone(aws, connector, capsys):
    running = drill_id(20)  # the scheduled drill, restoring for 20 minutes; someone starts one by hand
    aws.restore(running)
    aws.backup.lists(aws.live_arn, [recovery_point(aws.snapshot_arn, datetime.now(UTC) - timedelta(hours=3))])

    state, steps = drive(aws, connector)

    assert steps == ["start", "cleanup", "report"]
    assert state["error"]["Error"] == "DrillError"
    assert f"another drill is still running ({running})" in state["error"]["Cause"]
    assert set(aws.instances()) == {LIVE_ID, running}
    assert aws.instances()[running]["DBInstanceStatus"] != "deleting"
    assert written_metrics(capsys) == {"DrillSucceeded": 0}


@pytest.mark.parametrize("live_status", ["stopped", "stopping", "starting"])
def test_a_drill_while_the_night_schedule_has_stopped_the_live_database_restores_nothing(
    aws, connector, capsys, live_status
):
    aws.set_status(LIVE_ID, live_status)  # no recovery point listed: the start must stop before it looks for one

    state, steps = drive(aws, connector)

    assert steps == ["start", "cleanup", "report"]
    assert state["error"]["Error"] == "LiveDatabaseDown"
    assert f"live instance {LIVE_ID} is {live_status}" in state["report"]["cause"]
    assert "wake it first" in state["report"]["cause"]
    assert set(aws.instances()) == {LIVE_ID}
    assert written_metrics(capsys) == {"DrillSucceeded": 0}


def test_a_live_database_the_night_schedule_stops_during_the_drill_does_not_fail_it(aws, connector, capsys):
    """Live's rows are counted at start, while it is awake: the check reads only the copy."""
    aws.backup.lists(aws.live_arn, [recovery_point(aws.snapshot_arn, datetime.now(UTC) - timedelta(hours=2))])

    def night_falls() -> None:
        aws.set_status(LIVE_ID, "stopped")
        connector.down.add(LIVE_ID)

    state, steps = drive(aws, connector, after_start=night_falls)

    assert "error" not in state, state["error"]
    assert steps[-4:] == ["check", "cleanup", "cleanup", "report"]
    assert state["check"]["tables"] == {
        table: {"restored": RESTORED_ROWS[table], "live": LIVE_ROWS[table]} for table in app.TABLES
    }
    assert [host for host, _, _ in connector.opened].count(LIVE_ID) == 1  # at start only
    assert written_metrics(capsys)["DrillSucceeded"] == 1


def test_a_check_without_live_counts_from_start_fails_instead_of_passing_unjudged(aws, connector):
    instance_id = f"{PREFIX}-drill-202612050300"
    aws.restore(instance_id)
    state = {"drill": {"instance_id": instance_id, "restore_requested": "2026-12-05T03:00:00+00:00"}}
    with pytest.raises(app.DrillError, match="no live row counts"):
        invoke("check", state, connector, aws.clients)


def test_cleanup_deletes_its_own_instance_and_old_leftovers_but_not_a_running_drills(aws, connector):
    own, young, leftover = drill_id(30), drill_id(10), drill_id(DEADLINE_MINUTES + 2)
    for instance_id in (own, young, leftover):
        aws.restore(instance_id)
    result = invoke("cleanup", {"drill": {"instance_id": own}}, connector, aws.clients)
    assert sorted(result["deleted"]) == sorted([own, leftover])
    assert young not in result["remaining"]
    # Without an instance of its own (its start failed) it still clears the old leftover only.
    aws.restore(leftover2 := f"{PREFIX}-drill-202601010000")
    assert invoke("cleanup", {}, connector, aws.clients)["deleted"] == [leftover2]
    assert aws.instances()[young]["DBInstanceStatus"] != "deleting"


@pytest.mark.parametrize(
    "points",
    [
        [],
        [
            recovery_point(
                "arn:aws:rds:ap-northeast-2:123456789012:snapshot:awsbackup-job-x", datetime.now(UTC), "PARTIAL"
            )
        ],
    ],
    ids=["none", "none-completed"],
)
def test_no_completed_recovery_point_fails_the_drill_naming_the_vault(aws, connector, capsys, points):
    aws.backup.lists(aws.live_arn, points)
    state, steps = drive(aws, connector)
    assert steps == ["start", "cleanup", "report"]
    assert state["error"]["Error"] == "NoRecoveryPoint"
    assert f"no COMPLETED recovery point of {aws.live_arn} in backup vault {VAULT}" in state["report"]["cause"]
    assert written_metrics(capsys) == {"DrillSucceeded": 0}


def test_status_waits_while_creating_and_fails_a_broken_restore_or_one_past_its_deadline(aws, connector):
    aws.restore(f"{PREFIX}-drill-202612050300")
    state = {"drill": {"instance_id": f"{PREFIX}-drill-202612050300"}}
    aws.set_status(f"{PREFIX}-drill-202612050300", "creating")
    assert invoke("status", state, connector, aws.clients) == {"ready": False, "status": "creating"}
    late = (datetime.now(UTC) - timedelta(minutes=DEADLINE_MINUTES + 1)).isoformat()
    with pytest.raises(app.DrillTimedOut, match=f"still creating after {DEADLINE_MINUTES + 1} minutes"):
        invoke("status", state, connector, aws.clients, started=late)
    aws.set_status(f"{PREFIX}-drill-202612050300", "incompatible-restore")
    with pytest.raises(app.RestoreFailed, match="is incompatible-restore"):
        invoke("status", state, connector, aws.clients)


def test_the_steps_touch_no_instance_without_the_drill_tag(aws, connector):
    state = {"drill": {"instance_id": LIVE_ID}}
    for step in ("status", "set_password", "check"):
        with pytest.raises(app.DrillError, match="is not tagged erp:restore-drill=erp-dev"):
            invoke(step, state, connector, aws.clients)
    assert invoke("cleanup", {}, connector, aws.clients) == {"deleted": [], "remaining": [], "done": True}
    assert set(aws.instances()) == {LIVE_ID}


def test_an_unreachable_copy_is_the_retryable_error(aws, mariadb):
    aws.restore(f"{PREFIX}-drill-202612050300")
    state = {
        "drill": {
            "instance_id": f"{PREFIX}-drill-202612050300",
            "restore_requested": "2026-12-05T03:00:00+00:00",
            "live_counts": LIVE_ROWS,
        }
    }

    def refused(**kwargs):
        return app.connect(**kwargs | {"host": "127.0.0.1", "port": 1})

    with pytest.raises(app.DatabaseUnreachable, match="restored copy"):
        invoke("check", state, refused, aws.clients)


def test_an_unknown_step_is_an_error(aws, connector):
    with pytest.raises(app.UnknownStep):
        invoke("restore-everything", {}, connector, aws.clients)


@pytest.mark.parametrize(
    ("executions", "created", "days", "basis"),
    [
        # The newest passed execution ended 8.5 days ago: a weekly run was missed.
        ([{"stopDate": timedelta(days=8, hours=12)}], None, 8.5, "last passed drill"),
        # None has passed yet: counted from the state machine's creation.
        ([], timedelta(days=2), 2.0, "state machine created (no drill has passed yet)"),
    ],
    ids=["last-passed", "never-passed"],
)
def test_the_heartbeat_reports_days_since_the_last_passed_drill(
    aws, connector, capsys, executions, created, days, basis
):
    now = datetime.now(UTC)
    stub = Stubber(aws.states)
    listed = [
        {
            "executionArn": f"{STATE_MACHINE.replace(':stateMachine:', ':execution:')}:run",
            "stateMachineArn": STATE_MACHINE,
            "name": "run",
            "status": "SUCCEEDED",
            "startDate": now - e["stopDate"] - timedelta(minutes=30),
            "stopDate": now - e["stopDate"],
        }
        for e in executions
    ]
    stub.add_response(
        "list_executions",
        {"executions": listed},
        {"stateMachineArn": STATE_MACHINE, "statusFilter": "SUCCEEDED", "maxResults": 1},
    )
    if created is not None:
        stub.add_response(
            "describe_state_machine",
            {
                "stateMachineArn": STATE_MACHINE,
                "name": "erp-dev-restore-drill",
                "definition": "{}",
                "roleArn": "arn:aws:iam::123456789012:role/drill",
                "type": "STANDARD",
                "creationDate": now - created,
            },
            {"stateMachineArn": STATE_MACHINE},
        )
    with stub:
        result = app.handler({"step": "heartbeat"}, None, clients=aws.clients, connector=connector, now=lambda: now)
    stub.assert_no_pending_responses()
    assert result["basis"] == basis
    assert written_metrics(capsys) == {"DaysSinceLastDrill": pytest.approx(days, abs=0.001)}

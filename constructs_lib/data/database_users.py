"""Schema migrations and one MySQL user per consumer, applied once per deploy after the database.

Each consumer (a Lambda, later each EKS service that uses MySQL) gets its own user with the
privileges it needs on the application schema, DML (SELECT/INSERT/UPDATE/DELETE) or DDL, and
its own generated secret `<prefix>/<consumer>` in the RDS secret shape (username, password,
host, port, dbname, engine). With rotation on, each secret rotates with the multi-user
strategy: the rotation function alternates between `<consumer>` and `<consumer>_clone`, so
the previous password keeps working until the next rotation and no caller is locked out.

The migration function (lambda_handlers/db_migrate) connects with the master secret (the only
DDL-capable credentials), applies the yoyo migrations, then creates/aligns the users. A CDK
Trigger invokes it during the deploy, after the instance and the secrets exist and before any
rotation schedule (the master's included) exists; an error fails the deploy. It runs again
whenever its code or its consumer list changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from constructs_lib.common.deploy_trigger import deploy_trigger
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import retain_fixed_name
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.security_groups import lambda_security_group
from constructs_lib.data.database import ErpDatabase

MIGRATE_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "db_migrate"
PRIVILEGE_LEVELS = ("DML", "DDL")
CONSUMER_NAME = re.compile(r"[a-z][a-z0-9_]{0,25}")  # + "_clone" fits MySQL's 32-character user names


def db_user_name(service_name: str) -> str:
    """A service's MySQL user: its name with `_` for `-`, short enough for `<user>_clone` (multi-user rotation)."""
    name = service_name.replace("-", "_")[:26]
    if not CONSUMER_NAME.fullmatch(name):
        raise ValueError(f"services[{service_name}]: no valid MySQL user name can be derived from it")
    return name


class DatabaseUsers(Construct):
    """Migrations + per-consumer users/secrets for one database. ``add_consumer`` adds more."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        database: ErpDatabase,
        vpc: ec2.IVpc,
        database_name: str,
        secret_prefix: str,
        consumers: dict[str, str],
        rotation_days: int | None,
        business_timezone: str,
        log_retention_days: int,
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        self._database = database
        self._database_name = database_name
        self._secret_prefix = secret_prefix
        self._rotation_days = rotation_days
        self._production = production
        self._consumers: dict[str, tuple[str, secretsmanager.ISecret]] = {}

        self.security_group = lambda_security_group(
            self,
            "MigratorSecurityGroup",
            vpc=vpc,
            description="DB migration Lambda: HTTPS out (Secrets Manager) and MySQL to the database only",
        )
        self.migrator = PythonFunction(
            self,
            "Migrator",
            description="Schema migrations (yoyo) and per-consumer MySQL users; run by a Trigger on deploy",
            entry=MIGRATE_DIR,
            handler="app.handler",
            environment={
                "MASTER_SECRET_ARN": database.secret.secret_arn,
                "DB_NAME": database_name,
                "DB_TLS": "true",
                "CONSUMERS": "{}",  # rewritten by add_consumer
                # The calendar day of existing check-ins (one per employee and day) when the migration backfills it.
                "BUSINESS_TIMEZONE": business_timezone,
            },
            memory_mb=256,
            timeout=Duration.minutes(5),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.security_group,
            log_retention_days=log_retention_days,
            production=production,
        )
        self.function = self.migrator.function
        database.secret.grant_read(self.function)
        database.allow_from(self.security_group, "DB migration Lambda")  # also opens the migrator's egress

        instance = database.instance
        self.trigger = deploy_trigger(
            self,
            "Migrate",
            handler=self.function,
            # The instance, its master secret, the secret's attachment (host and port) and the security group
            # with the migrator's ingress rule: named one by one, not the instance construct, whose subtree also
            # holds the master secret's rotation schedule (issue 18 item 4, below).
            execute_after=[
                instance.node.default_child,
                instance.node.find_child("Secret").node.default_child,
                database.secret.node.default_child,
                database.security_group,
            ],
            timeout=Duration.minutes(6),
            log_retention_days=log_retention_days,
            production=production,
        )
        # A new rotation schedule rotates at once (RotateImmediatelyOnUpdate defaults to true). Rotating the master
        # password while the migration runs breaks its next connection; the failed create then rolls back into a
        # deletion-protected instance (ROLLBACK_FAILED). So the master's schedule waits for the Trigger, like the
        # consumers' schedules in add_consumer.
        for schedule in instance.node.find_all():
            if isinstance(schedule, secretsmanager.RotationSchedule):
                schedule.node.add_dependency(self.trigger)
        for name, level in consumers.items():
            self.add_consumer(name, level)

    def add_consumer(self, name: str, privileges: str) -> secretsmanager.ISecret:
        """A MySQL user `name` with DML or DDL privileges on the schema; its secret."""
        if not CONSUMER_NAME.fullmatch(name):
            raise ValueError(f"{self.node.path}: consumer {name!r} must match {CONSUMER_NAME.pattern}")
        if privileges not in PRIVILEGE_LEVELS:
            raise ValueError(f"{self.node.path}: consumer {name!r} privileges must be one of {PRIVILEGE_LEVELS}")
        if name in self._consumers:
            raise ValueError(f"{self.node.path}: consumer {name!r} added twice")
        secret = rds.DatabaseSecret(
            self,
            f"Secret-{name}",
            username=name,
            secret_name=f"{self._secret_prefix}/{name}",
            master_secret=self._database.secret,  # the multi-user rotation logs in as master to alternate users
            dbname=self._database_name,
        )
        secret.apply_removal_policy(retain_fixed_name(self._production))
        attached = secret.attach(self._database.instance)  # adds host, port, engine to the secret
        if self._rotation_days:
            self._database.instance.add_rotation_multi_user(
                f"Rotation-{name}", secret=attached, automatically_after=Duration.days(self._rotation_days)
            )
        else:
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "Non-production DB credentials are not rotated; production config requires rotation_days.",
            )
        attached.grant_read(self.function)
        # The user must exist before its first rotation (which starts as soon as the schedule exists):
        # the Trigger waits for the secret and its attachment only, the schedule waits for the Trigger.
        self.trigger.execute_after(secret.node.default_child, attached.node.default_child)
        for child in attached.node.children:
            if isinstance(child, secretsmanager.RotationSchedule):
                child.node.add_dependency(self.trigger)
        self._consumers[name] = (privileges, attached)
        # A new consumer changes the function's configuration, hence a new version: the Trigger runs again.
        self.function.add_environment("CONSUMERS", self._consumers_json())
        return attached

    def secret(self, consumer: str) -> secretsmanager.ISecret:
        """The secret of one consumer (KeyError names the known ones)."""
        if consumer not in self._consumers:
            raise KeyError(f"no database consumer {consumer!r}; known: {sorted(self._consumers)}")
        return self._consumers[consumer][1]

    @property
    def secrets(self) -> dict[str, secretsmanager.ISecret]:
        return {name: secret for name, (_, secret) in self._consumers.items()}

    def _consumers_json(self) -> str:
        return json.dumps(
            {
                name: {"secret_arn": secret.secret_arn, "privileges": level}
                for name, (level, secret) in sorted(self._consumers.items())
            },
            separators=(",", ":"),
        )

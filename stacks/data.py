"""Data tier (stateful): database, cache, their secrets, and the parameters tooling reads."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.parameters import EnvParameters
from constructs_lib.data.backup import backup_tag_value
from constructs_lib.data.cache import CACHE_PORT, ErpCache
from constructs_lib.data.database import MYSQL_PORT, ErpDatabase
from constructs_lib.data.database_users import DatabaseUsers, db_user_name
from constructs_lib.data.mongodb import MongoDbUriSecret
from k8s_charts import names

EMPLOYEE_DB_USER = "employee_app"


@dataclass(frozen=True)
class DataEndpoints:
    """What other stacks take from the data tier: endpoints, secrets and security groups, not the stack."""

    database: rds.IDatabaseInstance
    database_host: str
    database_secret: secretsmanager.ISecret
    database_security_group: ec2.ISecurityGroup
    cache_replication_group: CfnResource
    cache_host: str
    cache_secret: secretsmanager.ISecret
    cache_security_group: ec2.ISecurityGroup
    mongodb_secret: secretsmanager.ISecret
    # EKS service name -> its own MySQL user's secret (services that declare `mysql`).
    service_db_secrets: dict[str, secretsmanager.ISecret]


class DataStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, vpc: ec2.IVpc, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=config.production, **kwargs)
        # One MySQL user per EKS service that declares `mysql` (its name with _ for -, MySQL's user-name rules).
        service_users = {s.name: db_user_name(s.name) for s in config.services if "mysql" in s.uses}
        if len(set(service_users.values())) != len(service_users):
            raise ValueError(f"services: {sorted(service_users)} map to the same MySQL user name")
        self.database = ErpDatabase(
            self,
            "Database",
            vpc=vpc,
            config=config.database,
            production=config.production,
            secret_name=config.secret_name("mysql"),
            backup_tag_value=backup_tag_value(config),
        )
        # One MySQL user per consumer (DML unless it owns a schema), plus the migrations, run on deploy.
        self.database_users = DatabaseUsers(
            self,
            "DatabaseUsers",
            database=self.database,
            vpc=vpc,
            database_name=config.database.database_name,
            secret_prefix=config.secret_name("mysql"),
            consumers={EMPLOYEE_DB_USER: "DML", **{user: "DML" for user in service_users.values()}},
            rotation_days=config.database.rotation_days,
            business_timezone=config.employee_function.business_timezone,
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
        )
        self.cache = ErpCache(
            self,
            "Cache",
            vpc=vpc,
            config=config.cache,
            production=config.production,
            secret_name=config.secret_name("cache"),
            log_retention_days=config.observability.log_retention_days,
        )
        self.mongodb = MongoDbUriSecret(
            self, "MongoDb", secret_name=names.mongodb_secret_name(config), production=config.production
        )
        self.endpoints = DataEndpoints(
            database=self.database.instance,
            database_host=self.database.instance.db_instance_endpoint_address,
            database_secret=self.database.secret,
            database_security_group=self.database.security_group,
            cache_replication_group=self.cache.replication_group,
            cache_host=self.cache.endpoint,
            cache_secret=self.cache.secret,
            cache_security_group=self.cache.security_group,
            mongodb_secret=self.mongodb.secret,
            service_db_secrets={name: self.database_users.secret(user) for name, user in service_users.items()},
        )
        EnvParameters(
            self,
            "Parameters",
            prefix=config.ssm_prefix,
            values={
                "account-id": self.account,
                "region": self.region,
                "project-name": config.project,
                "environment": config.name,
                "db/endpoint": self.database.instance.db_instance_endpoint_address,
                "db/port": str(MYSQL_PORT),
                "db/name": config.database.database_name,
                "db/secret-arn": self.database.secret.secret_arn,
                "cache/endpoint": self.cache.endpoint,
                "cache/port": str(CACHE_PORT),
                "cache/secret-arn": self.cache.secret.secret_arn,
                "mongodb/secret-arn": self.mongodb.secret.secret_arn,
            },
        )

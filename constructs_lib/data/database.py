"""The MySQL database: the one piece of the platform whose loss is a business incident."""

from __future__ import annotations

from aws_cdk import Duration, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from config.sections import DatabaseConfig
from constructs_lib.common.nag import acknowledge, acknowledge_log_retention
from constructs_lib.common.policies import data_removal, retain_fixed_name, retention
from constructs_lib.common.security_groups import closed_security_group
from constructs_lib.data.backup import BACKUP_TAG_KEY
from k8s_charts import names

MYSQL_PORT = names.MYSQL_PORT  # one source: k8s_charts/names (NetworkPolicy ports cannot be tokens)


class ErpDatabase(Construct):
    """RDS MySQL 8.4 in isolated subnets; nobody reaches it until ``allow_from`` says so."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        config: DatabaseConfig,
        production: bool,
        secret_name: str,
        # The value of the tag the backup plan selects by (constructs_lib/data/backup.py); None: no plan selects it.
        backup_tag_value: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        major = ".".join(config.engine_version.split(".")[:2])
        engine = rds.DatabaseInstanceEngine.mysql(version=rds.MysqlEngineVersion.of(config.engine_version, major))
        self.security_group = closed_security_group(
            self, "SecurityGroup", vpc=vpc, description="MySQL: admits only named callers"
        )
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description="TLS only; slow queries logged",
            # Instance parameter groups take 0/1 for require_secure_transport ("ON" is the cluster form).
            parameters={"require_secure_transport": "1", "slow_query_log": "1", "long_query_time": "2"},
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(config.instance_class),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group],
            port=MYSQL_PORT,
            credentials=rds.Credentials.from_generated_secret("erpadmin", secret_name=secret_name),
            database_name=config.database_name,
            parameter_group=parameters,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            allocated_storage=config.allocated_storage_gib,
            max_allocated_storage=config.max_allocated_storage_gib,
            multi_az=config.multi_az,
            backup_retention=Duration.days(config.backup_retention_days),
            delete_automated_backups=not production,
            deletion_protection=config.deletion_protection,
            removal_policy=data_removal(production, config.removal),
            cloudwatch_logs_exports=["error", "slowquery"],
            cloudwatch_logs_retention=retention(config.log_retention_days),
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            iam_authentication=True,
            # The CA the Lambdas' bundled rds-ca-bundle.pem verifies (also the default for new instances).
            ca_certificate=rds.CaCertificate.RDS_CA_RSA2048_G1,
        )
        # The backup plan selects the database by this tag (constructs_lib/data/backup.py); tags update in place.
        if backup_tag_value is not None:
            Tags.of(self.instance.node.default_child).add(BACKUP_TAG_KEY, backup_tag_value)
        acknowledge_log_retention(Stack.of(self))
        # instance.secret is the target attachment; policies belong on the secret itself.
        self.secret = self.instance.secret
        generated_secret = self.instance.node.find_child("Secret")
        # Losing the credentials of a retained/snapshotted DB locks everyone out of it (prod).
        generated_secret.apply_removal_policy(retain_fixed_name(production))
        if config.rotation_days:
            self.instance.add_rotation_single_user(automatically_after=Duration.days(config.rotation_days))
        else:
            acknowledge(
                generated_secret,
                "AwsSolutions-SMG4",
                "Non-production DB credentials are not rotated; production config requires rotation_days.",
            )
        acknowledge(
            self.instance,
            "AwsSolutions-RDS11",
            "The services' drivers expect 3306; the security group, not the port number, keeps callers out.",
        )
        if not config.multi_az:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS3",
                "Single-AZ only outside production (config enforces Multi-AZ in prod).",
            )
        if not config.deletion_protection:
            acknowledge(
                self.instance, "AwsSolutions-RDS10", "Dev databases are disposable; config enforces protection in prod."
            )

    def allow_from(self, peer: ec2.IConnectable, description: str) -> None:
        """Admit a caller (a Lambda, the cluster) on the MySQL port only."""
        self.security_group.connections.allow_from(peer, ec2.Port.tcp(MYSQL_PORT), description)

"""The Valkey/Redis cache: encrypted both ways, password in Secrets Manager, never a literal."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from config.sections import CacheConfig
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.secrets import generated_json_secret
from constructs_lib.common.security_groups import closed_security_group
from k8s_charts import names

CACHE_PORT = names.REDIS_PORT  # one source: k8s_charts/names
AUTH_TOKEN_KEY = names.CACHE_SECRET_JSON_KEY
ROTATION_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "cache_rotation"
ROTATION_SERVICE_PRINCIPAL = "secretsmanager.amazonaws.com"


class ErpCache(Construct):
    """A replication group in isolated subnets; failover and Multi-AZ once there is a replica."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        config: CacheConfig,
        production: bool,
        secret_name: str,
        log_retention_days: int = 30,
    ) -> None:
        super().__init__(scope, id)
        self.security_group = closed_security_group(
            self, "SecurityGroup", vpc=vpc, description="Cache: admits only named callers"
        )
        self.secret = generated_json_secret(
            self,
            "AuthToken",
            secret_name=secret_name,
            description="ElastiCache AUTH token (synced into the cluster by External Secrets)",
            key=AUTH_TOKEN_KEY,
            production=production,
            exclude_punctuation=True,
            password_length=64,
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        failover = config.replicas > 0
        # allow_plaintext_clients (dev only, config refuses it in prod): clients that cannot do TLS + AUTH
        # (notification-service as built) connect with host + port. Decided: the switch sets the group's shape at
        # creation (dev has never been deployed with TLS). Flipping it on a LIVE group relies on the in-place
        # transit-encryption modify of Valkey / Redis OSS 7+ (via TransitEncryptionMode `preferred`) and an AUTH
        # token change: check `make diff` for a replacement first. At-rest encryption stays on either way.
        secure = not config.allow_plaintext_clients
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description="ERP cache",
            engine=config.engine,
            engine_version=config.engine_version,
            cache_node_type=config.node_type,
            num_node_groups=1,
            replicas_per_node_group=config.replicas,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=secure,
            auth_token=self.secret.secret_value_from_json(AUTH_TOKEN_KEY).unsafe_unwrap() if secure else None,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=CACHE_PORT,
            snapshot_retention_limit=config.snapshot_retention_days,
            auto_minor_version_upgrade=True,
        )
        self.rotation = self._rotation(config, production, log_retention_days)
        self.replication_group.apply_removal_policy(RemovalPolicy.SNAPSHOT if production else RemovalPolicy.DESTROY)
        acknowledge(
            self.replication_group,
            "AwsSolutions-AEC5",
            "Clients expect 6379; the security group, not the port number, keeps callers out.",
        )
        if not secure:
            for rule in ("AwsSolutions-AEC3", "AwsSolutions-AEC6"):
                acknowledge(
                    self.replication_group,
                    rule,
                    "Dev only (cache.allow_plaintext_clients, refused in production): notification-service as "
                    "built cannot do TLS or AUTH; reachable only from the cluster's security group.",
                )
        if not failover:
            acknowledge(
                self.replication_group,
                "AwsSolutions-AEC4",
                "Single node outside production (config enforces a replica in prod).",
            )

    def _rotation(self, config: CacheConfig, production: bool, log_retention_days: int) -> PythonFunction | None:
        """ROTATE (old and new token both valid) then move AWSCURRENT: External Secrets syncs it and Reloader
        rolls the Deployments long before the next rotation drops the old token (README: Rotation)."""
        if config.auth_token_rotation_days is None:
            acknowledge(
                self.secret,
                "AwsSolutions-SMG4",
                "Rotation is configured per environment (cache.auth_token_rotation_days; required in production).",
            )
            return None
        function = PythonFunction(
            self,
            "AuthTokenRotation",
            description="Rotates the cache AUTH token (ElastiCache ROTATE strategy, no outage)",
            entry=ROTATION_DIR,
            handler="app.handler",
            environment={"REPLICATION_GROUP_ID": self.replication_group.ref},
            memory_mb=128,
            timeout=Duration.minutes(5),  # setSecret waits up to 4 minutes for ElastiCache to apply the token
            log_retention_days=log_retention_days,
            production=production,
        )
        group_arn = Stack.of(self).format_arn(
            service="elasticache",
            resource="replicationgroup",
            resource_name=self.replication_group.ref,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        function.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["elasticache:ModifyReplicationGroup", "elasticache:DescribeReplicationGroups"],
                resources=[group_arn],
            )
        )
        # GetRandomPassword has no resource: it is a generator, not an access to a secret.
        function.function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetRandomPassword"], resources=["*"])
        )
        acknowledge(
            function.function,
            "AwsSolutions-IAM5[Resource::*]",
            "secretsmanager:GetRandomPassword supports no resource-level permission (it reads no secret).",
        )
        # The retried set step compares the pending version's creation date with the group's token change.
        function.function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:ListSecretVersionIds"], resources=[self.secret.secret_arn])
        )
        self.secret.add_rotation_schedule(
            "Rotation",
            rotation_lambda=function.function,
            automatically_after=Duration.days(config.auth_token_rotation_days),
        )
        # CDK grants secretsmanager.amazonaws.com the invoke with no condition: any account's Secrets Manager could
        # name this function as a rotation Lambda. SourceAccount keeps it to this account's secrets (issue 18 item 19).
        permissions = [
            child
            for child in function.function.node.children
            if isinstance(child, lambda_.CfnPermission) and child.principal == ROTATION_SERVICE_PRINCIPAL
        ]
        if len(permissions) != 1:
            raise RuntimeError(f"{self.node.path}: expected one Secrets Manager invoke permission, found {permissions}")
        permissions[0].source_account = Stack.of(self).account
        return function

    @property
    def endpoint(self) -> str:
        return self.replication_group.attr_primary_end_point_address

    def allow_from(self, peer: ec2.IConnectable, description: str) -> None:
        """Admit a caller on the cache port only."""
        self.security_group.connections.allow_from(peer, ec2.Port.tcp(CACHE_PORT), description)

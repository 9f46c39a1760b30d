"""The Valkey/Redis cache: encrypted both ways, password in Secrets Manager, never a literal."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from config.models import CacheConfig
from constructs_lib.nag import acknowledge
from constructs_lib.policies import retain_fixed_name

CACHE_PORT = 6379
AUTH_TOKEN_KEY = "authToken"


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
    ) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Cache: admits only named callers", allow_all_outbound=False
        )
        self.secret = secretsmanager.Secret(
            self,
            "AuthToken",
            secret_name=secret_name,
            description="ElastiCache AUTH token (synced into the cluster by External Secrets)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key=AUTH_TOKEN_KEY,
                exclude_punctuation=True,
                password_length=64,
            ),
            removal_policy=retain_fixed_name(production),
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "ElastiCache AUTH rotation needs a coordinated ModifyReplicationGroup; not automated yet.",
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        failover = config.replicas > 0
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
            transit_encryption_enabled=True,
            auth_token=self.secret.secret_value_from_json(AUTH_TOKEN_KEY).unsafe_unwrap(),
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=CACHE_PORT,
            snapshot_retention_limit=config.snapshot_retention_days,
            auto_minor_version_upgrade=True,
        )
        self.replication_group.apply_removal_policy(RemovalPolicy.SNAPSHOT if production else RemovalPolicy.DESTROY)
        acknowledge(
            self.replication_group,
            "AwsSolutions-AEC5",
            "Clients expect 6379; the security group, not the port number, keeps callers out.",
        )
        if not failover:
            acknowledge(
                self.replication_group,
                "AwsSolutions-AEC4",
                "Single node outside production (config enforces a replica in prod).",
            )

    @property
    def endpoint(self) -> str:
        return self.replication_group.attr_primary_end_point_address

    def allow_from(self, peer: ec2.IConnectable, description: str) -> None:
        """Admit a caller on the cache port only."""
        self.security_group.connections.allow_from(peer, ec2.Port.tcp(CACHE_PORT), description)

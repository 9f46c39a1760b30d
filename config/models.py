"""Typed environment configuration.

Every value that differs between environments lives in ``config/<env>.yaml`` and
is validated here, so a typo or an unsafe production setting fails synth before
anything reaches CloudFormation. This module holds the whole environment and the toolchain, and the
rules that span sections; config/sections.py holds one model per section, config/base.py the shared
types and limits.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from config.base import (
    LOOPBACK_HOSTS,
    AccountId,
    Email,
    K8sName,
    Strict,
)
from config.hosting import (
    PLATFORM_DEPENDENCIES,
    EmployeeProxyConfig,
    MongoDbConfig,
    RouteConfig,
)
from config.sections import (
    DEFAULT_BACKUP,
    EDGE_REGION,
    ApiConfig,
    AuthConfig,
    BackupConfig,
    CacheConfig,
    ClusterConfig,
    DatabaseConfig,
    EdgeConfig,
    EmployeeFunctionConfig,
    KafkaConfig,
    NetworkConfig,
    ObservabilityConfig,
    RegistryConfig,
    ScheduleConfig,
    ServiceConfig,
    SlackChannelConfig,
    UsageAssumptions,
)


class EnvironmentConfig(Strict):
    name: K8sName
    production: bool
    account: AccountId
    region: str = "ap-northeast-2"
    project: str = "erp"
    tags: dict[str, str] = {}
    network: NetworkConfig
    database: DatabaseConfig
    cache: CacheConfig
    observability: ObservabilityConfig = ObservabilityConfig()
    cluster: ClusterConfig
    services: list[ServiceConfig] = Field(min_length=1)
    kafka: KafkaConfig
    registry: RegistryConfig
    api: ApiConfig = ApiConfig()
    edge: EdgeConfig = EdgeConfig()
    auth: AuthConfig = AuthConfig()
    employee_function: EmployeeFunctionConfig = EmployeeFunctionConfig()
    mongodb: MongoDbConfig = MongoDbConfig()
    employee_proxy: EmployeeProxyConfig = EmployeeProxyConfig()
    schedule: ScheduleConfig | None = None
    backup: BackupConfig = DEFAULT_BACKUP
    usage: UsageAssumptions = UsageAssumptions()

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not re.match(r"^[a-z]{2}(-gov)?-[a-z]+-\d$", value):
            raise ValueError("not an AWS region name (e.g. ap-northeast-2)")
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> EnvironmentConfig:
        if self.name == "prod" and not self.production:
            raise ValueError("production: the 'prod' environment must set production: true")
        if not self.production:
            return self
        if not self.observability.alarm_emails:
            raise ValueError("observability.alarm_emails: production needs at least one alarm email")
        if not self.database.multi_az:
            raise ValueError("database.multi_az: must be true in production")
        if not self.database.deletion_protection:
            raise ValueError("database.deletion_protection: must be true in production")
        if self.database.removal == "destroy":
            raise ValueError("database.removal: 'destroy' is only allowed outside production")
        if self.database.rotation_days is None:
            raise ValueError("database.rotation_days: production rotates the DB credentials")
        if self.database.backup_retention_days < 7:
            raise ValueError("database.backup_retention_days: production keeps at least 7 days")
        if self.cache.replicas < 1:
            raise ValueError("cache.replicas: production needs >= 1 replica for automatic failover")
        if self.network.nat.type != "gateway":
            raise ValueError("network.nat.type: production uses NAT gateways")
        if self.network.az_count < 2:
            raise ValueError("network.az_count: production spans at least 2 AZs")
        if self.schedule is not None:
            raise ValueError("schedule: production does not sleep; remove the schedule")
        if self.cache.allow_plaintext_clients:
            raise ValueError(
                "cache.allow_plaintext_clients: production keeps TLS + AUTH on the cache; the client must read "
                "spring.data.redis.password/ssl (README: Hosting a service here)"
            )
        return self._production_backup_rules()

    def _production_backup_rules(self) -> EnvironmentConfig:
        """Issue 21: production's data survives the loss of its region, and its backups are proven to restore."""
        if self.backup.copy is None:
            raise ValueError("backup.copy: production copies its backups to a vault in a second region")
        if self.backup.vault_lock is None:
            raise ValueError("backup.vault_lock: production locks its backup vaults (governance or compliance)")
        if self.backup.drill.schedule is None:
            raise ValueError("backup.drill.schedule: production runs the restore drill on a schedule")
        return self._production_security_rules()

    def _production_security_rules(self) -> EnvironmentConfig:
        """Issue 12's prod rules: each one is broken on purpose in tests/config/test_prod_rules.py."""
        for url in self.auth.callback_urls:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or parts.hostname in LOOPBACK_HOSTS:
                raise ValueError(f"auth.callback_urls: production allows only https URLs of a real host, not {url!r}")
        # Issue 18 item 19 (replaces the /16 rule on public CIDRs, which a private endpoint no longer has): the
        # Kubernetes API of production answers only inside the VPC; the kubectl Lambda runs in the private subnets.
        if self.cluster.endpoint_mode != "private":
            raise ValueError(
                "cluster.endpoint_access: production's EKS endpoint is private (reach it from inside the VPC: README "
                "Operate); say private and give no endpoint_public_cidrs"
            )
        if self.auth.signin_rate_limit is None:
            raise ValueError("auth.signin_rate_limit: production rate-limits sign-up/sign-in (WAF on the user pool)")
        if self.auth.email is None:
            raise ValueError(
                "auth.email: production sends sign-up links through SES (Cognito's default sender stops at about "
                "50 mails a day)"
            )
        if self.cache.auth_token_rotation_days is None:
            raise ValueError("cache.auth_token_rotation_days: production rotates the cache AUTH token")
        # Issue 19: browsers reach production only through the edge, behind its web ACL.
        if not self.edge.waf.enabled:
            raise ValueError("edge.waf.enabled: production's edge has a web ACL (managed rules and a per-IP rate)")
        if not self.api.edge_only:
            raise ValueError(
                "api.edge_only: production's API answers only through the edge (its WAF), not at execute-api; "
                "set edge_only with api.domain_name"
            )
        if self.edge.domain_name is None:
            raise ValueError(
                "edge.domain_name: production serves TLS 1.2+ on its own domain (CloudFront's default certificate "
                "accepts TLS 1.0)"
            )
        return self

    @model_validator(mode="after")
    def _backup_copy_region(self) -> EnvironmentConfig:
        if self.backup.copy is not None and self.backup.copy.region == self.region:
            raise ValueError(
                f"backup.copy.region: {self.region} is this environment's own region; a copy there does not "
                "survive the region's loss"
            )
        return self

    @model_validator(mode="after")
    def _registry(self) -> EnvironmentConfig:
        for field in ("docker_hub_credential_arn", "github_credential_arn"):
            arn = getattr(self.registry, field).split(":")
            if (arn[3], arn[4]) != (self.region, self.account):
                raise ValueError(f"registry.{field}: the secret must be in this environment's account and region")
        return self

    @model_validator(mode="after")
    def _services(self) -> EnvironmentConfig:
        names = [s.name for s in self.services]
        if len(names) != len(set(names)):
            raise ValueError("services: names must be unique")
        paths = [r.path for r in self.all_routes]
        if len(paths) != len(set(paths)):
            raise ValueError("services: route paths must be unique across services and employee_function.routes")
        if any(r.rewrite is not None for r in self.employee_function.routes):
            raise ValueError("employee_function.routes: Lambda proxy integrations cannot rewrite the path")
        topics = {t.name for t in self.kafka.topics}
        for service in self.services:
            for dependency in service.uses:
                if dependency not in PLATFORM_DEPENDENCIES and dependency not in names:
                    raise ValueError(
                        f"services[{service.name}].uses: {dependency!r} is neither one of {list(PLATFORM_DEPENDENCIES)}"
                        " nor a configured service"
                    )
                if dependency == service.name:
                    raise ValueError(f"services[{service.name}].uses: a service cannot use itself")
            for topic in service.kafka_topics:
                if topic not in topics:
                    raise ValueError(f"services[{service.name}].kafka_topics: {topic!r} is not in kafka.topics")
            if "mongodb" in service.uses and not self.mongodb.egress_cidrs:
                raise ValueError(f"mongodb.egress_cidrs: services[{service.name}] uses mongodb; say where it is")
            if not any(self._runs_on(arch) for arch in service.image.architectures):
                raise ValueError(
                    f"services[{service.name}].image.architectures: no apps node group runs "
                    f"{'/'.join(service.image.architectures)} (x86 types e.g. t3a/m7i for amd64, Graviton for arm64)"
                )
        privileged = set(self.auth.admin_groups) | set(self.auth.manager_groups)
        prefixes = [r.path for r in self.all_routes]
        for route in self.all_routes:
            unknown = sorted(set(route.groups) - privileged)
            if unknown:
                raise ValueError(
                    f"routes: {route.path}: groups {', '.join(unknown)} not in auth.admin_groups or auth.manager_groups"
                )
        for route in self.api.restricted_routes:
            unknown = sorted(set(route.groups) - privileged)
            if unknown:
                raise ValueError(
                    f"api.restricted_routes: {route.method} {route.path}: {', '.join(unknown)} not in "
                    "auth.admin_groups or auth.manager_groups"
                )
            if not any(route.path == p or route.path.startswith(p + "/") for p in prefixes):
                raise ValueError(f"api.restricted_routes: {route.method} {route.path} is under no configured route")
        return self

    @model_validator(mode="after")
    def _slo_routes(self) -> EnvironmentConfig:
        """Every gateway route counts toward exactly one SLO objective (constructs_lib/observability/slo.py): a route
        in none has no burn-rate alarm, one in two is counted twice. An objective's path is a route or above one."""
        objectives = self.observability.slo.objectives
        # CloudWatch Logs allows 5 filter patterns with a regex per log group; each objective's latency filter has one.
        if len(objectives) > 5:
            raise ValueError("observability.slo.objectives: at most 5 (one regex metric filter each on the access log)")
        routes = [r.path for r in self.all_routes]

        def under(path: str, prefix: str) -> bool:
            return path == prefix or path.startswith(prefix + "/")

        for objective in objectives:
            for path in objective.paths:
                if not any(under(route, path) for route in routes):
                    raise ValueError(
                        f"observability.slo.objectives[{objective.name}]: {path} is neither a configured route "
                        "nor a prefix of one"
                    )
        for route in routes:
            owners = [o.name for o in objectives if any(under(route, p) for p in o.paths)]
            if len(owners) != 1:
                raise ValueError(
                    f"observability.slo.objectives: route {route} is in {' and '.join(owners) or 'no objective'}; "
                    "put it in exactly one objective's paths"
                )
        return self

    def _runs_on(self, arch: str) -> bool:
        """Is there a node group of this architecture the services may be scheduled on (the apps label)?"""
        key, value = "workload", "apps"  # k8s_charts.names.APPS_NODE_LABEL
        labelled = [g for g in self.cluster.node_groups if g.labels.get(key) == value]
        return any(("arm64" if g.arm64 else "amd64") == arch for g in (labelled or self.cluster.node_groups))

    @property
    def uses_employee_api(self) -> bool:
        """Some service calls the employee API from inside the cluster (it then gets the SigV4 proxy)."""
        return any("employee-api" in s.uses for s in self.services)

    @property
    def all_routes(self) -> list[RouteConfig]:
        return [r for s in self.services for r in s.routes] + list(self.employee_function.routes)

    @model_validator(mode="after")
    def _single_broker_zone(self) -> EnvironmentConfig:
        group = next(g for g in self.cluster.node_groups if g.name == self.cluster.kafka_node_group)
        if self.kafka.replicas == 1 and self.network.az_count > 1 and not group.single_az:
            raise ValueError(
                f"cluster.node_groups.{group.name}.single_az: a single Kafka broker keeps its data on one zonal "
                "EBS volume; its node group must be single_az: true or the broker may wake up with no node in its zone"
            )
        return self

    @model_validator(mode="after")
    def _kafka_group_floor(self) -> EnvironmentConfig:
        """The Cluster Autoscaler never takes a group below min_size: each broker needs a node of its own (one per
        zone, beside its zonal volume), so the kafka group's floor is kafka.replicas (the night stop aside)."""
        group = next(g for g in self.cluster.node_groups if g.name == self.cluster.kafka_node_group)
        if group.min_size < self.kafka.replicas:
            raise ValueError(
                f"cluster.node_groups.{group.name}.min_size {group.min_size} < kafka.replicas {self.kafka.replicas}: "
                "the autoscaler could remove a broker's node (each broker needs its own node, in its volume's zone)"
            )
        return self

    @property
    def resource_prefix(self) -> str:
        """`{project}-{env}`: the one stem of every name a human looks up (stacks, cluster, namespace, alarms,
        dashboard, pipeline steps' stack names)."""
        return f"{self.project}-{self.name}"

    @property
    def secret_prefix(self) -> str:
        """`{project}/{env}`: every Secrets Manager name of this environment starts with it, and the External
        Secrets role may read exactly `{secret_prefix}/*`."""
        return f"{self.project}/{self.name}"

    def secret_name(self, *parts: str) -> str:
        """A Secrets Manager name under this environment's prefix, e.g. secret_name("mysql") = erp/dev/mysql."""
        return "/".join([self.secret_prefix, *parts])

    @property
    def application_log_group(self) -> str:
        return self.observability.application_log_group or f"/aws/eks/{self.resource_prefix}/application"

    @property
    def cluster_name(self) -> str:
        return self.resource_prefix

    @property
    def namespace(self) -> str:
        return self.resource_prefix

    @property
    def stage_id(self) -> str:
        return self.name.capitalize()

    @property
    def deploy_regions(self) -> list[str]:
        """Every region a stack of this environment lives in: its own, the edge's, the backup copy's."""
        extra = [EDGE_REGION] + ([self.backup.copy.region] if self.backup.copy else [])
        return [self.region, *(r for r in dict.fromkeys(extra) if r != self.region)]

    @property
    def ssm_prefix(self) -> str:
        return f"/{self.project}/{self.name}"


class ToolchainConfig(Strict):
    """Where the pipeline lives and what it watches (config/toolchain.yaml)."""

    account: AccountId
    region: str = "ap-northeast-2"
    connection_arn: Annotated[
        str,
        StringConstraints(
            pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"
        ),
    ]
    repository: Annotated[str, StringConstraints(pattern=r"^[\w.-]+/[\w.-]+$")]
    branch: str = "main"
    # Stages in deployment order; each name is a config/<name>.yaml.
    stages: list[K8sName] = Field(min_length=1)
    # Pushes touching only these paths do not run the pipeline (a CodePipeline trigger takes at most 8 patterns).
    ignored_paths: list[str] = Field(default=["**/*.md", "docs/**"], max_length=8)
    notification_emails: list[Email] = []
    # Pipeline events (failed stage, waiting approval, prod deployed) also go to this Slack channel.
    chat: SlackChannelConfig | None = None
    # CRITICAL and HIGH always block (tools/scan_gate.py); MEDIUM or LOW can be added.
    scan_fail_on: list[Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]] = ["CRITICAL", "HIGH"]
    scan_max_wait_seconds: int = Field(default=600, ge=30, le=3600)
    # An account holds ONE OIDC provider per URL: if the toolchain account already has GitHub's
    # (token.actions.githubusercontent.com), give its ARN here; None creates it with the pipeline stack.
    github_oidc_provider_arn: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
            ),
        ]
        | None
    ) = None

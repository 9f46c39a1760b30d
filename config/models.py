"""Typed environment configuration.

Every value that differs between environments lives in ``config/<env>.yaml`` and
is validated here, so a typo or an unsafe production setting fails synth before
anything reaches CloudFormation.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# Retention periods CloudWatch Logs accepts (anything else is rejected by the API).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Kubernetes minors in EKS standard support, mapped to the kubectl layer package
# of the same minor (a mismatched kubectl is unsupported by the handler).
SUPPORTED_KUBERNETES = {"1.34": "v34", "1.35": "v35"}

# MySQL minors allowed: 8.0 is past standard support (billed extended support).
SUPPORTED_MYSQL = re.compile(r"^8\.4\.\d+$")

# Lambda refuses a reservation that leaves fewer than this many units of the account's concurrency unreserved.
UNRESERVED_CONCURRENCY = 100

AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", max_length=254)]
IamRoleArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]
K8sName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)]
Quantity = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?(m|Mi|Gi|Ki)?$")]
HHMM = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


def _retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of CloudWatch's retention periods {LOG_RETENTION_DAYS}")
    return days


RetentionDays = Annotated[int, AfterValidator(_retention)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NatConfig(Strict):
    type: Literal["instance", "gateway"]
    instance_type: str = "t4g.nano"
    # None: one per AZ for gateways, one in total for instances.
    count: int | None = Field(default=None, ge=1, le=3)


class SubnetMasks(Strict):
    public: int = Field(default=24, ge=16, le=28)
    private: int = Field(default=20, ge=16, le=28)
    isolated: int = Field(default=24, ge=16, le=28)


class NetworkConfig(Strict):
    az_count: int = Field(ge=1, le=3)
    vpc_cidr: str
    subnet_masks: SubnetMasks = SubnetMasks()
    nat: NatConfig
    interface_endpoints: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]*$")]] = []
    flow_logs_retention_days: RetentionDays = 30

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a valid IPv4 CIDR block ({exc})") from None
        if not 16 <= net.prefixlen <= 28:
            raise ValueError("VPC prefix length must be between /16 and /28")
        if not net.is_private:
            raise ValueError("must be a private (RFC 1918) range")
        return value

    @model_validator(mode="after")
    def _fits(self) -> NetworkConfig:
        # Same sequential, size-aligned allocation CDK's Vpc uses.
        net = ipaddress.IPv4Network(self.vpc_cidr)
        offset = 0
        for mask in (self.subnet_masks.public, self.subnet_masks.private, self.subnet_masks.isolated):
            size = 2 ** (32 - mask)
            for _ in range(self.az_count):
                offset = -(-offset // size) * size + size
        if offset > net.num_addresses:
            raise ValueError(
                f"vpc_cidr {self.vpc_cidr} is too small for {self.az_count} AZs x "
                f"(public /{self.subnet_masks.public}, private /{self.subnet_masks.private}, "
                f"isolated /{self.subnet_masks.isolated}): needs {offset} addresses"
            )
        if self.nat.count and self.nat.count > self.az_count:
            raise ValueError("nat.count cannot exceed az_count")
        return self


class DatabaseConfig(Strict):
    engine_version: str = "8.4.7"
    instance_class: str = "t4g.micro"
    allocated_storage_gib: int = Field(default=20, ge=20, le=65536)
    max_allocated_storage_gib: int = Field(default=100, ge=20, le=65536)
    multi_az: bool
    backup_retention_days: int = Field(ge=1, le=35)
    deletion_protection: bool
    removal: Literal["destroy", "snapshot", "retain"]
    rotation_days: int | None = Field(default=None, ge=1, le=365)
    database_name: str = "erp"
    log_retention_days: RetentionDays = 30

    @field_validator("engine_version")
    @classmethod
    def _mysql(cls, value: str) -> str:
        if not SUPPORTED_MYSQL.match(value):
            raise ValueError("MySQL must be 8.4.x (8.0 is past standard support and billed as extended support)")
        return value

    @model_validator(mode="after")
    def _storage(self) -> DatabaseConfig:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError("max_allocated_storage_gib must be >= allocated_storage_gib")
        return self


class CacheConfig(Strict):
    engine: Literal["valkey", "redis"] = "valkey"
    engine_version: str = "8.0"
    node_type: str = "cache.t4g.micro"
    replicas: int = Field(ge=0, le=5)
    snapshot_retention_days: int = Field(default=0, ge=0, le=35)


class Thresholds(Strict):
    application_errors_5m: int = Field(default=10, ge=1)
    pod_restarts_10m: int = Field(default=3, ge=1)
    lambda_error_rate_pct: float = Field(default=5.0, gt=0, le=100)
    lambda_throttles_5m: int = Field(default=1, ge=1)
    api_5xx_rate_pct: float = Field(default=5.0, gt=0, le=100)
    api_p99_latency_ms: int = Field(default=2000, ge=1)
    nlb_unhealthy_hosts: int = Field(default=1, ge=1)
    rds_cpu_pct: float = Field(default=80.0, gt=0, le=100)
    rds_free_storage_gib: float = Field(default=2.0, gt=0)
    rds_connections: int = Field(default=100, ge=1)
    cache_cpu_pct: float = Field(default=80.0, gt=0, le=100)
    cache_memory_pct: float = Field(default=80.0, gt=0, le=100)
    cache_evictions_5m: int = Field(default=100, ge=1)


class ObservabilityConfig(Strict):
    alarm_emails: list[Email] = []
    log_retention_days: RetentionDays = 30
    # The ONE name Fluent Bit writes to and the alarms read; defaults per env.
    application_log_group: str | None = None
    container_insights: bool = True
    thresholds: Thresholds = Thresholds()
    xray_sampling_rate: float = Field(default=0.05, ge=0, le=1)


class Taint(Strict):
    key: str
    value: str
    effect: Literal["NoSchedule", "NoExecute", "PreferNoSchedule"] = "NoSchedule"


class NodeGroupConfig(Strict):
    name: K8sName
    instance_types: list[str] = Field(min_length=1)
    capacity: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    min_size: int = Field(ge=0, le=100)
    desired_size: int = Field(ge=0, le=100)
    max_size: int = Field(ge=1, le=100)
    disk_gib: int = Field(default=20, ge=20, le=1000)
    labels: dict[str, str] = {}
    taints: list[Taint] = []
    # Only the first AZ's private subnet: for a group that carries a single zonal EBS volume (dev's one broker).
    single_az: bool = False

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("node group sizes must satisfy min_size <= desired_size <= max_size")
        graviton = all(re.match(r"^[a-z]+\d+g[a-z]*\.", t) for t in self.instance_types)
        x86 = not any(re.match(r"^[a-z]+\d+g[a-z]*\.", t) for t in self.instance_types)
        if not (graviton or x86):
            raise ValueError("instance_types must not mix Graviton (arm64) and x86 types")
        return self

    @property
    def arm64(self) -> bool:
        return bool(re.match(r"^[a-z]+\d+g[a-z]*\.", self.instance_types[0]))


class HelmVersions(Strict):
    """Pinned so the running controllers agree with the CRDs in ../shared/crds."""

    aws_load_balancer_controller: str = "3.5.0"
    external_secrets: str = "2.9.0"


class ClusterConfig(Strict):
    kubernetes_version: str = "1.35"
    endpoint_public_cidrs: list[str] = []
    admin_role_arns: list[IamRoleArn] = []
    node_groups: list[NodeGroupConfig] = Field(min_length=1)
    # Node group whose taint Kafka tolerates / selects; may equal an apps group in dev.
    kafka_node_group: K8sName
    helm: HelmVersions = HelmVersions()

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value not in SUPPORTED_KUBERNETES:
            raise ValueError(f"must be a version in EKS standard support: one of {sorted(SUPPORTED_KUBERNETES)}")
        return value

    @field_validator("endpoint_public_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a valid CIDR block ({exc})") from None
        return value

    @model_validator(mode="after")
    def _groups(self) -> ClusterConfig:
        names = [g.name for g in self.node_groups]
        if len(names) != len(set(names)):
            raise ValueError("node group names must be unique")
        if self.kafka_node_group not in names:
            raise ValueError(f"kafka_node_group {self.kafka_node_group!r} is not one of the node groups {names}")
        return self


class ImageConfig(Strict):
    """Either a pinned image (tag or digest) or a build directory in this repo."""

    repository: str | None = None
    tag: str | None = None
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    build_dir: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageConfig:
        pinned = self.tag is not None or self.digest is not None
        if pinned == (self.build_dir is not None):
            raise ValueError("give exactly one of: tag/digest (a pinned image) or build_dir")
        if self.tag is not None and self.tag in ("latest", ""):
            raise ValueError("tag 'latest' is not allowed: pin a version or a digest")
        return self


class ServiceConfig(Strict):
    name: K8sName
    port: int = Field(ge=1024, le=65535)
    route: Annotated[str, StringConstraints(pattern=r"^/api/[a-z-]+$")]
    image: ImageConfig
    # Readiness (and the NLB health check) may include dependencies; liveness must not, or a
    # database outage would restart every pod (Spring Boot's liveness group is app-only).
    health_path: str = "/actuator/health"
    liveness_path: str = "/actuator/health/liveness"
    replicas: int = Field(default=2, ge=1, le=50)
    min_replicas: int = Field(default=2, ge=1, le=50)
    max_replicas: int = Field(default=4, ge=1, le=100)
    cpu_target_pct: int = Field(default=70, ge=10, le=100)
    cpu_request: Quantity = "250m"
    cpu_limit: Quantity = "1"
    memory_request: Quantity = "512Mi"
    memory_limit: Quantity = "1Gi"
    env: dict[str, str] = {}

    @model_validator(mode="after")
    def _replicas(self) -> ServiceConfig:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError("replicas must satisfy min_replicas <= replicas <= max_replicas")
        return self


class KafkaTopic(Strict):
    name: str
    partitions: int = Field(default=3, ge=1, le=100)


class KafkaConfig(Strict):
    image: str = "apache/kafka:3.9.1"
    replicas: Literal[1, 3, 5]
    # The size the brokers' volumes have. Grows in place: the PVCs are patched, the StatefulSet is not touched.
    storage_gib: int = Field(default=20, ge=1, le=16384)
    # The size in the StatefulSet's volumeClaimTemplates, which Kubernetes never lets change: fixed at the first
    # deploy (None: storage_gib at that time; write it down before changing storage_gib, see README).
    initial_storage_gib: int | None = Field(default=None, ge=1, le=16384)
    topics: list[KafkaTopic] = [KafkaTopic(name="approval-requests")]
    cpu_request: Quantity = "250m"
    memory_request: Quantity = "1Gi"
    memory_limit: Quantity = "2Gi"

    @model_validator(mode="after")
    def _storage(self) -> KafkaConfig:
        if self.initial_storage_gib is not None and self.storage_gib < self.initial_storage_gib:
            raise ValueError(
                f"storage_gib {self.storage_gib} < initial_storage_gib {self.initial_storage_gib}: "
                "EBS volumes cannot shrink (move the data to a new cluster by hand instead)"
            )
        return self

    @property
    def template_storage_gib(self) -> int:
        return self.initial_storage_gib or self.storage_gib


class ApiConfig(Strict):
    throttle_rate: int = Field(default=100, ge=1)
    throttle_burst: int = Field(default=200, ge=1)
    cors_origins: list[str] = []
    domain_name: str | None = None
    certificate_arn: str | None = None
    access_log_retention_days: RetentionDays = 30

    @model_validator(mode="after")
    def _domain(self) -> ApiConfig:
        if (self.domain_name is None) != (self.certificate_arn is None):
            raise ValueError("domain_name and certificate_arn go together")
        return self


GroupName = Annotated[str, StringConstraints(pattern=r"^[\w+=,.@-]{1,128}$")]


class AuthConfig(Strict):
    mfa: Literal["optional", "required"] = "optional"
    allowed_signup_domains: list[str] = []
    callback_urls: list[str] = ["http://localhost:3000/callback"]
    # Cognito groups (assigned by an administrator, never at sign-up) that carry privileges. Their members'
    # access tokens get the scope f"{project}/{group}" (pre-token-generation trigger); the gateway's
    # group-restricted routes and the employee Lambda's checks read groups from the token.
    admin_groups: list[GroupName] = Field(default=["admin"], min_length=1)
    manager_groups: list[GroupName] = Field(default=["manager"], min_length=1)


class EmployeeFunctionConfig(Strict):
    # None (the default): no reservation. Lambda keeps at least 100 units of the account's concurrency
    # unreserved, and a new account's quota may be as low as 10, so any reservation there fails the deploy.
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    # The account's concurrent-executions quota (`aws lambda get-account-settings`), required with a reservation.
    account_concurrency_quota: int | None = Field(default=None, ge=10)

    @model_validator(mode="after")
    def _quota(self) -> EmployeeFunctionConfig:
        if self.reserved_concurrency is None:
            return self
        if self.account_concurrency_quota is None:
            raise ValueError(
                "reserved_concurrency needs account_concurrency_quota (the account's ConcurrentExecutions limit "
                "from `aws lambda get-account-settings`): a new account's quota may be 10"
            )
        if self.reserved_concurrency > self.account_concurrency_quota - UNRESERVED_CONCURRENCY:
            raise ValueError(
                f"reserved_concurrency {self.reserved_concurrency} leaves less than {UNRESERVED_CONCURRENCY} of the "
                f"account quota {self.account_concurrency_quota} unreserved (Lambda refuses it): raise the quota "
                "with Service Quotas first, or reserve less"
            )
        return self

    memory_mb: int = Field(default=256, ge=128, le=10240)
    timeout_seconds: int = Field(default=10, ge=1, le=29)


class ScheduleConfig(Strict):
    """Office hours in which a non-prod environment runs; it sleeps outside them."""

    timezone: str = "Asia/Seoul"
    weekdays: Literal["MON-FRI", "MON-SAT", "MON-SUN"] = "MON-FRI"
    start: HHMM = "08:00"
    stop: HHMM = "20:00"
    stop_database: bool = False

    @model_validator(mode="after")
    def _order(self) -> ScheduleConfig:
        if self.start >= self.stop:
            raise ValueError("start must be before stop (same day)")
        return self

    @property
    def hours_per_week(self) -> float:
        start_h, start_m = map(int, self.start.split(":"))
        stop_h, stop_m = map(int, self.stop.split(":"))
        days = {"MON-FRI": 5, "MON-SAT": 6, "MON-SUN": 7}[self.weekdays]
        return days * ((stop_h * 60 + stop_m) - (start_h * 60 + start_m)) / 60


class UsageAssumptions(Strict):
    """Inputs for usage-billed items in the cost estimate (stated, not measured)."""

    api_requests_per_month: int = Field(default=1_000_000, ge=0)
    lambda_invocations_per_month: int = Field(default=500_000, ge=0)
    lambda_avg_duration_ms: int = Field(default=100, ge=1)
    log_ingest_gb_per_month: float = Field(default=5.0, ge=0)
    log_stored_gb: float = Field(default=10.0, ge=0)
    nat_processed_gb_per_month: float = Field(default=20.0, ge=0)
    rds_backup_gb: float = Field(default=0.0, ge=0)


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
    api: ApiConfig = ApiConfig()
    auth: AuthConfig = AuthConfig()
    employee_function: EmployeeFunctionConfig = EmployeeFunctionConfig()
    schedule: ScheduleConfig | None = None
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
        return self

    @model_validator(mode="after")
    def _services(self) -> EnvironmentConfig:
        names = [s.name for s in self.services]
        if len(names) != len(set(names)):
            raise ValueError("services: names must be unique")
        routes = [s.route for s in self.services]
        if len(routes) != len(set(routes)) or "/api/employees" in routes:
            raise ValueError("services: routes must be unique and /api/employees belongs to the Lambda")
        return self

    @model_validator(mode="after")
    def _single_broker_zone(self) -> EnvironmentConfig:
        group = next(g for g in self.cluster.node_groups if g.name == self.cluster.kafka_node_group)
        if self.kafka.replicas == 1 and self.network.az_count > 1 and not group.single_az:
            raise ValueError(
                f"cluster.node_groups.{group.name}.single_az: a single Kafka broker keeps its data on one zonal "
                "EBS volume; its node group must be single_az: true or the broker may wake up with no node in its zone"
            )
        return self

    @property
    def application_log_group(self) -> str:
        return self.observability.application_log_group or f"/aws/eks/{self.project}-{self.name}/application"

    @property
    def cluster_name(self) -> str:
        return f"{self.project}-{self.name}"

    @property
    def namespace(self) -> str:
        return f"{self.project}-{self.name}"

    @property
    def stage_id(self) -> str:
        return self.name.capitalize()

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
    scan_fail_on: list[Literal["CRITICAL", "HIGH"]] = ["CRITICAL"]
    scan_max_wait_seconds: int = Field(default=600, ge=30, le=3600)

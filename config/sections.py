"""One model per section of config/<env>.yaml (network, database, cache, cluster, services, api, ...)."""

from __future__ import annotations

import ipaddress
import re
import warnings
from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.base import (
    CI_TAG_PREFIX,
    EMPLOYEES_PATH,
    HHMM,
    SUPPORTED_KUBERNETES,
    SUPPORTED_MYSQL,
    UNRESERVED_CONCURRENCY,
    Email,
    IamRoleArn,
    K8sName,
    Quantity,
    RetentionDays,
    Strict,
    TimeZone,
)
from config.hosting import (
    GroupName,
    HealthCheckConfig,
    RestrictedRoute,
    RouteConfig,
)


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
    # REPLACES the DB instance (a new, empty database) when changed after the first deploy; the master
    # username (fixed in constructs_lib/data/database.py) does too. See tools/replacement_guard.py.
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
    # notification-service as built connects with host + port only (no TLS, no AUTH). True creates the cache
    # WITHOUT transit encryption and AUTH so it runs unmodified; refused in production.
    allow_plaintext_clients: bool = False
    # Rotate the AUTH token this often (ElastiCache ROTATE strategy: old and new both valid until the next
    # rotation replaces the older). None: never. Far longer than the External Secrets refresh + a rollout.
    auth_token_rotation_days: int | None = Field(default=None, ge=1, le=365)


class Thresholds(Strict):
    application_errors_5m: int = Field(default=10, ge=1)
    pod_restarts_10m: int = Field(default=3, ge=1)
    lambda_error_rate_pct: float = Field(default=5.0, gt=0, le=100)
    lambda_throttles_5m: int = Field(default=1, ge=1)
    nlb_unhealthy_hosts: int = Field(default=1, ge=1)
    rds_cpu_pct: float = Field(default=80.0, gt=0, le=100)
    rds_free_storage_gib: float = Field(default=2.0, gt=0)
    rds_connections: int = Field(default=100, ge=1)
    cache_cpu_pct: float = Field(default=80.0, gt=0, le=100)
    cache_memory_pct: float = Field(default=80.0, gt=0, le=100)
    cache_evictions_5m: int = Field(default=100, ge=1)


class SloObjective(Strict):
    """One route group's objectives, measured on the HTTP API's access log (every request, 4xx included)."""

    name: K8sName
    # Path prefixes of the group (`/api/approvals` covers /api/approvals and everything under it).
    paths: list[Annotated[str, StringConstraints(pattern=r"^/api(/[A-Za-z0-9._-]+)*$")]] = Field(min_length=1)
    # Share of requests answered without a 5xx.
    availability_pct: float = Field(default=99.5, ge=90, le=99.99)
    # 99 % of requests faster than this (responseLatency, ms): the rest spends the latency budget.
    p99_latency_ms: int = Field(default=2000, ge=50, le=30000)


class BurnWindow(Strict):
    """A burn-rate alarm: fires when BOTH windows burn faster than `burn_rate` x the budget's even pace."""

    long_minutes: int = Field(ge=5, le=1440)
    short_minutes: int = Field(ge=1, le=1440)
    burn_rate: float = Field(gt=1, le=1000)

    @model_validator(mode="after")
    def _windows(self) -> BurnWindow:
        if self.short_minutes >= self.long_minutes:
            raise ValueError("short_minutes must be shorter than long_minutes")
        for window in (self.long_minutes, self.short_minutes):
            if window % 5 and window != 1:
                raise ValueError(f"window {window} min: use 1 or a multiple of 5 minutes")
        return self


class SloConfig(Strict):
    # The budget period the burn rates are measured against.
    period_days: int = Field(default=30, ge=7, le=90)
    objectives: list[SloObjective] = Field(
        default=[
            SloObjective(name="approvals", paths=["/api/approvals", "/api/process", "/api/processing"]),
            SloObjective(name="employees", paths=["/api/employees", "/api/attendance", "/api/leaves", "/api/quests"]),
            SloObjective(name="notifications", paths=["/api/notifications"], p99_latency_ms=1000),
        ],
        min_length=1,
    )
    # Google SRE workbook, "Alerting on SLOs": 2 % of a 30-day budget in 1 h pages; 5 % in 6 h tickets.
    fast: BurnWindow = BurnWindow(long_minutes=60, short_minutes=5, burn_rate=14.4)
    slow: BurnWindow = BurnWindow(long_minutes=360, short_minutes=30, burn_rate=6)
    # Below this many requests in a window the burn rate is noise (a single 5xx at night is not an outage).
    min_requests: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _unique(self) -> SloConfig:
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objective names must be unique")
        paths = [p for o in self.objectives for p in o.paths]
        if len(set(paths)) != len(paths):
            raise ValueError("a path belongs to one objective only")
        return self


class KafkaHealthConfig(Strict):
    """What the Kafka alarms watch (metrics from kafka-exporter via the collector, disk from the kubelet)."""

    # The consumer groups of the facts sheet: approval-processing-service and approval-request-service's results.
    consumer_groups: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]] = [
        "approval-processing-group",
        "approval-request-group",
    ]
    # Lag (messages) that alarms once it has grown for `lag_growing_minutes`.
    lag_messages: int = Field(default=100, ge=1)
    lag_growing_minutes: int = Field(default=15, ge=5, le=1440)
    disk_used_pct: float = Field(default=80.0, gt=0, lt=100)


class SlackChannelConfig(Strict):
    """A Slack channel already authorised in Amazon Q Developer in chat applications (console, once per workspace)."""

    workspace_id: Annotated[str, StringConstraints(pattern=r"^T[A-Z0-9]{8,}$")]
    channel_id: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{9,}$")]


class DriftConfig(Strict):
    enabled: bool = True
    # EventBridge Scheduler cron (6 fields), in the schedule's timezone.
    schedule: str = Field(default="cron(0 6 * * ? *)", pattern=r"^cron\([^()]+\)$")
    timezone: TimeZone = "Asia/Seoul"


class ObservabilityConfig(Strict):
    alarm_emails: list[Email] = []
    log_retention_days: RetentionDays = 30
    # The ONE name Fluent Bit writes to and the alarms read; defaults per env.
    application_log_group: str | None = None
    container_insights: bool = True
    thresholds: Thresholds = Thresholds()
    xray_sampling_rate: float = Field(default=0.05, ge=0, le=1)
    slo: SloConfig = SloConfig()
    kafka: KafkaHealthConfig = KafkaHealthConfig()
    drift: DriftConfig = DriftConfig()
    # Alarms, drift results (and, in config/toolchain.yaml, pipeline events) also go here; e-mail stays.
    chat: SlackChannelConfig | None = None


class Taint(Strict):
    key: str
    value: str
    effect: Literal["NoSchedule", "NoExecute", "PreferNoSchedule"] = "NoSchedule"


class NodeGroupConfig(Strict):
    """instance_types, capacity, disk_gib and the group itself are create-only in EKS: changing them REPLACES
    the node group (and with a fixed name the replacement fails): add a new group, move pods, delete the old."""

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
    reloader: str = "2.2.16"  # stakater/reloader chart (app v1.4.21): rolls workloads on Secret change
    # kubernetes/autoscaler chart; it runs Cluster Autoscaler of the cluster's minor (k8s_charts/images.py)
    cluster_autoscaler: str = "9.59.0"


class ClusterConfig(Strict):
    # The control plane's minor. Changing it by one minor upgrades the control plane, then the add-ons (pinned per
    # minor in config/kubernetes-versions.yaml), then rolls the node groups (README: Kubernetes upgrades).
    kubernetes_version: str = "1.36"
    # The node groups' minor while a control-plane upgrade bakes: one minor behind kubernetes_version keeps EKS's
    # 7-day control-plane rollback open without rolling the nodes back first. None: the control plane's.
    node_kubernetes_version: str | None = None
    endpoint_public_cidrs: list[str] = []
    # Who reaches the Kubernetes API: "private" (only from inside the VPC: the nodes, the kubectl Lambda, which
    # runs in the private subnets), "both" (also from endpoint_public_cidrs over the internet), "public" (internet
    # only: the nodes then come through the NAT addresses, so no CIDR restriction). Unset: "both" when
    # endpoint_public_cidrs are given, else "private". Production is private (config/models.py).
    endpoint_access: Literal["public", "private", "both"] | None = None
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

    @field_validator("node_kubernetes_version")
    @classmethod
    def _node_version(cls, value: str | None, info: ValidationInfo) -> str | None:
        control = info.data.get("kubernetes_version")
        if value is None or control is None or value == control:
            return value
        if value not in SUPPORTED_KUBERNETES:
            raise ValueError(f"must be a version in EKS standard support: one of {sorted(SUPPORTED_KUBERNETES)}")
        (c_major, c_minor), (n_major, n_minor) = (tuple(map(int, v.split("."))) for v in (control, value))
        if n_major != c_major or not 0 < c_minor - n_minor <= 1:
            raise ValueError(
                f"{value} with the control plane at {control}: nodes may stay one minor behind while an upgrade "
                "bakes, never ahead and never further"
            )
        return value

    @property
    def node_version(self) -> str:
        return self.node_kubernetes_version or self.kubernetes_version

    @field_validator("endpoint_public_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a valid CIDR block ({exc})") from None
        return value

    @field_validator("endpoint_access")
    @classmethod
    def _access(cls, value: str | None, info: ValidationInfo) -> str | None:
        cidrs = info.data.get("endpoint_public_cidrs") or []
        if value == "private" and cidrs:
            raise ValueError(
                "private takes no endpoint_public_cidrs (nothing outside the VPC reaches a private endpoint): "
                "remove them, or say both"
            )
        if value == "public" and cidrs:
            raise ValueError(
                "public with endpoint_public_cidrs locks the nodes out (they reach a public-only endpoint from the "
                "NAT addresses): say both"
            )
        return value

    @property
    def endpoint_mode(self) -> Literal["public", "private", "both"]:
        """endpoint_access, or what it means when unset."""
        if self.endpoint_access is not None:
            return self.endpoint_access
        return "both" if self.endpoint_public_cidrs else "private"

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
    # CPU architectures the image runs on: the pods are pinned to nodes of one of them.
    architectures: list[Literal["amd64", "arm64"]] = Field(default=["amd64"], min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> ImageConfig:
        pinned = self.tag is not None or self.digest is not None
        if pinned == (self.build_dir is not None):
            raise ValueError("give exactly one of: tag/digest (a pinned image) or build_dir")
        if self.tag is not None and self.tag in ("latest", ""):
            raise ValueError("tag 'latest' is not allowed: pin a version or a digest")
        if self.tag is not None and self.tag.startswith(CI_TAG_PREFIX):
            raise ValueError(
                f"tag {self.tag!r}: {CI_TAG_PREFIX}* tags are CI builds the ECR lifecycle expires; pin a release tag"
            )
        return self


class ServiceConfig(Strict):
    name: K8sName
    port: int = Field(ge=1024, le=65535)
    # Gateway routes to this service and the path it receives (config/hosting.py).
    routes: list[RouteConfig] = Field(min_length=1)
    image: ImageConfig
    # What the service's code uses (config/hosting.py PLATFORM_DEPENDENCIES or another service's name): the
    # ONLY source of its variables, secrets and egress.
    uses: list[str] = []
    # Topics whose names it reads as kafka.topics.<topic> (KAFKA_TOPICS_<TOPIC>); needs `kafka` in uses.
    kafka_topics: list[str] = []
    # Pod probes and the NLB health check; TCP unless the service really serves an HTTP health path.
    health: HealthCheckConfig = HealthCheckConfig()
    # Keeps state in memory (one consumer, one queue): exactly one pod, no autoscaling.
    singleton: bool = False
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
        if self.singleton and (self.replicas, self.min_replicas, self.max_replicas) != (1, 1, 1):
            raise ValueError(
                f"services[{self.name}]: a singleton runs exactly one pod and is never autoscaled "
                "(set replicas, min_replicas and max_replicas to 1)"
            )
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError("replicas must satisfy min_replicas <= replicas <= max_replicas")
        if self.kafka_topics and "kafka" not in self.uses:
            raise ValueError(f"services[{self.name}].kafka_topics: the service must declare kafka in uses")
        if len(self.uses) != len(set(self.uses)):
            raise ValueError(f"services[{self.name}].uses: duplicates")
        return self

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas > self.min_replicas


# segment.bytes of every topic: a partition holds up to retention.bytes plus one active segment on disk.
KAFKA_SEGMENT_BYTES = 64 * 1024**2


class KafkaTopic(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,200}$")]
    partitions: int = Field(default=3, ge=1, le=100)
    # retention.ms of the topic; the topics Job sets it on every run (partitions can only grow).
    retention_hours: int = Field(default=168, ge=1, le=87600)
    # retention.bytes per partition; None: the topic's even share of the volume (KafkaConfig.retention_bytes).
    retention_bytes: int | None = Field(default=None, ge=KAFKA_SEGMENT_BYTES)


class KafkaConfig(Strict):
    # The image is k8s_charts/images.KAFKA: digest-pinned, through the stage's ECR pull-through cache.
    replicas: Literal[1, 3, 5]
    # The size the brokers' volumes have. Grows in place: the PVCs are patched, the StatefulSet is not touched.
    storage_gib: int = Field(default=20, ge=1, le=16384)
    # The size in the StatefulSet's volumeClaimTemplates, which Kubernetes never lets change: fixed at the first
    # deploy (None: storage_gib at that time; write it down before changing storage_gib, see README).
    initial_storage_gib: int | None = Field(default=None, ge=1, le=16384)
    topics: list[KafkaTopic] = [KafkaTopic(name="approval-requests"), KafkaTopic(name="approval-results")]
    cpu_request: Quantity = "250m"
    memory_request: Quantity = "1Gi"
    memory_limit: Quantity = "2Gi"
    # Share of a broker's volume the topics' partitions may fill (the rest: __consumer_offsets, logs, headroom).
    topic_disk_share_pct: int = Field(default=70, ge=10, le=90)

    @model_validator(mode="after")
    def _storage(self) -> KafkaConfig:
        if self.initial_storage_gib is not None and self.storage_gib < self.initial_storage_gib:
            raise ValueError(
                f"storage_gib {self.storage_gib} < initial_storage_gib {self.initial_storage_gib}: "
                "EBS volumes cannot shrink (move the data to a new cluster by hand instead)"
            )
        worst = self.partitions_per_broker * (self._largest_retention + KAFKA_SEGMENT_BYTES)
        budget = self.topic_budget_bytes
        if worst > budget:
            raise ValueError(
                f"topics need up to {worst / 1024**3:.1f} GiB per broker (partitions x (retention_bytes + "
                f"segment)) but topic_disk_share_pct {self.topic_disk_share_pct} of storage_gib {self.storage_gib} "
                f"is {budget / 1024**3:.1f} GiB: lower retention_bytes or partitions, or grow storage_gib"
            )
        return self

    @property
    def partitions_per_broker(self) -> int:
        """Replicas of every topic's partitions land on the brokers evenly (RF = min(3, replicas))."""
        replication = min(3, self.replicas)
        return -(-sum(t.partitions for t in self.topics) * replication // self.replicas)

    @property
    def topic_budget_bytes(self) -> int:
        return self.storage_gib * 1024**3 * self.topic_disk_share_pct // 100

    def retention_bytes(self, topic: KafkaTopic) -> int:
        """A topic's retention.bytes: its own, or an even share of the budget so the volume cannot fill."""
        if topic.retention_bytes is not None:
            return topic.retention_bytes
        even = self.topic_budget_bytes // self.partitions_per_broker - KAFKA_SEGMENT_BYTES
        return max(even, KAFKA_SEGMENT_BYTES)

    @property
    def _largest_retention(self) -> int:
        explicit = [t.retention_bytes for t in self.topics if t.retention_bytes is not None]
        even = self.topic_budget_bytes // max(self.partitions_per_broker, 1) - KAFKA_SEGMENT_BYTES
        return max([*explicit, max(even, KAFKA_SEGMENT_BYTES)])

    @property
    def template_storage_gib(self) -> int:
        return self.initial_storage_gib or self.storage_gib


PullThroughCacheSecretArn = Annotated[
    str,
    StringConstraints(
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/[\w/+=.@-]+$"
    ),
]


class RegistryConfig(Strict):
    """ECR pull-through cache. Docker Hub and GitHub's container registry need credentials: create (once, by
    hand) a Secrets Manager secret per upstream named `ecr-pullthroughcache/<anything>` holding
    {"username": ..., "accessToken": ...} in the stage account and region (Docker Hub: an access token; GitHub:
    a classic token with read:packages only), and give its full ARN here (README: Supply chain)."""

    docker_hub_credential_arn: PullThroughCacheSecretArn
    # External Secrets' controller image is published on ghcr.io only (k8s_charts/images.EXTERNAL_SECRETS).
    github_credential_arn: PullThroughCacheSecretArn


class ApiConfig(Strict):
    throttle_rate: int = Field(default=100, ge=1)
    throttle_burst: int = Field(default=200, ge=1)
    # Origins other than the edge's that call the API from a browser (the edge's own pages call it on their own
    # origin and need no CORS): e.g. a frontend on http://localhost:3000 during development.
    cors_origins: list[str] = []
    # The API's own domain (a regional ACM certificate in the environment's region). With edge_only it is the
    # edge's origin for /api/* and the API answers nowhere else: its execute-api endpoint is disabled.
    domain_name: HostName | None = None
    certificate_arn: AcmCertificateArn | None = None
    edge_only: bool = False
    access_log_retention_days: RetentionDays = 30
    # Routes only members of a privileged group may call; each group must be in auth.admin_groups or
    # auth.manager_groups. DELETE /api/approvals deletes every approval in the real service.
    # The Spring approval services trust the ids in their request bodies, so the gateway decides who may
    # decide an approval; the approvals route itself only routes GET and POST (config/<env>.yaml).
    restricted_routes: list[RestrictedRoute] = [
        RestrictedRoute(method="DELETE", path="/api/approvals", groups=["admin"]),
        RestrictedRoute(method="PUT", path="/api/approvals/{id}/approve", groups=["admin", "manager"]),
        RestrictedRoute(method="PUT", path="/api/approvals/{id}/reject", groups=["admin", "manager"]),
        # The employee Lambda checks these too (managers may delete employees and adjust balances, never
        # their own; deduct-leave is the in-cluster caller's, or an admin's).
        RestrictedRoute(method="DELETE", path=f"{EMPLOYEES_PATH}/{{proxy+}}", groups=["admin", "manager"]),
        RestrictedRoute(method="PUT", path=f"{EMPLOYEES_PATH}/{{id}}/leave-balance", groups=["admin", "manager"]),
        RestrictedRoute(method="POST", path=f"{EMPLOYEES_PATH}/{{id}}/deduct-leave", groups=["admin"]),
    ]

    @model_validator(mode="after")
    def _domain(self) -> ApiConfig:
        if (self.domain_name is None) != (self.certificate_arn is None):
            raise ValueError("domain_name and certificate_arn go together")
        return self


# CloudFront takes a certificate only from ACM in us-east-1 (and the CLOUDFRONT-scope web ACL lives there too).
EDGE_REGION = "us-east-1"
HostName = Annotated[
    str, StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)
]
AcmCertificateArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate/[0-9a-f-]{36}$")
]


class EdgeWafConfig(Strict):
    """A CLOUDFRONT-scope web ACL in front of everything the browser reaches (the SPA and /api/*)."""

    enabled: bool = False
    # Requests per client IP per 5 minutes, any path; past it the IP is blocked until its rate falls.
    rate_limit: int = Field(default=2000, ge=10, le=2_000_000_000)
    # Managed rules switched to COUNT (seen in metrics, not blocked) when they block legitimate traffic,
    # e.g. SizeRestrictions_BODY for an upload: each name must be a rule of the managed groups
    # (constructs_lib/edge/waf.py MANAGED_RULE_NAMES).
    count_only_rules: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,128}$")]] = []
    # Blocked requests in 5 minutes that page someone (a spike: an attack or a rule blocking real users).
    blocked_alarm_threshold: int = Field(default=200, ge=1)


class EdgeConfig(Strict):
    """The one public address: the frontend from a private bucket, /api/* to the HTTP API (same origin)."""

    # None: CloudFront's own dxxxx.cloudfront.net address (TLS 1.2+ needs a custom domain: CloudFront fixes the
    # minimum protocol of its default certificate). With a domain: its certificate, in ACM in us-east-1.
    domain_name: HostName | None = None
    certificate_arn: AcmCertificateArn | None = None
    # PriceClass_200 serves Korea from Korean edges; PriceClass_100 would send Korean users to Japan or beyond.
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_200"
    waf: EdgeWafConfig = EdgeWafConfig()
    # CloudFront and S3 access logs (a bucket in us-east-1), and old versions of published files.
    access_log_retention_days: int = Field(default=90, ge=1, le=3653)
    noncurrent_version_days: int = Field(default=30, ge=1, le=3653)
    # 5xx responses (percent of requests, 5-minute average) that page someone.
    error_rate_alarm_pct: float = Field(default=5.0, gt=0, le=100)

    @model_validator(mode="after")
    def _domain(self) -> EdgeConfig:
        if (self.domain_name is None) != (self.certificate_arn is None):
            raise ValueError("domain_name and certificate_arn go together")
        if self.certificate_arn and f":acm:{EDGE_REGION}:" not in self.certificate_arn:
            raise ValueError(f"certificate_arn: CloudFront takes certificates from ACM in {EDGE_REGION} only")
        return self


# A mail domain as people type it after the "@" (lower case, at least one dot, no wildcard).
MailDomain = Annotated[
    str, StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)
]
# The scope the pre-token trigger grants for a verified address (f"{project}/verified"): a group of that name
# would grant it without the proof.
VERIFIED_SCOPE = "verified"


class AuthEmailConfig(Strict):
    """Sign-up and invitation mail through SES instead of Cognito's default sender (about 50 mails a day per
    account). The identity (the domain, else the address) must be verified in SES and out of the SES sandbox
    before the first deploy (README: First deploy into fresh accounts)."""

    from_address: Email
    from_name: str | None = Field(default=None, max_length=64)
    verified_domain: MailDomain | None = None
    # SES regions Cognito may send from; None: this environment's region.
    ses_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    @model_validator(mode="after")
    def _domain(self) -> AuthEmailConfig:
        if self.verified_domain and not self.from_address.lower().endswith("@" + self.verified_domain):
            raise ValueError(f"from_address must be an address at verified_domain {self.verified_domain}")
        return self


class AuthConfig(Strict):
    """The user pool's custom attributes (custom:position, custom:department, custom:employeeId) live in
    constructs_lib/auth/user_pool.py. Adding a custom attribute to a live pool works; removing or renaming one
    (or changing its type or mutability) does not: Cognito never deletes schema attributes. The sign-in
    aliases, username case sensitivity and required standard attributes are fixed there too, because
    changing any of them REPLACES the pool (every account lost)."""

    # "optional": TOTP for whoever sets it up; the ERP frontend as built has no MFA screens, so "required"
    # needs its app-side change (docs/app-changes/03-frontend-mfa-required.diff).
    mfa: Literal["optional", "required"] = "optional"
    # Self sign-up is open to these mail domains only (pre-sign-up refuses the rest); an empty list turns
    # self sign-up off: an administrator creates every account (`make user ... CREATE=1`).
    allowed_signup_domains: list[MailDomain] = []
    # None: Cognito's default sender (about 50 mails a day per account; dev only).
    email: AuthEmailConfig | None = None
    # Cognito threat protection (Plus tier, billed per active user, no free tier): "enforced" blocks sign-in
    # and sign-up with leaked credentials and high-risk sign-ins; "audit" only records risk.
    threat_protection: Literal["off", "audit", "enforced"] = "off"
    # The managed sign-in pages return to the edge's address (constructs_lib/auth/sign_in_client.py); these are
    # extra return addresses, e.g. a frontend on localhost during development. Logout URLs are their origins.
    # Production allows only https (and no localhost).
    callback_urls: list[str] = []
    # WAF rate-based rule on the pool: sign-up/sign-in calls per client IP per 5 minutes (None: no WAF).
    signin_rate_limit: int | None = Field(default=None, ge=10, le=2_000_000_000)
    # Cognito groups (assigned by an administrator with `make user`, never at sign-up) that carry privileges.
    # Their verified members' access tokens get the scope f"{project}/{group}" (pre-token-generation trigger);
    # the gateway's group routes and the employee Lambda's checks read groups from the token.
    admin_groups: list[GroupName] = Field(default=["admin"], min_length=1)
    manager_groups: list[GroupName] = Field(default=["manager"], min_length=1)

    @model_validator(mode="after")
    def _groups(self) -> AuthConfig:
        if VERIFIED_SCOPE in {*self.admin_groups, *self.manager_groups}:
            raise ValueError(f"a group named {VERIFIED_SCOPE!r} would collide with the verified-identity scope")
        return self

    @property
    def self_sign_up(self) -> bool:
        return bool(self.allowed_signup_domains)


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
    # The calendar day of "one check-in per day" (the migration backfills existing rows in it too).
    business_timezone: TimeZone = "Asia/Seoul"
    # Largest deduction the in-cluster caller may make in one call: approval-request-service trusts the
    # requesterId of its request body, so this caps what one approval can take. 25 = the most annual leave
    # the Korean Labor Standards Act grants in a year.
    max_leave_deduction_days: int = Field(default=25, ge=1, le=366)
    # The gateway routes to the Lambda; it keeps the /api prefix (the real employee service's context path).
    routes: list[RouteConfig] = [
        RouteConfig(path=EMPLOYEES_PATH),
        RouteConfig(path="/api/attendance"),
        RouteConfig(path="/api/quests"),
        RouteConfig(path="/api/leaves"),
    ]


class ScheduleConfig(Strict):
    """Office hours in which a non-prod environment runs; it sleeps outside them."""

    timezone: TimeZone = "Asia/Seoul"
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


# `copy` (the field name the backup code reads) shadows BaseModel.copy, pydantic v1's deprecated method that
# model_copy replaced; nothing here calls it. Only these two models' warning is silenced.
warnings.filterwarnings("ignore", message=r'Field name "copy" in "Backup(Rule|Config)" shadows', category=UserWarning)
# AWS Backup's cron: six fields (minutes hours day-of-month month day-of-week year) inside cron(...).
BackupCron = Annotated[str, StringConstraints(pattern=r"^cron\([^()\s]+( [^()\s]+){5}\)$")]
RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
# AWS Backup's bounds for a recovery point's lifetime and a vault lock's retention.
BACKUP_MAX_DAYS = 36500


class BackupRule(Strict):
    """One rule of the environment's backup plan: when AWS Backup starts a job and how long the point lives."""

    name: K8sName
    schedule: BackupCron
    timezone: TimeZone = "Asia/Seoul"
    retention_days: int = Field(ge=1, le=BACKUP_MAX_DAYS)
    # A job that has not started this long after the scheduled time is cancelled (AWS Backup's minimum: 60).
    start_window_minutes: int = Field(default=60, ge=60)
    # ... and one still running this long after it is stopped.
    completion_window_minutes: int = 480
    # Copied to the second region's vault when backup.copy is set.
    copy: bool = True

    @model_validator(mode="after")
    def _windows(self) -> BackupRule:
        if self.completion_window_minutes < self.start_window_minutes + 60:
            raise ValueError(
                f"completion_window_minutes must be at least start_window_minutes + 60 "
                f"({self.start_window_minutes + 60}): AWS Backup refuses a shorter completion window"
            )
        return self


class BackupCopyConfig(Strict):
    """Where prod's recovery points are copied (a vault of the same account in another region)."""

    region: RegionName
    retention_days: int = Field(ge=1, le=BACKUP_MAX_DAYS)


class VaultLockConfig(Strict):
    """AWS Backup Vault Lock. governance: recovery points cannot be deleted or shortened below min_retention_days,
    but a principal allowed backup:DeleteBackupVaultLockConfiguration may remove the lock. compliance: after
    changeable_for_days the lock can NEVER be removed or changed, by anyone (AWS included); every point is kept at
    least min_retention_days and the vault cannot be deleted until it is empty."""

    mode: Literal["governance", "compliance"]
    min_retention_days: int = Field(ge=1, le=BACKUP_MAX_DAYS)
    max_retention_days: int | None = Field(default=None, ge=1, le=BACKUP_MAX_DAYS)
    # compliance only: the grace period (days) in which the lock can still be removed; AWS's minimum is 3.
    changeable_for_days: int = Field(default=3, ge=3)

    @model_validator(mode="after")
    def _bounds(self) -> VaultLockConfig:
        if self.max_retention_days is not None and self.max_retention_days < self.min_retention_days:
            raise ValueError("max_retention_days must be >= min_retention_days")
        if self.mode == "governance" and "changeable_for_days" in self.model_fields_set:
            raise ValueError(
                "changeable_for_days: only compliance mode has a grace period (governance stays removable)"
            )
        return self


class RestoreDrillConfig(Strict):
    """The restore drill: the latest database recovery point restored into a temporary instance and checked."""

    # None: on demand only (started by hand).
    schedule: BackupCron | None = None
    timezone: TimeZone = "Asia/Seoul"
    instance_class: str = "t4g.micro"
    # Alarm when a restore takes longer than this (the measured RTO of the database) ...
    rto_target_minutes: int = Field(default=60, ge=5, le=1440)
    # ... or the restored point is older than this (the RPO the plan achieves).
    rpo_target_hours: int = Field(default=26, ge=1, le=8760)
    # How far each employee table's row count may fall below the live database's (rows written since the point).
    row_count_tolerance_pct: float = Field(default=10, ge=0, le=100)
    # The whole drill, restore and cleanup included; past it the run fails (and still cleans up).
    timeout_minutes: int = Field(default=180, ge=30, le=1440)


class BackupConfig(Strict):
    """AWS Backup of the database and Kafka's volumes (constructs_lib/data/backup.py)."""

    rules: list[BackupRule] = Field(min_length=1)
    # None: no second-region copy (production requires one).
    copy: BackupCopyConfig | None = None
    # None: no vault lock (production requires one). Applied to the copy vault too.
    vault_lock: VaultLockConfig | None = None
    drill: RestoreDrillConfig = RestoreDrillConfig()

    @model_validator(mode="after")
    def _rules(self) -> BackupConfig:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rules: names must be unique")
        if self.copy is not None and not any(r.copy for r in self.rules):
            raise ValueError("copy: no rule has copy: true, so nothing would reach the second region")
        lock = self.vault_lock
        if lock is None:
            return self
        upper = lock.max_retention_days or BACKUP_MAX_DAYS
        lifetimes = [(f"rules[{r.name}].retention_days", r.retention_days) for r in self.rules]
        if self.copy is not None:
            lifetimes.append(("copy.retention_days", self.copy.retention_days))
        for field, days in lifetimes:
            if not lock.min_retention_days <= days <= upper:
                raise ValueError(
                    f"{field}: {days} days is outside the vault lock's [{lock.min_retention_days}, {upper}] "
                    "(AWS Backup refuses the job)"
                )
        return self


DEFAULT_BACKUP = BackupConfig(rules=[BackupRule(name="daily", schedule="cron(0 7 * * ? *)", retention_days=7)])


class UsageAssumptions(Strict):
    """Inputs for usage-billed items in the cost estimate (stated, not measured)."""

    api_requests_per_month: int = Field(default=1_000_000, ge=0)
    lambda_invocations_per_month: int = Field(default=500_000, ge=0)
    lambda_avg_duration_ms: int = Field(default=100, ge=1)
    log_ingest_gb_per_month: float = Field(default=5.0, ge=0)
    log_stored_gb: float = Field(default=10.0, ge=0)
    # Requests the user pool's WAF web ACL inspects (every call to the pool is counted, not only sign-ins).
    auth_requests_per_month: int = Field(default=200_000, ge=0)
    # People who sign in at least once a month (Cognito bills Plus per active user, Essentials past 10k).
    monthly_active_users: int = Field(default=100, ge=0)
    # Sign-up links, invitations and password resets sent through SES.
    auth_emails_per_month: int = Field(default=200, ge=0)
    nat_processed_gb_per_month: float = Field(default=20.0, ge=0)
    # What browsers fetch from the edge: pages, assets and API calls (each API call is also an HTTP API request),
    # and the bytes it sends them; the first 10 M requests and 1 TB a month are free.
    edge_requests_per_month: int = Field(default=2_000_000, ge=0)
    edge_transfer_gb_per_month: float = Field(default=20.0, ge=0)
    # The published frontend (all versions kept for noncurrent_version_days) and the edge's access logs.
    frontend_storage_gb: float = Field(default=0.1, ge=0)
    edge_log_storage_gb: float = Field(default=2.0, ge=0)
    rds_backup_gb: float = Field(default=0.0, ge=0)
    # AWS Backup: what one full recovery point holds, the database's data and the written blocks of all Kafka
    # volumes together (None: the DB's allocated storage / replicas x storage_gib, upper bounds: snapshots store
    # written blocks only). Each later point of a rule stores what changed since the one before: backup_change_pct
    # of the data per day between two points (at most a full copy); a cross-region copy transfers that increment.
    backup_db_gb: float | None = Field(default=None, ge=0)
    backup_kafka_gb: float | None = Field(default=None, ge=0)
    backup_change_pct: float = Field(default=5.0, ge=0, le=100)
    # How long the restore drill's temporary instance lives per run: restore, check, delete (~30-60 min).
    drill_instance_hours: float = Field(default=1.0, gt=0, le=24)
    # Custom metrics the kafka-metrics collector puts into CloudWatch; None: the series its config declares
    # (k8s_charts/kafka_metrics.emitted_metric_count: 8 with one broker, 12 with three).
    collector_custom_metrics: int | None = Field(default=None, ge=0)

"""Monthly cost estimate of one environment, read from the synthesized templates.

It reads CloudFormation, not the CDK code, so it prices what would really be
deployed. Prices come from tools/prices-ap-northeast-2.yaml; whatever that file
cannot price is listed as *unpriced* with the reason, never counted as $0, and a
resource type the estimator does not know is listed too, never dropped.

    python -m tools.cost --env dev [--cdk-out cdk.out] [--format text|markdown|json]
                         [--compare BASE_CDK_OUT | --compare-graviton] [--include-pipeline]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config import ConfigError, load_environment
from config.models import EnvironmentConfig

PRICE_FILE = Path(__file__).with_name("prices-ap-northeast-2.yaml")
HOURS_PER_MONTH = 730.0
ENV_WIDE = "(env-wide)"
PIPELINE_STACK = re.compile(r"pipeline|toolchain", re.IGNORECASE)
FREE_DASHBOARDS_PER_ACCOUNT = 3
MIN_SERVERLESS_CACHE_GB = 0.1

# Usage the config has no field for yet; stated in every estimate's assumptions.
PIPELINE_RUNS_PER_MONTH = 40
PIPELINE_ACTION_MINUTES_PER_RUN = 30
BUILD_MINUTES_PER_PROJECT_RUN = 5
ECR_GB_PER_REPOSITORY = 1.0

# Types that cost nothing by themselves (what they create is priced elsewhere).
# fmt: off
FREE_TYPES = {
    "AWS::CDK::Metadata", "AWS::CloudFormation::CustomResource", "AWS::CloudFormation::WaitCondition",
    "AWS::CloudFormation::WaitConditionHandle", "AWS::CertificateManager::Certificate",
    "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::EgressOnlyInternetGateway", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress", "AWS::EC2::NetworkAcl", "AWS::EC2::NetworkAclEntry",
    "AWS::EC2::SubnetNetworkAclAssociation", "AWS::EC2::LaunchTemplate", "AWS::EC2::FlowLog",
    "AWS::EC2::EIPAssociation", "AWS::EC2::PrefixList",
    "AWS::EKS::AccessEntry", "AWS::EKS::Addon", "AWS::EKS::PodIdentityAssociation",
    "AWS::EKS::IdentityProviderConfig",
    "AWS::Lambda::Permission", "AWS::Lambda::LayerVersion", "AWS::Lambda::Version", "AWS::Lambda::Alias",
    "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::Url",
    "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer", "AWS::ApiGatewayV2::VpcLink", "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::ElasticLoadBalancingV2::ListenerCertificate",
    "AWS::RDS::DBSubnetGroup", "AWS::RDS::DBParameterGroup", "AWS::RDS::OptionGroup",
    "AWS::ElastiCache::SubnetGroup", "AWS::ElastiCache::ParameterGroup", "AWS::ElastiCache::User",
    "AWS::ElastiCache::UserGroup",
    "AWS::SecretsManager::SecretTargetAttachment", "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::ResourcePolicy", "AWS::KMS::Alias",
    "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolDomain", "AWS::Cognito::UserPoolGroup",
    "AWS::Cognito::UserPoolResourceServer",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::ECR::PullThroughCacheRule", "AWS::ECR::RegistryScanningConfiguration",
    "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy",
    "AWS::Events::Rule", "AWS::Scheduler::Schedule", "AWS::Scheduler::ScheduleGroup",
    "AWS::Logs::ResourcePolicy", "AWS::XRay::SamplingRule", "AWS::XRay::Group",
    "AWS::CodeStarNotifications::NotificationRule", "AWS::CodeStarConnections::Connection",
}
# fmt: on
FREE_PREFIXES = ("AWS::IAM::", "Custom::")


class Unpriceable(Exception):
    """This resource (or part of it) cannot be priced; the message says why."""


@dataclass(frozen=True)
class Price:
    usd: float | None
    unit: str
    source: str
    as_of: str

    @property
    def level(self) -> str:
        return self.source.split(":", 1)[0].strip()

    @property
    def approximate(self) -> bool:
        return self.level == "C"


class PriceBook:
    def __init__(self, path: Path = PRICE_FILE) -> None:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data["hours_per_month"] != HOURS_PER_MONTH:
            raise ValueError(f"{path.name}: monthly prices must assume {HOURS_PER_MONTH:g} hours per month")
        self.as_of = str(data["as_of"])
        self.currency = data["currency"]
        self.region = data["region"]
        self._prices = {
            (service, item): Price(p["usd"], p["unit"], p["source"], str(p["as_of"]))
            for service, items in data["prices"].items()
            for item, p in items.items()
        }

    def get(self, service: str, item: str) -> Price:
        price = self._prices.get((service, item))
        if price is None:
            raise Unpriceable(f"no {service} price for {item!r} in {PRICE_FILE.name}")
        if price.usd is None:
            raise Unpriceable(f"{service} {item}: {price.source}")
        return price


@dataclass(eq=False)  # identity: rank() finds a resource among equal-looking ones
class Resource:
    stack: str
    logical_id: str  # resources of nested stacks read "Parent/Child"
    type: str
    props: dict
    template: dict  # its own template, to follow Refs to siblings

    @property
    def local_id(self) -> str:
        return self.logical_id.rsplit("/", 1)[-1]

    def siblings(self, rtype: str) -> Iterator[dict]:
        return (r for r in self.template.get("Resources", {}).values() if r.get("Type") == rtype)

    def unpriced(self, reason: str) -> Unpriced:
        return Unpriced(self.stack, self.logical_id, self.type, reason)


@dataclass
class Line:
    stack: str
    logical_id: str
    type: str
    item: str
    quantity: float
    quantity_unit: str
    price: Price
    hours: float | None
    usd: float

    def formula(self) -> str:
        qty = f"{_num(self.quantity)} {self.quantity_unit}".rstrip()
        text = f"{qty} × ${_rate(self.price.usd)}/{self.price.unit}"
        if self.hours is not None:
            text += f" × {_num(self.hours)}" + (" h" if _hourly(self.price) else f"/{HOURS_PER_MONTH:g} h")
        return text


@dataclass
class Unpriced:
    stack: str
    logical_id: str
    type: str
    reason: str


@dataclass
class Free:
    why: str


@dataclass
class Estimate:
    env: str
    region: str
    currency: str
    prices_as_of: str
    stacks: list[str]
    lines: list[Line] = field(default_factory=list)
    unpriced: list[Unpriced] = field(default_factory=list)
    free: Counter = field(default_factory=Counter)
    assumptions: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def subtotals(self) -> dict[str, float]:
        totals = dict.fromkeys(self.stacks, 0.0)
        for line in self.lines:
            totals[line.stack] = totals.get(line.stack, 0.0) + line.usd
        return totals

    @property
    def approximate(self) -> bool:
        return any(line.price.approximate for line in self.lines)


@dataclass
class Context:
    env: EnvironmentConfig
    book: PriceBook
    resources: list[Resource]
    node_hours: float
    db_hours: float
    api_functions: int

    def count(self, rtype: str) -> int:
        return sum(1 for r in self.resources if r.type == rtype)

    def rank(self, resource: Resource) -> int:
        """Position among resources of its type: free tiers go to the first ones."""
        return [r for r in self.resources if r.type == resource.type].index(resource)


Result = Line | Unpriced | Free
PRICERS: dict[str, Callable[[Resource, Context], list[Result]]] = {}


def pricer(*types: str):
    def register(fn):
        for rtype in types:
            PRICERS[rtype] = fn
        return fn

    return register


# ---------------------------------------------------------------- helpers


def _hourly(price: Price) -> bool:
    return price.unit.endswith("hour")


def _num(value: float, places: int = 4) -> str:
    return f"{value:,.{places}f}".rstrip("0").rstrip(".")


def _rate(usd: float) -> str:
    """A unit price: all its digits, but at least cents."""
    text = f"{usd:.10f}".rstrip("0")
    return text + "0" * max(0, 2 - len(text.split(".")[1]))


def _intrinsic(value: Any) -> bool:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key == "Ref" or key.startswith("Fn::")
    return isinstance(value, str) and "{{resolve:" in value


_MISSING = object()


def _prop(r: Resource, *path: str, default: Any = _MISSING) -> Any:
    """A plain property value; Unpriceable when it is missing or an unresolved intrinsic."""
    value: Any = r.props
    for key in path:
        if not isinstance(value, dict) or key not in value:
            if default is _MISSING:
                raise Unpriceable(f"{'.'.join(path)} is not set")
            return default
        value = value[key]
        if _intrinsic(value):
            raise Unpriceable(f"{'.'.join(path)} is an unresolved intrinsic {json.dumps(value)[:80]}")
    return value


def _plain(value: Any, what: str) -> Any:
    if _intrinsic(value):
        raise Unpriceable(f"{what} is an unresolved intrinsic {json.dumps(value)[:80]}")
    return value


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _refers_to(value: Any, logical_id: str) -> bool:
    if not isinstance(value, dict):
        return False
    if value.get("Ref") == logical_id:
        return True
    target = value.get("Fn::GetAtt")
    return (target[0] if isinstance(target, list) else str(target).split(".")[0]) == logical_id


def _line(
    r: Resource, ctx: Context, item: str, quantity: float, key: tuple[str, str], hours: float | None = None, unit=""
) -> Line | Unpriced:
    """quantity × price, × hours for hourly prices (all month unless told); a monthly price with
    fewer hours is prorated. An unknown price leaves this part unpriced, not the whole resource."""
    try:
        price = ctx.book.get(*key)
    except Unpriceable as exc:
        return r.unpriced(str(exc))
    if _hourly(price):
        hours = HOURS_PER_MONTH if hours is None else hours
        usd = quantity * price.usd * hours
    elif hours is not None and hours < HOURS_PER_MONTH:
        usd = quantity * price.usd * hours / HOURS_PER_MONTH
    else:
        hours, usd = None, quantity * price.usd
    return Line(r.stack, r.logical_id, r.type, item, quantity, unit, price, hours, usd)


def _scheduled(hours: float) -> str:
    return f"scheduled, {_num(hours, 1)} h/month" if hours < HOURS_PER_MONTH else "always on"


# ---------------------------------------------------------------- one pricer per resource type


@pricer("AWS::EKS::Cluster")
def _eks_cluster(r: Resource, ctx: Context) -> list[Result]:
    support = _prop(r, "UpgradePolicy", "SupportType", default="STANDARD")
    item = f"control plane, {support.lower()} support"
    if "UpgradePolicy" not in r.props:
        item += " (no UpgradePolicy: AWS bills EXTENDED once the version leaves standard support)"
    return [_line(r, ctx, item, 1, ("eks", f"control-plane-{support.lower()}"))]


@pricer("AWS::EKS::Nodegroup")
def _nodegroup(r: Resource, ctx: Context) -> list[Result]:
    instance_type = _plain(_prop(r, "InstanceTypes")[0], "InstanceTypes[0]")
    nodes = _prop(r, "ScalingConfig", "DesiredSize")
    disk = _prop(r, "DiskSize", default=20)
    hours = ctx.node_hours
    if _prop(r, "CapacityType", default="ON_DEMAND") == "SPOT":
        compute = r.unpriced(f"{nodes} × {instance_type} Spot: the Seoul Spot discount is unknown ('up to 90 %')")
    else:
        compute = _line(r, ctx, f"{instance_type} nodes ({_scheduled(hours)})", nodes, ("ec2", instance_type), hours)
    disks = _line(r, ctx, f"node root volumes, gp3 {disk} GiB each", nodes * disk, ("ebs", "gp3"), hours, "GB")
    return [compute, disks]


@pricer("AWS::EC2::NatGateway")
def _nat_gateway(r: Resource, ctx: Context) -> list[Result]:
    gateways = ctx.count(r.type)
    gb = ctx.env.usage.nat_processed_gb_per_month / gateways
    return [
        _line(r, ctx, "NAT gateway", 1, ("vpc", "nat-gateway")),
        _line(r, ctx, f"data processed (usage, split over {gateways})", gb, ("vpc", "nat-gateway-data"), unit="GB"),
    ]


def _public_ipv4(r: Resource) -> bool:
    """Auto-assigned public IPv4 (an EIP on the instance replaces it and is priced itself)."""
    if any(_refers_to(eip.get("Properties", {}).get("InstanceId"), r.local_id) for eip in r.siblings("AWS::EC2::EIP")):
        return False
    if any(_bool(nic.get("AssociatePublicIpAddress")) for nic in r.props.get("NetworkInterfaces", [])):
        return True
    subnet_ref = r.props.get("SubnetId")
    if subnet_ref is None:
        return False
    subnet = r.template.get("Resources", {}).get(subnet_ref.get("Ref", "") if isinstance(subnet_ref, dict) else "")
    if subnet is None:
        raise Unpriceable("public IPv4: SubnetId does not name a subnet of this template")
    return _bool(subnet.get("Properties", {}).get("MapPublicIpOnLaunch"))


@pricer("AWS::EC2::Instance")
def _instance(r: Resource, ctx: Context) -> list[Result]:
    instance_type = _prop(r, "InstanceType")
    out = [_line(r, ctx, f"{instance_type} instance", 1, ("ec2", instance_type))]
    try:
        if _public_ipv4(r):
            out.append(_line(r, ctx, "public IPv4 address", 1, ("vpc", "public-ipv4")))
    except Unpriceable as exc:
        out.append(r.unpriced(str(exc)))
    volumes = [m["Ebs"] for m in r.props.get("BlockDeviceMappings", []) if "Ebs" in m] or [{}]
    return out + [_ebs(r, ctx, ebs.get("VolumeSize"), ebs.get("VolumeType", "gp2")) for ebs in volumes]


def _ebs(r: Resource, ctx: Context, size: Any, volume_type: Any) -> Line | Unpriced:
    if size is None:
        return r.unpriced(
            f"EBS {volume_type} volume: its size comes from the AMI or snapshot, not the template "
            "(typically 8 GiB for a root volume)"
        )
    volume_type = _plain(volume_type, "VolumeType")
    return _line(
        r, ctx, f"EBS {volume_type} volume", float(_plain(size, "volume size")), ("ebs", volume_type), unit="GB"
    )


@pricer("AWS::EC2::Volume")
def _volume(r: Resource, ctx: Context) -> list[Result]:
    return [_ebs(r, ctx, _prop(r, "Size", default=None), _prop(r, "VolumeType", default="gp2"))]


@pricer("AWS::EC2::EIP")
def _eip(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "Elastic IP (public IPv4)", 1, ("vpc", "public-ipv4"))]


@pricer("AWS::ElasticLoadBalancingV2::LoadBalancer")
def _load_balancer(r: Resource, ctx: Context) -> list[Result]:
    kind = _prop(r, "Type", default="application")
    out = [_line(r, ctx, f"{kind} load balancer", 1, ("elb", kind))]
    if _prop(r, "Scheme", default="internet-facing") == "internet-facing":
        azs = len(_prop(r, "Subnets", default=None) or _prop(r, "SubnetMappings"))
        out.append(_line(r, ctx, "public IPv4 addresses (one per AZ)", azs, ("vpc", "public-ipv4")))
    return out


@pricer("AWS::EC2::VPCEndpoint")
def _vpc_endpoint(r: Resource, ctx: Context) -> list[Result]:
    kind = _prop(r, "VpcEndpointType", default="Gateway")
    if kind == "Gateway":
        return [Free("Gateway endpoint")]
    if kind != "Interface":
        raise Unpriceable(f"{kind} endpoints are not in the price file")
    service = _prop(r, "ServiceName", default="?")
    service = re.sub(r"^com\.amazonaws\.[a-z0-9-]+\.", "", service) if isinstance(service, str) else "?"
    azs = len(_prop(r, "SubnetIds"))
    return [_line(r, ctx, f"interface endpoint {service}", azs, ("vpc", "interface-endpoint"), unit="AZ")]


@pricer("AWS::RDS::DBInstance")
def _db_instance(r: Resource, ctx: Context) -> list[Result]:
    engine = str(_prop(r, "Engine")).lower()
    if engine != "mysql":
        raise Unpriceable(f"engine {engine!r}: only MySQL is in the price file")
    db_class = _prop(r, "DBInstanceClass")
    azs = "multi-az" if _bool(_prop(r, "MultiAZ", default=False)) else "single-az"
    storage_type = _prop(r, "StorageType", default="gp2")
    storage_gb = float(_prop(r, "AllocatedStorage"))
    backup_gb = ctx.env.usage.rds_backup_gb
    instance = f"{db_class} {azs} ({_scheduled(ctx.db_hours)})"
    out = [
        _line(r, ctx, instance, 1, ("rds-mysql", f"{db_class} {azs}"), ctx.db_hours),
        _line(r, ctx, f"{storage_type} storage", storage_gb, ("rds-storage", f"{storage_type} {azs}"), unit="GB"),
        _line(r, ctx, "backup beyond the free allowance (usage)", backup_gb, ("rds-storage", "backup"), unit="GB"),
    ]
    if str(_prop(r, "EngineVersion", default="")).startswith("8.0"):
        out.append(r.unpriced("MySQL 8.0 is billed extended support per vCPU-hour: vCPUs are not in the price file"))
    return out


@pricer("AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::CacheCluster")
def _cache_nodes(r: Resource, ctx: Context) -> list[Result]:
    engine = str(_prop(r, "Engine", default="redis")).lower()
    node_type = _prop(r, "CacheNodeType")
    if r.type == "AWS::ElastiCache::CacheCluster":
        nodes = int(_prop(r, "NumCacheNodes"))
    elif "NumCacheClusters" in r.props:
        nodes = int(_prop(r, "NumCacheClusters"))
    else:
        nodes = int(_prop(r, "NumNodeGroups", default=1)) * (1 + int(_prop(r, "ReplicasPerNodeGroup", default=0)))
    return [_line(r, ctx, f"{node_type} {engine} nodes", nodes, (f"elasticache-{engine}", node_type))]


@pricer("AWS::ElastiCache::ServerlessCache")
def _serverless_cache(r: Resource, ctx: Context) -> list[Result]:
    engine = str(_prop(r, "Engine")).lower()
    return [
        _line(
            r,
            ctx,
            "data stored (100 MB minimum)",
            MIN_SERVERLESS_CACHE_GB,
            (f"elasticache-{engine}", "serverless-storage"),
            unit="GB",
        ),
        r.unpriced("ECPUs: no usage assumption for serverless cache requests"),
    ]


@pricer("AWS::SecretsManager::Secret")
def _secret(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "secret", 1, ("secretsmanager", "secret"))]


@pricer("AWS::KMS::Key")
def _kms_key(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "customer managed key", 1, ("kms", "customer-key"))]


@pricer("AWS::SSM::Parameter")
def _ssm_parameter(r: Resource, ctx: Context) -> list[Result]:
    if _prop(r, "Tier", default="Standard") != "Advanced":
        return [Free("standard tier")]
    return [_line(r, ctx, "advanced parameter", 1, ("ssm", "advanced-parameter"))]


@pricer("AWS::CloudWatch::Alarm")
def _alarm(r: Resource, ctx: Context) -> list[Result]:
    metrics = _prop(r, "Metrics", default=None)
    stats = ([m["MetricStat"] for m in metrics if "MetricStat" in m] if metrics else [r.props]) or [{}]
    if min(int(_plain(s.get("Period", 60), "Period")) for s in stats) < 60:
        raise Unpriceable("high-resolution alarm (period < 60 s): price not in the price file")
    return [_line(r, ctx, "standard alarm (per metric)", len(stats), ("cloudwatch", "alarm-standard"))]


@pricer("AWS::CloudWatch::CompositeAlarm")
def _composite_alarm(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "composite alarm", 1, ("cloudwatch", "alarm-composite"))]


@pricer("AWS::CloudWatch::Dashboard")
def _dashboard(r: Resource, ctx: Context) -> list[Result]:
    if ctx.rank(r) < FREE_DASHBOARDS_PER_ACCOUNT:
        return [_line(r, ctx, "dashboard (one of the first 3, free per account)", 0, ("cloudwatch", "dashboard"))]
    return [_line(r, ctx, "dashboard (beyond the 3 free per account)", 1, ("cloudwatch", "dashboard"))]


@pricer("AWS::Logs::LogGroup")
def _log_group(r: Resource, ctx: Context) -> list[Result]:
    return [Free("billed by volume: see the env-wide CloudWatch Logs lines")]


@pricer("AWS::Logs::MetricFilter")
def _metric_filter(r: Resource, ctx: Context) -> list[Result]:
    metrics = len(_prop(r, "MetricTransformations"))
    return [_line(r, ctx, "custom metric (more if it has dimensions)", metrics, ("cloudwatch", "custom-metric"))]


@pricer("AWS::ApiGatewayV2::Api")
def _http_api(r: Resource, ctx: Context) -> list[Result]:
    protocol = _prop(r, "ProtocolType", default="HTTP")
    if protocol != "HTTP":
        raise Unpriceable(f"{protocol} APIs are not in the price file")
    apis = sum(1 for x in ctx.resources if x.type == r.type and x.props.get("ProtocolType", "HTTP") == "HTTP")
    requests = ctx.env.usage.api_requests_per_month / apis / 1e6
    return [
        _line(
            r, ctx, f"requests (usage, split over {apis} API(s))", requests, ("apigateway", "http-requests"), unit="M"
        )
    ]


def _behind_api(r: Resource) -> bool:
    return any(
        p.get("Properties", {}).get("Principal") == "apigateway.amazonaws.com"
        and _refers_to(p.get("Properties", {}).get("FunctionName"), r.local_id)
        for p in r.siblings("AWS::Lambda::Permission")
    )


@pricer("AWS::Lambda::Function")
def _function(r: Resource, ctx: Context) -> list[Result]:
    if not _behind_api(r):
        return [Free("not behind the HTTP API: deploy- or schedule-driven, negligible invocations")]
    arch = _plain(_prop(r, "Architectures", default=["x86_64"])[0], "Architectures[0]")
    memory_mb = _prop(r, "MemorySize", default=128)
    usage = ctx.env.usage
    invocations = usage.lambda_invocations_per_month / ctx.api_functions
    gb_seconds = invocations * usage.lambda_avg_duration_ms / 1000 * memory_mb / 1024
    item = f"compute {arch}, {memory_mb} MB × {usage.lambda_avg_duration_ms} ms (usage)"
    return [
        _line(r, ctx, item, gb_seconds, ("lambda", f"compute-{arch}"), unit="GB-s"),
        _line(r, ctx, "requests (usage)", invocations / 1e6, ("lambda", "requests"), unit="M"),
    ]


@pricer("AWS::CodePipeline::Pipeline")
def _pipeline(r: Resource, ctx: Context) -> list[Result]:
    if _prop(r, "PipelineType", default="V1") == "V1":
        return [_line(r, ctx, "V1 pipeline", 1, ("codepipeline", "v1-pipeline"))]
    minutes = PIPELINE_RUNS_PER_MONTH * PIPELINE_ACTION_MINUTES_PER_RUN
    return [_line(r, ctx, "V2 action minutes (assumed)", minutes, ("codepipeline", "v2-action-minute"), unit="min")]


@pricer("AWS::CodeBuild::Project")
def _build_project(r: Resource, ctx: Context) -> list[Result]:
    os_type = _prop(r, "Environment", "Type")
    if os_type != "LINUX_CONTAINER":
        raise Unpriceable(f"{os_type} build minutes are not in the price file")
    compute = _prop(r, "Environment", "ComputeType")
    minutes = PIPELINE_RUNS_PER_MONTH * BUILD_MINUTES_PER_PROJECT_RUN
    return [_line(r, ctx, f"{compute} build minutes (assumed)", minutes, ("codebuild", compute), unit="min")]


@pricer("AWS::ECR::Repository")
def _repository(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "image storage (assumed)", ECR_GB_PER_REPOSITORY, ("ecr", "storage"), unit="GB")]


@pricer("AWS::Cognito::UserPool")
def _user_pool(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "MAU beyond the 10k free (assumed under 10k)", 0, ("cognito", "essentials-mau"), unit="MAU")]


@pricer("AWS::WAFv2::WebACL")
def _web_acl(r: Resource, ctx: Context) -> list[Result]:
    """The prod user pool's rate limit: the ACL, one fee per rule, and every request to what it protects."""
    rules = len(_prop(r, "Rules", default=[]))
    requests = ctx.env.usage.auth_requests_per_month / 1e6
    return [
        _line(r, ctx, "web ACL", 1, ("waf", "web-acl")),
        _line(r, ctx, "rules", rules, ("waf", "rule")),
        _line(r, ctx, "requests inspected (usage)", requests, ("waf", "requests"), unit="M"),
    ]


@pricer("AWS::SNS::Topic")
def _topic(r: Resource, ctx: Context) -> list[Result]:
    return [Free("alarm e-mails stay under the 1,000/month free tier")]


@pricer("AWS::S3::Bucket")
def _bucket(r: Resource, ctx: Context) -> list[Result]:
    raise Unpriceable("storage: no usage assumption for this bucket")


@pricer("AWS::Serverless::Application")
def _serverless_app(r: Resource, ctx: Context) -> list[Result]:
    rotations = r.siblings("AWS::SecretsManager::RotationSchedule")
    if any(_refers_to(x.get("Properties", {}).get("RotationLambdaARN"), r.local_id) for x in rotations):
        return [Free("secret rotation function, invoked once per rotation")]
    raise Unpriceable("serverless application: what it deploys is not in the template")


@pricer("AWS::CloudFormation::Stack")
def _nested_stack(r: Resource, ctx: Context) -> list[Result]:
    raise Unpriceable("nested stack whose template is not in the assembly")


def _env_wide(ctx: Context) -> list[Result]:
    """Billed per environment, not per template resource: Kafka's PVC volumes and the log volume."""
    anchor, kafka, usage = Resource(ENV_WIDE, "-", "(config)", {}, {}), ctx.env.kafka, ctx.env.usage
    kafka_item = f"Kafka PVC volumes gp3 (config: {kafka.replicas} × {kafka.storage_gib} GiB, kept at night)"
    ingest, stored = usage.log_ingest_gb_per_month, usage.log_stored_gb
    return [
        _line(anchor, ctx, kafka_item, kafka.replicas * kafka.storage_gib, ("ebs", "gp3"), unit="GB"),
        _line(anchor, ctx, "CloudWatch Logs ingestion (usage)", ingest, ("logs", "ingestion-standard"), unit="GB"),
        _line(anchor, ctx, "CloudWatch Logs storage (usage)", stored, ("logs", "storage"), unit="GB"),
    ]


# ---------------------------------------------------------------- reading the assembly


@dataclass(frozen=True)
class StackArtifact:
    name: str
    environment: str
    template: Path


def stack_artifacts(assembly: Path) -> Iterator[StackArtifact]:
    """Every stack of a cloud assembly, including those of nested stage assemblies."""
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        props = artifact.get("properties", {})
        if artifact["type"] == "aws:cloudformation:stack":
            yield StackArtifact(
                props.get("stackName", artifact_id), artifact.get("environment", ""), assembly / props["templateFile"]
            )
        elif artifact["type"] == "cdk:cloud-assembly":
            yield from stack_artifacts(assembly / props["directoryName"])


def _resources(stack: str, template: dict, folder: Path, prefix: str = "") -> Iterator[Resource]:
    for logical_id, res in template.get("Resources", {}).items():
        nested = res.get("Metadata", {}).get("aws:asset:path")
        if res["Type"] == "AWS::CloudFormation::Stack" and nested and (folder / nested).is_file():
            child = json.loads((folder / nested).read_text(encoding="utf-8"))
            yield from _resources(stack, child, folder, f"{prefix}{logical_id}/")
        else:
            yield Resource(stack, prefix + logical_id, res["Type"], res.get("Properties", {}), template)


def _selected(name: str, env: EnvironmentConfig, include_pipeline: bool) -> bool:
    return name.startswith(f"{env.project}-{env.name}-") or (include_pipeline and bool(PIPELINE_STACK.search(name)))


def estimate(
    cdk_out: Path, env: EnvironmentConfig, include_pipeline: bool = False, price_book: PriceBook | None = None
) -> Estimate:
    """Price every resource of the env's stacks (`<project>-<env>-*`, plus the pipeline stack if asked).

    The entry point for tests over real templates; `price_book` defaults to the committed price file.
    """
    book = price_book or PriceBook()
    seen: set[tuple[str, str]] = set()
    stacks: list[str] = []
    resources: list[Resource] = []
    for artifact in stack_artifacts(Path(cdk_out)):
        key = (artifact.environment, artifact.name)
        if not _selected(artifact.name, env, include_pipeline) or key in seen:
            continue  # the same stack reachable from two assemblies is counted once
        seen.add(key)
        stacks.append(artifact.name)
        template = json.loads(artifact.template.read_text(encoding="utf-8"))
        resources.extend(_resources(artifact.name, template, artifact.template.parent))

    node_hours = env.schedule.hours_per_week * 52 / 12 if env.schedule else HOURS_PER_MONTH
    db_hours = node_hours if env.schedule and env.schedule.stop_database else HOURS_PER_MONTH
    ctx = Context(env, book, resources, node_hours, db_hours, sum(1 for r in resources if _behind_api(r)))
    est = Estimate(env.name, book.region, book.currency, book.as_of, stacks)
    for r in resources:
        _add(est, r.type, _price(r, ctx))
    if stacks:
        est.stacks.append(ENV_WIDE)
        _add(est, "(config)", _env_wide(ctx))
    est.assumptions = _assumptions(ctx, include_pipeline)
    return est


def _add(est: Estimate, rtype: str, results: list[Result]) -> None:
    for result in results:
        if isinstance(result, Line):
            est.lines.append(result)
        elif isinstance(result, Unpriced):
            est.unpriced.append(result)
        else:
            est.free[f"{rtype} ({result.why})" if result.why else rtype] += 1


def _price(r: Resource, ctx: Context) -> list[Result]:
    pricer = PRICERS.get(r.type)
    if pricer is None:
        if r.type in FREE_TYPES or r.type.startswith(FREE_PREFIXES):
            return [Free("")]
        return [r.unpriced("unknown type: the estimator has no rule for it")]
    try:
        return pricer(r, ctx)
    except Unpriceable as exc:
        return [r.unpriced(str(exc))]


def _assumptions(ctx: Context, include_pipeline: bool) -> list[str]:
    env = ctx.env
    if env.schedule:
        s = env.schedule
        schedule = (
            f"schedule {s.weekdays} {s.start}-{s.stop} {s.timezone}: {_num(s.hours_per_week)} h/week × 52/12 "
            f"= {_num(ctx.node_hours, 1)} h/month for node groups (and their root volumes)"
            + ("" if s.stop_database else "; the database runs 730 h (stop_database is false)")
        )
    else:
        schedule = "no schedule: everything runs 730 h/month"
    usage = ", ".join(f"{k}={v}" for k, v in env.usage.model_dump().items())
    items = [
        f"{HOURS_PER_MONTH:g} h per month; prices as of {ctx.book.as_of} ({PRICE_FILE.name})",
        schedule,
        f"usage (config usage:): {usage}",
        "usage-billed items are split evenly when several resources share them (NAT gateways, HTTP APIs, "
        "API-backed functions); CloudWatch Logs volume is counted once per environment, covering log groups "
        "outside CloudFormation too (EKS control plane, Lambda, Fluent Bit, flow logs)",
        "Lambda: only functions behind the HTTP API get the invocations; the free tier (1 M requests + "
        "400k GB-s per account-month) is not subtracted",
        f"Kafka: {env.kafka.replicas} × {env.kafka.storage_gib} GiB gp3 PVC volumes from config, billed all month "
        "(scale-to-zero keeps them)",
        "not estimated: data transfer (internet out, cross-AZ), NLCU/LCU, API calls to Secrets Manager/KMS, "
        "X-Ray traces, EBS snapshots"
        + (", Container Insights metrics" if env.observability.container_insights else ""),
    ]
    if any("employee-api" in s.uses for s in env.services):
        items.append(
            "employee-service proxy (in-cluster SigV4 proxy to the employee Lambda's function URL): $0 added: "
            f"{env.employee_proxy.replicas} pod(s) of 25m CPU / 32Mi on the existing nodes, Pod Identity and "
            "function URLs are free, its calls are Lambda invocations inside usage.lambda_invocations_per_month"
        )
    if include_pipeline:
        items.append(
            f"pipeline: {PIPELINE_RUNS_PER_MONTH} runs/month, {PIPELINE_ACTION_MINUTES_PER_RUN} V2 "
            f"action-minutes per run, {BUILD_MINUTES_PER_PROJECT_RUN} build minutes per CodeBuild project "
            f"per run; ECR {_num(ECR_GB_PER_REPOSITORY)} GB per repository"
        )
    return items


# ---------------------------------------------------------------- output

FOOTNOTE = "~ us-east-1 or region-unstated price (level C): the Seoul price may differ."


def _usd(line: Line) -> str:
    return f"{'~' if line.price.approximate else ''}{line.usd:,.2f}"


def _rows(est: Estimate) -> Iterator[tuple[str, ...]]:
    for stack in est.stacks:
        for line in (x for x in est.lines if x.stack == stack):
            yield (stack, line.logical_id, line.type, line.item, line.formula(), _usd(line))
        yield (stack, "", "", "", "subtotal", f"{est.subtotals[stack]:,.2f}")


def _total_text(est: Estimate) -> str:
    text = f"Total: ${est.total:,.2f}/month"
    if est.unpriced:
        text += f" (priced items only: {len(est.unpriced)} item(s) unpriced, listed below)"
    return text


def to_text(est: Estimate) -> str:
    header = ("Stack", "Logical ID", "Type", "Billed", "Quantity × price × hours", "USD/month")
    rows = [header, *_rows(est)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i == 5 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    out = [
        f"Cost estimate: {est.env} ({est.region}, {est.currency}/month, prices as of {est.prices_as_of})",
        "",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows[1:]),
        "",
        _total_text(est),
        "",
        "Unpriced:",
    ]
    out += [f"  {u.stack} {u.logical_id} ({u.type}): {u.reason}" for u in est.unpriced] or ["  none"]
    out += ["", "Free:", *(f"  {kind} ×{n}" for kind, n in sorted(est.free.items()))]
    out += ["", "Assumptions:", *(f"  - {a}" for a in est.assumptions)]
    if est.approximate:
        out += ["", FOOTNOTE]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(est: Estimate) -> str:
    out = [
        f"### Cost estimate: {est.env} ({est.region}, {est.currency}/month, prices as of {est.prices_as_of})",
        "",
        "| Stack | Logical ID | Type | Billed | Quantity × price × hours | USD/month |",
        "|---|---|---|---|---|---:|",
    ]
    for row in _rows(est):
        cells = [_md(c) for c in row]
        if row[4] == "subtotal":
            cells = [f"**{c}**" if c else "" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"**{_total_text(est)}**", "", "#### Unpriced", ""]
    out += [f"- `{u.stack}` `{u.logical_id}` ({u.type}): {_md(u.reason)}" for u in est.unpriced] or ["none"]
    out += ["", "#### Free", "", ", ".join(f"{k} ×{n}" for k, n in sorted(est.free.items())) or "none"]
    out += ["", "#### Assumptions", "", *(f"- {a}" for a in est.assumptions)]
    if est.approximate:
        out += ["", FOOTNOTE]
    return "\n".join(out) + "\n"


def to_json(est: Estimate) -> str:
    data = {
        "env": est.env,
        "region": est.region,
        "currency": est.currency,
        "prices_as_of": est.prices_as_of,
        "total": round(est.total, 4),
        "subtotals": {k: round(v, 4) for k, v in est.subtotals.items()},
        "lines": [
            {
                **{k: v for k, v in asdict(line).items() if k != "price"},
                "unit_usd": line.price.usd,
                "unit": line.price.unit,
                "price_source": line.price.source,
                "price_as_of": line.price.as_of,
                "approximate": line.price.approximate,
            }
            for line in est.lines
        ],
        "unpriced": [asdict(u) for u in est.unpriced],
        "free": dict(sorted(est.free.items())),
        "assumptions": est.assumptions,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def compare(base: Estimate, head: Estimate) -> str:
    """Markdown delta for a pull request: head (this branch) minus base (e.g. main)."""

    def signed(x: float) -> str:
        return f"{x:+,.2f}"

    out = [
        f"### Cost delta: {head.env} ({head.currency}/month, prices as of {head.prices_as_of})",
        "",
        "| Stack | base | head | Δ |",
        "|---|---:|---:|---:|",
    ]
    b, h = base.subtotals, head.subtotals
    for stack in dict.fromkeys([*base.stacks, *head.stacks]):
        delta = h.get(stack, 0.0) - b.get(stack, 0.0)
        out.append(f"| {stack} | {b.get(stack, 0.0):,.2f} | {h.get(stack, 0.0):,.2f} | {signed(delta)} |")
    out.append(f"| **Total** | **{base.total:,.2f}** | **{head.total:,.2f}** | **{signed(head.total - base.total)}** |")

    def keyed(est: Estimate) -> dict[tuple[str, str, str], float]:
        return {(x.stack, x.logical_id, x.item): x.usd for x in est.lines}

    kb, kh = keyed(base), keyed(head)
    changed = [(k, kh.get(k, 0.0) - kb.get(k, 0.0)) for k in dict.fromkeys([*kb, *kh])]
    changed = [(k, d) for k, d in changed if abs(d) >= 0.005]
    if changed:
        out += ["", "Changed items:", ""]
        out += [f"- `{s}` `{lid}` {_md(item)}: {signed(d)}" for (s, lid, item), d in changed]
    before = {(u.stack, u.logical_id, u.reason) for u in base.unpriced}
    new_unpriced = [u for u in head.unpriced if (u.stack, u.logical_id, u.reason) not in before]
    out += ["", f"Unpriced items: base {len(base.unpriced)}, head {len(head.unpriced)} (not in the totals)."]
    out += [f"- new: `{u.stack}` `{u.logical_id}` ({u.type}): {_md(u.reason)}" for u in new_unpriced]
    if base.approximate or head.approximate:
        out += ["", FOOTNOTE]
    return "\n".join(out) + "\n"


# x86 instance type -> the Graviton type of the same size: what the nodes would cost if the images ran on arm64.
GRAVITON_EQUIVALENT = {
    "t3.medium": "t4g.medium",
    "t3.large": "t4g.large",
    "m7i.large": "m7g.large",
    "m6i.large": "m6g.large",
}


def graviton_what_if(est: Estimate, book: PriceBook | None = None) -> Estimate:
    """The same estimate with every x86 node group repriced at its Graviton equivalent (lines it cannot
    reprice stay as they are). Compared against the real one, it shows what amd64-only images cost."""
    book = book or PriceBook()
    lines = []
    for line in est.lines:
        instance_type = line.item.split(" ", 1)[0]
        if line.type == "AWS::EKS::Nodegroup" and instance_type in GRAVITON_EQUIVALENT:
            arm = GRAVITON_EQUIVALENT[instance_type]
            try:
                price = book.get("ec2", arm)
            except Unpriceable:
                lines.append(line)
                continue
            usd = line.usd / line.price.usd * price.usd
            line = Line(
                **{**asdict(line), "item": line.item.replace(instance_type, arm, 1), "price": price, "usd": usd}
            )
        lines.append(line)
    return Estimate(
        **{**{f: getattr(est, f) for f in ("env", "region", "currency", "prices_as_of", "stacks")}},
        lines=lines,
        unpriced=est.unpriced,
        free=est.free,
        assumptions=est.assumptions,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="environment name (config/<env>.yaml)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="cloud assembly (default: cdk.out)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="BASE_CDK_OUT",
        help="print the markdown delta from this base assembly (e.g. main's) to --cdk-out",
    )
    parser.add_argument(
        "--compare-graviton",
        action="store_true",
        help="print the markdown delta from the same nodes on Graviton (base) to this config (head)",
    )
    parser.add_argument("--include-pipeline", action="store_true", help="also count the pipeline stack")
    args = parser.parse_args(argv)
    try:
        env = load_environment(args.env)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    head = estimate(args.cdk_out, env, args.include_pipeline)
    if args.compare:
        sys.stdout.write(compare(estimate(args.compare, env, args.include_pipeline), head))
        return 0
    if args.compare_graviton:
        sys.stdout.write(compare(graviton_what_if(head), head))
        return 0
    if not head.stacks:
        print(f"no stacks named {env.project}-{env.name}-* in {args.cdk_out}: synthesize first", file=sys.stderr)
        return 1
    render = {"text": to_text, "markdown": to_markdown, "json": to_json}[args.format]
    sys.stdout.write(render(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())

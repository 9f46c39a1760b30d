"""One pricer per CloudFormation resource type, registered by type; usage the config has no field for yet."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from k8s_charts.kafka_metrics import emitted_metric_count
from tools.cost.model import ENV_WIDE, Context, Free, Line, Resource, Result, Unpriced, _hourly, _num
from tools.cost.prices import HOURS_PER_MONTH, Unpriceable
from tools.cost.schedules import runs_per_month

FREE_DASHBOARDS_PER_ACCOUNT = 3
FREE_DASHBOARD_METRICS = 50  # "3 dashboards for up to 50 metrics" (CloudWatch free tier)
MIN_SERVERLESS_CACHE_GB = 0.1
# CloudFront's always-free tier, per account and month (not per distribution).
CLOUDFRONT_FREE_REQUESTS = 10_000_000
CLOUDFRONT_FREE_TRANSFER_GB = 1024.0  # 1 TB
CLOUDFRONT_FREE_FUNCTION_INVOCATIONS = 2_000_000
# Price classes that serve South Korea from Korean edges (the AP-group prices); PriceClass_100 does not.
CLOUDFRONT_AP_PRICE_CLASSES = {"PriceClass_200", "PriceClass_All"}
# The `erp:usage` tag on a bucket -> the usage field holding its stored GB.
BUCKET_USAGE_FIELDS = {"frontend": "frontend_storage_gb", "edge-logs": "edge_log_storage_gb"}
# AWS managed rule groups with a subscription and per-request fee on top of the rule fee.
PAID_MANAGED_RULE_GROUPS = {
    "AWSManagedRulesBotControlRuleSet", "AWSManagedRulesATPRuleSet", "AWSManagedRulesACFPRuleSet",
    "AWSManagedRulesAntiDDoSRuleSet",
}  # fmt: skip

# Usage the config has no field for yet; stated in every estimate's assumptions.
PIPELINE_RUNS_PER_MONTH = 40
PIPELINE_ACTION_MINUTES_PER_RUN = 30
BUILD_MINUTES_PER_PROJECT_RUN = 5
ECR_GB_PER_REPOSITORY = 1.0
# Scheduled Lambda jobs: a job that runs daily or less often (the drift check, the night scaler) is billed its
# whole timeout per run, an upper bound worth cents; a frequent one (the workload health report, every minute) a
# few API calls' worth per run, capped at its timeout: its timeout would overstate it tenfold.
DAILY_RUNS_PER_MONTH = 31
SCHEDULED_RUN_SECONDS = 5.0
# The collector's custom metrics reach CloudWatch as embedded metric format (EMF) log events: at most one event per
# metric per scrape (awsemf puts metrics sharing dimensions into one event), a few hundred bytes each. The interval
# is the collector's most frequent scrape, kafka-exporter's (k8s_charts/kafka_metrics.py EXPORTER_SCRAPE).
COLLECTOR_INTERVAL_SECONDS = 30
EMF_BYTES_PER_EVENT = 300

EVENTBRIDGE_SCHEDULER_FREE_INVOCATIONS = 14_000_000  # per account and month

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
    "AWS::WAFv2::WebACLAssociation", "AWS::Cognito::UserPoolRiskConfigurationAttachment",
    "AWS::ECR::PullThroughCacheRule", "AWS::ECR::RegistryScanningConfiguration", "AWS::ECR::RepositoryCreationTemplate",
    "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::Logs::ResourcePolicy", "AWS::XRay::SamplingRule", "AWS::XRay::Group",
    "AWS::CodeStarNotifications::NotificationRule", "AWS::CodeStarConnections::Connection",
    "AWS::CloudFront::CachePolicy", "AWS::CloudFront::OriginRequestPolicy", "AWS::CloudFront::ResponseHeadersPolicy",
    "AWS::CloudFront::OriginAccessControl", "AWS::CloudFront::CloudFrontOriginAccessIdentity",
}
# fmt: on
FREE_PREFIXES = ("AWS::IAM::", "Custom::")

PRICERS: dict[str, Callable[[Resource, Context], list[Result]]] = {}


def pricer(*types: str):
    def register(fn):
        for rtype in types:
            PRICERS[rtype] = fn
        return fn

    return register


# ---------------------------------------------------------------- helpers


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


def _node_disk_gib(r: Resource) -> int:
    """DiskSize, or the root volume of the group's launch template (EKS refuses DiskSize beside one); 20 GiB is
    EKS's default when neither says."""
    template_ref = r.props.get("LaunchTemplate", {}).get("Id")
    if not template_ref:
        return _prop(r, "DiskSize", default=20)
    if not isinstance(template_ref, dict) or "Ref" not in template_ref:
        raise Unpriceable("LaunchTemplate.Id does not name a launch template of this template")
    template = r.template.get("Resources", {}).get(template_ref["Ref"], {})
    mappings = template.get("Properties", {}).get("LaunchTemplateData", {}).get("BlockDeviceMappings", [])
    sizes = [m["Ebs"]["VolumeSize"] for m in mappings if "VolumeSize" in m.get("Ebs", {})]
    return _plain(sizes[0], "LaunchTemplateData.BlockDeviceMappings[0].Ebs.VolumeSize") if sizes else 20


@pricer("AWS::EKS::Nodegroup")
def _nodegroup(r: Resource, ctx: Context) -> list[Result]:
    instance_type = _plain(_prop(r, "InstanceTypes")[0], "InstanceTypes[0]")
    nodes = _prop(r, "ScalingConfig", "DesiredSize")
    disk = _node_disk_gib(r)
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
    """Billed per metric it reads: a metric-math alarm (a burn rate over errors and requests in two windows) pays
    for every metric of its expression, whether returned or not; expressions themselves are free."""
    metrics = _prop(r, "Metrics", default=None)
    stats = ([m["MetricStat"] for m in metrics if "MetricStat" in m] if metrics else [r.props]) or [{}]
    if min(int(_plain(s.get("Period", 60), "Period")) for s in stats) < 60:
        raise Unpriceable("high-resolution alarm (period < 60 s): price not in the price file")
    expressions = [str(m["Expression"]) for m in metrics or [] if "Expression" in m]
    if any(re.match(r"\s*SELECT\b", e, re.IGNORECASE) for e in expressions):
        item = "standard alarm on a Metrics Insights query (1 metric assumed: billed per metric the query reads)"
    elif expressions:
        item = f"standard alarm, metric math over {len(stats)} metric(s) (per metric)"
    else:
        item = "standard alarm (per metric)"
    return [_line(r, ctx, item, len(stats), ("cloudwatch", "alarm-standard"))]


@pricer("AWS::CloudWatch::CompositeAlarm")
def _composite_alarm(r: Resource, ctx: Context) -> list[Result]:
    return [_line(r, ctx, "composite alarm", 1, ("cloudwatch", "alarm-composite"))]


@pricer("AWS::CloudWatch::Dashboard")
def _dashboard(r: Resource, ctx: Context) -> list[Result]:
    """The first 3 of the environment (its own account) are free; the free tier names them 'for up to 50
    metrics', so a bigger one says so rather than pretending to know how AWS counts it."""
    metrics = len(set(_dashboard_reads(r.props)))
    if ctx.rank(r) < FREE_DASHBOARDS_PER_ACCOUNT:
        item = f"dashboard, {metrics} metrics graphed (one of the first 3, free per account"
        item += "; the free tier names up to 50 metrics: it may be billed)" if metrics > FREE_DASHBOARD_METRICS else ")"
        return [_line(r, ctx, item, 0, ("cloudwatch", "dashboard"))]
    return [_line(r, ctx, "dashboard (beyond the 3 free per account)", 1, ("cloudwatch", "dashboard"))]


@pricer("AWS::Logs::LogGroup")
def _log_group(r: Resource, ctx: Context) -> list[Result]:
    return [Free("billed by volume: see the env-wide CloudWatch Logs lines")]


MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]


def _filter_metric(transformation: dict) -> MetricKey:
    """A filter's metric: namespace, name and its dimensions (name -> the log field giving the value)."""
    namespace = _plain(transformation.get("MetricNamespace"), "MetricNamespace")
    name = _plain(transformation.get("MetricName"), "MetricName")
    dimensions = transformation.get("Dimensions") or []
    return namespace, name, tuple(sorted((d["Key"], json.dumps(d["Value"])) for d in dimensions))


def _first_filters(ctx: Context) -> dict[MetricKey, Resource]:
    """Each metric, with the first filter of the environment that publishes it: two filters feeding the same
    metric (say one per log group) make one metric, billed once."""
    first: dict[MetricKey, Resource] = {}
    for x in ctx.resources:
        if x.type == "AWS::Logs::MetricFilter":
            for transformation in x.props.get("MetricTransformations", []):
                try:
                    first.setdefault(_filter_metric(transformation), x)
                except (Unpriceable, KeyError, TypeError):
                    continue  # that filter reports it as unpriced itself
    return first


ReadMetric = tuple[Any, Any, tuple[tuple[Any, Any], ...]]  # namespace, name, sorted (dimension, value) pairs


def _dimension_value(value: Any) -> Any:
    return value if isinstance(value, str) else "?"  # an intrinsic: unknown until deploy


def _alarm_reads(props: dict) -> list[ReadMetric]:
    """The metrics an alarm reads: its own, or every MetricStat of its metric math."""
    if "Metrics" not in props:
        metrics = [props]
    else:
        metrics = [m["MetricStat"].get("Metric", {}) for m in props["Metrics"] if "MetricStat" in m]
    return [
        (
            m.get("Namespace"),
            m.get("MetricName"),
            tuple(sorted((d.get("Name"), _dimension_value(d.get("Value"))) for d in m.get("Dimensions") or [])),
        )
        for m in metrics
    ]


def _dashboard_reads(props: dict) -> list[ReadMetric]:
    """The metrics a dashboard's graphs read (its body is JSON, often joined around Refs: those read as "?")."""
    body = props.get("DashboardBody")
    if isinstance(body, dict) and isinstance(body.get("Fn::Join"), list) and body["Fn::Join"][0] == "":
        body = "".join(part if isinstance(part, str) else "?" for part in body["Fn::Join"][1])
    try:
        widgets = json.loads(body).get("widgets", []) if isinstance(body, str) else []
    except ValueError:
        return []
    out: list[ReadMetric] = []
    for widget in widgets:
        previous: list[Any] = []
        for row in widget.get("properties", {}).get("metrics", []) if isinstance(widget, dict) else []:
            fields = [x for x in row if not isinstance(x, dict)] if isinstance(row, list) else []
            fields = [previous[i] if x == "." and i < len(previous) else x for i, x in enumerate(fields)]
            if len(fields) >= 2:  # [namespace, name, dimension, value, ...]; a bare expression has none
                out.append((fields[0], fields[1], tuple(sorted(zip(fields[2::2], fields[3::2], strict=False)))))
                previous = fields
    return out


def _metric_reads(ctx: Context) -> set[ReadMetric]:
    """Every metric the environment's alarms and dashboards read."""
    reads: set[ReadMetric] = set()
    for x in ctx.resources:
        if x.type == "AWS::CloudWatch::Alarm":
            reads.update(_alarm_reads(x.props))
        elif x.type == "AWS::CloudWatch::Dashboard":
            reads.update(_dashboard_reads(x.props))
    return reads


def _watched_values(ctx: Context, namespace: str, name: str, keys: list[str]) -> int:
    """How many value combinations of these dimensions the env's alarms and dashboards read (each is a metric)."""
    return sum(
        1 for ns, n, dims in _metric_reads(ctx) if (ns, n) == (namespace, name) and sorted(k for k, _ in dims) == keys
    )


@pricer("AWS::Logs::MetricFilter")
def _metric_filter(r: Resource, ctx: Context) -> list[Result]:
    """One custom metric per distinct namespace/name/dimension set; with dimensions, one per value combination:
    those the env's alarms and dashboards read are counted (a floor: values nobody reads are metrics too)."""
    first = _first_filters(ctx)
    out: list[Result] = []
    for transformation in _prop(r, "MetricTransformations"):
        namespace, name, dimensions = key = _filter_metric(transformation)
        if first.get(key) is not r:
            continue
        if not dimensions:
            out.append(_line(r, ctx, f"custom metric {namespace}/{name}", 1, ("cloudwatch", "custom-metric")))
            continue
        keys = [k for k, _ in dimensions]
        values = max(1, _watched_values(ctx, namespace, name, keys))
        item = (
            f"custom metrics {namespace}/{name} by {', '.join(keys)}: {values} value(s) alarms or dashboards read "
            "(more if other values occur)"
        )
        out.append(_line(r, ctx, item, values, ("cloudwatch", "custom-metric")))
    return out or [Free("its metrics are counted on another filter that publishes them too")]


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


def _published_metrics(r: Resource, ctx: Context) -> list[Result]:
    """Custom metrics a function writes itself (Powertools' EMF, POWERTOOLS_METRICS_NAMESPACE): those of its
    namespace the env's alarms and dashboards read (a floor: which it writes is in its code, not the template)."""
    namespace = r.props.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_METRICS_NAMESPACE")
    if not isinstance(namespace, str):
        return []
    metrics = sum(1 for ns, _, _ in _metric_reads(ctx) if ns == namespace)
    if not metrics:
        return []
    item = f"custom metrics it writes to {namespace} (EMF) that alarms or dashboards read"
    return [_line(r, ctx, item, metrics, ("cloudwatch", "custom-metric"))]


@pricer("AWS::Lambda::Function")
def _function(r: Resource, ctx: Context) -> list[Result]:
    published = _published_metrics(r, ctx)
    if not _behind_api(r):
        if published:
            return published  # its runs, if scheduled, are priced on its schedule
        if any(r.local_id in _scheduled_targets(r.template, schedule) for schedule in _schedules(r.template)):
            return [Free("scheduled job: its runs are priced on its schedule")]
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
        *published,
    ]


def _schedules(template: dict) -> list[dict]:
    """Scheduler schedules and scheduled EventBridge rules of a template (rules on event patterns are not)."""
    return [
        x
        for x in template.get("Resources", {}).values()
        if x.get("Type") == "AWS::Scheduler::Schedule"
        or (x.get("Type") == "AWS::Events::Rule" and "ScheduleExpression" in x.get("Properties", {}))
    ]


def _target_arns(schedule: dict) -> list[Any]:
    props = schedule.get("Properties", {})
    if schedule.get("Type") == "AWS::Scheduler::Schedule":
        return [props.get("Target", {}).get("Arn")]
    return [t.get("Arn") for t in props.get("Targets", [])]


def _scheduled_targets(template: dict, schedule: dict) -> list[str | None]:
    """Per target: the logical id of the Lambda function of this template it runs, else None."""
    functions = [i for i, x in template.get("Resources", {}).items() if x.get("Type") == "AWS::Lambda::Function"]
    return [next((f for f in functions if _refers_to(arn, f)), None) for arn in _target_arns(schedule)]


def _schedule_runs(r: Resource) -> float:
    if _prop(r, "State", default="ENABLED") == "DISABLED":
        return 0.0
    return runs_per_month(_prop(r, "ScheduleExpression"))


@pricer("AWS::Scheduler::Schedule", "AWS::Events::Rule")
def _schedule(r: Resource, ctx: Context) -> list[Result]:
    """A job's runs, counted from its expression: the Lambda they run (GB-s and requests) and, for EventBridge
    Scheduler, its invocations past the free tier. Rules on event patterns (AWS service events) are free."""
    if r.type == "AWS::Events::Rule" and "ScheduleExpression" not in r.props:
        return [Free("")]
    runs = _schedule_runs(r)
    if runs == 0:
        return [Free("disabled or one-time (at) schedule")]
    expression = r.props["ScheduleExpression"]
    out: list[Result] = []
    if r.type == "AWS::Scheduler::Schedule":
        total = 0.0
        for x in (x for x in ctx.resources if x.type == r.type):
            try:
                total += _schedule_runs(x)
            except Unpriceable:
                continue
        beyond = max(0.0, total - EVENTBRIDGE_SCHEDULER_FREE_INVOCATIONS) * runs / total
        item = f"invocations beyond the 14 M free per account ({_num(runs, 1)} runs/month: {expression})"
        out.append(_line(r, ctx, item, beyond / 1e6, ("scheduler", "invocations"), unit="M"))
    schedule = {"Type": r.type, "Properties": r.props}
    machines = [
        i for i, x in r.template.get("Resources", {}).items() if x.get("Type") == "AWS::StepFunctions::StateMachine"
    ]
    for arn, function_id in zip(_target_arns(schedule), _scheduled_targets(r.template, schedule), strict=True):
        if function_id is not None:
            out += _job_runs(r, ctx, function_id, runs)
        elif not any(_refers_to(arn, m) for m in machines):  # a state machine's runs are priced on it
            out.append(r.unpriced(f"target {json.dumps(arn)[:80]}: only Lambda functions of this template are priced"))
    return out or [Free("it starts a state machine of this template: its runs are priced there")]


def _job_runs(r: Resource, ctx: Context, function_id: str, runs: float) -> list[Result]:
    function = r.template["Resources"][function_id].get("Properties", {})
    arch = _plain((function.get("Architectures") or ["x86_64"])[0], "the target's Architectures[0]")
    memory_mb = _plain(function.get("MemorySize", 128), "the target's MemorySize")
    timeout = _plain(function.get("Timeout", 3), "the target's Timeout")
    if runs <= DAILY_RUNS_PER_MONTH:
        seconds, per_run = float(timeout), "its timeout, an upper bound"
    else:
        seconds, per_run = min(SCHEDULED_RUN_SECONDS, float(timeout)), f"assumed; timeout {timeout} s"
    gb_seconds = runs * seconds * memory_mb / 1024
    item = f"{function_id} runs: {_num(runs, 1)}/month × {_num(seconds)} s ({per_run}) × {memory_mb} MB {arch}"
    return [
        _line(r, ctx, item, gb_seconds, ("lambda", f"compute-{arch}"), unit="GB-s"),
        _line(
            r, ctx, f"{function_id} requests ({_num(runs, 1)} runs/month)", runs / 1e6, ("lambda", "requests"), unit="M"
        ),
    ]


@pricer("AWS::Chatbot::SlackChannelConfiguration", "AWS::Chatbot::MicrosoftTeamsChannelConfiguration")
def _chat_channel(r: Resource, ctx: Context) -> list[Result]:
    """Listed at $0 with its source rather than as free: the fee is 'none reported', not an AWS statement."""
    return [_line(r, ctx, "chat channel configuration (no service fee)", 1, ("chatbot", "channel-configuration"))]


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


ESSENTIALS_FREE_MAU = 10_000


@pricer("AWS::Cognito::UserPool")
def _user_pool(r: Resource, ctx: Context) -> list[Result]:
    """Plus (threat protection) bills every active user; Essentials only those past 10k. Mail through SES
    (sign-up links, invitations, resets) is billed by SES; Cognito's own sender is free but capped."""
    usage = ctx.env.usage
    if _prop(r, "UserPoolTier", default="ESSENTIALS") == "PLUS":
        lines = [_line(r, ctx, "Plus MAU (usage, no free tier)", usage.monthly_active_users, ("cognito", "plus-mau"))]
    else:
        beyond = max(0, usage.monthly_active_users - ESSENTIALS_FREE_MAU)
        lines = [_line(r, ctx, "MAU beyond the 10k free (usage)", beyond, ("cognito", "essentials-mau"), unit="MAU")]
    if _prop(r, "EmailConfiguration", "EmailSendingAccount", default="COGNITO_DEFAULT") == "DEVELOPER":
        emails = usage.auth_emails_per_month / 1000
        lines.append(_line(r, ctx, "SES mail (usage)", emails, ("ses", "outbound-email"), unit="1000 emails"))
    return lines


@pricer("AWS::WAFv2::WebACL")
def _web_acl(r: Resource, ctx: Context) -> list[Result]:
    """The ACL, one fee per rule (a managed rule group counts as one), and every request it inspects: for the
    REGIONAL one on the prod user pool its sign-in/sign-up calls, for a CLOUDFRONT one every edge request."""
    rules = _prop(r, "Rules", default=[])
    usage = ctx.env.usage
    if _prop(r, "Scope", default="REGIONAL") == "CLOUDFRONT":
        requests, item = usage.edge_requests_per_month / 1e6, "requests inspected (usage: every edge request)"
    else:
        requests, item = usage.auth_requests_per_month / 1e6, "requests inspected (usage)"
    out = [
        _line(r, ctx, "web ACL", 1, ("waf", "web-acl")),
        _line(r, ctx, "rules", len(rules), ("waf", "rule")),
        _line(r, ctx, item, requests, ("waf", "requests"), unit="M"),
    ]
    statements = [rule.get("Statement", {}) for rule in rules if isinstance(rule, dict)]
    groups = [s.get("ManagedRuleGroupStatement", {}).get("Name") for s in statements if isinstance(s, dict)]
    if paid := sorted({name for name in groups if isinstance(name, str) and name in PAID_MANAGED_RULE_GROUPS}):
        reason = f"managed rule group(s) {', '.join(paid)}: subscription and request fees not in the price file"
        out.append(r.unpriced(reason))
    return out


@pricer("AWS::CloudFront::Distribution")
def _distribution(r: Resource, ctx: Context) -> list[Result]:
    """Requests and bytes to viewers (all assumed HTTPS, all from the AP group), minus the always-free tier;
    fetches from the origins (S3, the Seoul HTTP API) are free. Usage is split over the env's distributions."""
    price_class = _prop(r, "DistributionConfig", "PriceClass", default="PriceClass_All")
    if price_class not in CLOUDFRONT_AP_PRICE_CLASSES:
        raise Unpriceable(f"{price_class}: Korean viewers are served from edges whose prices are not in the price file")
    usage, distributions = ctx.env.usage, ctx.count(r.type)
    split = f", split over {distributions}" if distributions > 1 else ""
    requests = max(0, usage.edge_requests_per_month - CLOUDFRONT_FREE_REQUESTS) / distributions
    transfer_gb = max(0.0, usage.edge_transfer_gb_per_month - CLOUDFRONT_FREE_TRANSFER_GB) / distributions
    requests_item = f"HTTPS requests beyond the first 10 M free per account (usage{split})"
    transfer_item = f"data out to viewers beyond the first 1 TB free per account (usage{split})"
    return [
        _line(r, ctx, requests_item, requests / 10_000, ("cloudfront", "https-requests"), unit="10k requests"),
        _line(r, ctx, transfer_item, transfer_gb, ("cloudfront", "data-out"), unit="GB"),
    ]


@pricer("AWS::CloudFront::Function")
def _cloudfront_function(r: Resource, ctx: Context) -> list[Result]:
    """Assumed to run on every edge request (an upper bound: a viewer-request function on the default behaviour
    skips /api/*); the 2 M free invocations are per account, shared by the env's functions."""
    functions = ctx.count(r.type)
    invocations = max(0, functions * ctx.env.usage.edge_requests_per_month - CLOUDFRONT_FREE_FUNCTION_INVOCATIONS)
    item = "invocations beyond the first 2 M free per account (usage: every edge request, assumed)"
    return [_line(r, ctx, item, invocations / functions / 1e6, ("cloudfront", "function-invocations"), unit="M")]


@pricer("AWS::SNS::Topic")
def _topic(r: Resource, ctx: Context) -> list[Result]:
    return [Free("alarm e-mails stay under the 1,000/month free tier")]


def _tag(r: Resource, key: str) -> str | None:
    tags = r.props.get("Tags", [])
    return next((t.get("Value") for t in tags if isinstance(t, dict) and t.get("Key") == key), None)


@pricer("AWS::S3::Bucket")
def _bucket(r: Resource, ctx: Context) -> list[Result]:
    """Standard storage of the buckets whose `erp:usage` tag names a usage field; requests are not estimated."""
    usage_tag = _tag(r, "erp:usage")
    if usage_tag is None:
        raise Unpriceable("storage: no usage assumption for this bucket")
    field = BUCKET_USAGE_FIELDS.get(_plain(usage_tag, "Tags erp:usage"))
    if field is None:
        raise Unpriceable(f"storage: no usage assumption for erp:usage={usage_tag!r}")
    gb = getattr(ctx.env.usage, field)
    return [_line(r, ctx, f"Standard storage (usage: {field})", gb, ("s3", "standard-storage"), unit="GB")]


@pricer("AWS::Serverless::Application")
def _serverless_app(r: Resource, ctx: Context) -> list[Result]:
    rotations = r.siblings("AWS::SecretsManager::RotationSchedule")
    if any(_refers_to(x.get("Properties", {}).get("RotationLambdaARN"), r.local_id) for x in rotations):
        return [Free("secret rotation function, invoked once per rotation")]
    raise Unpriceable("serverless application: what it deploys is not in the template")


@pricer("AWS::CloudFormation::Stack")
def _nested_stack(r: Resource, ctx: Context) -> list[Result]:
    raise Unpriceable("nested stack whose template is not in the assembly")


def collector_metrics(ctx: Context) -> int:
    """The usage figure, or what the collector's config declares for this environment."""
    usage = ctx.env.usage.collector_custom_metrics
    return emitted_metric_count(ctx.env) if usage is None else usage


def collector_emf_gb(ctx: Context) -> float:
    """GB a month of EMF log events carrying the collector's custom metrics (GB = 2^30 bytes, an upper bound:
    one event per metric per interval)."""
    events = collector_metrics(ctx) * HOURS_PER_MONTH * 3600 / COLLECTOR_INTERVAL_SECONDS
    return events * EMF_BYTES_PER_EVENT / 1024**3


def collector_log_group(ctx: Context) -> str:
    return f"/aws/otel/{ctx.env.cluster_name}/kafka-metrics"


def _emf_retention_days(ctx: Context) -> int:
    """The retention of the collector's log group in the templates; the config's default if it is not there
    (the exporter then creates it)."""
    for x in ctx.resources:
        if x.type == "AWS::Logs::LogGroup" and x.props.get("LogGroupName") == collector_log_group(ctx):
            days = x.props.get("RetentionInDays")
            if isinstance(days, int):
                return days
    return ctx.env.observability.log_retention_days


def _env_wide(ctx: Context) -> list[Result]:
    """Billed per environment, not per template resource: Kafka's PVC volumes, the log volume, and the
    collector's custom metrics (their count is usage: the exporter's series are not in any template)."""
    anchor, kafka, usage = Resource(ENV_WIDE, "-", "(config)", {}, {}), ctx.env.kafka, ctx.env.usage
    kafka_item = f"Kafka PVC volumes gp3 (config: {kafka.replicas} × {kafka.storage_gib} GiB, kept at night)"
    ingest, stored = usage.log_ingest_gb_per_month, usage.log_stored_gb
    out: list[Result] = [
        _line(anchor, ctx, kafka_item, kafka.replicas * kafka.storage_gib, ("ebs", "gp3"), unit="GB"),
        _line(anchor, ctx, "CloudWatch Logs ingestion (usage)", ingest, ("logs", "ingestion-standard"), unit="GB"),
        _line(anchor, ctx, "CloudWatch Logs storage (usage)", stored, ("logs", "storage"), unit="GB"),
    ]
    metrics = collector_metrics(ctx)
    if metrics:
        emf_gb, retention = collector_emf_gb(ctx), _emf_retention_days(ctx)
        emf = f"{metrics} × 1 event/{COLLECTOR_INTERVAL_SECONDS} s × {EMF_BYTES_PER_EVENT} B (assumed)"
        kept = emf_gb * retention / (HOURS_PER_MONTH / 24)
        out += [
            _line(
                anchor,
                ctx,
                "collector custom metrics (k8s_charts/kafka_metrics)"
                if usage.collector_custom_metrics is None
                else "collector custom metrics (usage)",
                metrics,
                ("cloudwatch", "custom-metric"),
            ),
            _line(
                anchor, ctx, f"collector EMF log ingestion: {emf}", emf_gb, ("logs", "ingestion-standard"), unit="GB"
            ),
            _line(
                anchor, ctx, f"collector EMF log storage ({retention} days kept)", kept, ("logs", "storage"), unit="GB"
            ),
        ]
    return out

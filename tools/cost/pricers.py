"""One pricer per CloudFormation resource type, registered by type; usage the config has no field for yet."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tools.cost.model import ENV_WIDE, Context, Free, Line, Resource, Result, Unpriced, _hourly, _num
from tools.cost.prices import HOURS_PER_MONTH, Unpriceable

FREE_DASHBOARDS_PER_ACCOUNT = 3
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
    "AWS::Events::Rule", "AWS::Scheduler::Schedule", "AWS::Scheduler::ScheduleGroup",
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

"""The edge per environment (erp-{env}-edge, us-east-1) and what follows its address (erp-{env}-frontend).

What a user would notice: only the distribution reads the frontend's bucket; /api/* reaches this environment's
API uncached and its errors stay errors; client routes answer index.html (the CloudFront Function's real code,
run with node); security headers on every response; prod's web ACL and custom domain; alarms that reach
someone; the sign-in pages return to the edge; `make frontend` finds every parameter it reads. Expectations
come from config (`configs[env]`), read from the session's one synth.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from constructs_lib.edge.waf import MANAGED_GROUPS, EdgeWebAcl
from stacks.frontend import FRONTEND_PARAMETERS
from tests.conftest import REPO, resources_of
from tests.support.cloudformation import Origin, Stacks

ENVS = ["dev", "prod"]
EDGE_REGION = "us-east-1"  # CloudFront's certificates, CLOUDFRONT-scope web ACLs and their metrics live there
# AWS managed policies (CloudFront Developer Guide, "Use managed cache policies" / "managed origin request policies").
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ALL_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
ONE_YEAR = 365 * 24 * 3600
USAGE_TAG = "erp:usage"
RETAIN_KEEPS_DATA = "RetainExceptOnCreate"


# --- reading the templates -------------------------------------------------------------------------------


def edge_name(env: str) -> str:
    return f"erp-{env}-edge"


def only(template: dict, resource_type: str) -> tuple[str, dict]:
    found = resources_of(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def tag(resource: dict, key: str) -> str | None:
    return next((t["Value"] for t in resource["Properties"].get("Tags", []) if t["Key"] == key), None)


def bucket(template: dict, usage: str) -> tuple[str, dict]:
    found = {k: v for k, v in resources_of(template, "AWS::S3::Bucket").items() if tag(v, USAGE_TAG) == usage}
    assert len(found) == 1, f"expected one bucket tagged {USAGE_TAG}={usage}, found {sorted(found)}"
    return next(iter(found.items()))


def policy_of(template: dict, bucket_id: str) -> list[dict]:
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources_of(template, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1, f"{bucket_id}: expected one bucket policy, found {len(policies)}"
    return policies[0]


def distribution(template: dict) -> tuple[str, dict]:
    logical_id, resource = only(template, "AWS::CloudFront::Distribution")
    return logical_id, resource["Properties"]["DistributionConfig"]


def api_behaviour(config: dict) -> dict:
    behaviours = config.get("CacheBehaviors", [])
    assert [b["PathPattern"] for b in behaviours] == ["/api/*"], "exactly one additional behaviour: /api/*"
    return behaviours[0]


def origin_of(config: dict, behaviour: dict) -> dict:
    found = [o for o in config["Origins"] if o["Id"] == behaviour["TargetOriginId"]]
    assert len(found) == 1, f"behaviour's origin {behaviour['TargetOriginId']} is not among the origins"
    return found[0]


def stack_outputs_in(value: object) -> list[dict]:
    """Every Fn::GetStackOutput argument inside a template value."""
    if isinstance(value, dict):
        if set(value) == {"Fn::GetStackOutput"}:
            return [value["Fn::GetStackOutput"]]
        return [found for v in value.values() for found in stack_outputs_in(v)]
    if isinstance(value, list):
        return [found for v in value for found in stack_outputs_in(v)]
    return []


def stacks_for(stack_templates: dict, config) -> Stacks:
    return Stacks(stack_templates, region=config.region, account=config.account)


def artifact_environment(stack_artifacts: dict, stack_name: str) -> str:
    """The `environment` (aws://account/region) the assembly deploys that stack to."""
    directory, props = stack_artifacts[stack_name]
    if "environment" in props:
        return props["environment"]
    manifest = json.loads((Path(directory) / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "aws:cloudformation:stack" and artifact["properties"].get("stackName") == stack_name:
            return artifact["environment"]
    raise AssertionError(f"{stack_name} not in {directory}/manifest.json")


def csp_directives(policy: str) -> dict[str, list[str]]:
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


# --- where the stacks live --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_edge_is_deployed_to_us_east_1_and_the_frontend_stack_to_the_env_region(stack_artifacts, configs, env):
    config = configs[env]
    assert artifact_environment(stack_artifacts, edge_name(env)) == f"aws://{config.account}/{EDGE_REGION}"
    assert artifact_environment(stack_artifacts, f"erp-{env}-frontend") == f"aws://{config.account}/{config.region}"


# --- 1. the buckets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_only_this_stacks_distribution_can_read_the_site_bucket(stack_templates, configs, env):
    template = stack_templates[edge_name(env)]
    stacks = stacks_for(stack_templates, configs[env])
    site_id, _ = bucket(template, "frontend")
    distribution_id, _ = distribution(template)
    statements = policy_of(template, site_id)
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 1, f"exactly one Allow on the site bucket, found {allows}"
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] in ("s3:GetObject", ["s3:GetObject"])
    assert allow["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [site_id, "Arn"]}, "/*"]]}, "objects only"
    condition = allow.get("Condition", {})
    assert set(condition) == {"StringEquals"} and set(condition["StringEquals"]) == {"AWS:SourceArn"}, condition
    source_arn = stacks.resolve(edge_name(env), condition["StringEquals"]["AWS:SourceArn"])
    this_distribution = stacks.ref(edge_name(env), distribution_id)
    assert source_arn == f"arn:aws:cloudfront::{configs[env].account}:distribution/{this_distribution}"
    # Origin Access Control (signed requests), not a legacy origin access identity.
    s3_origins = [o for o in distribution(template)[1]["Origins"] if "S3OriginConfig" in o]
    assert [o["DomainName"] for o in s3_origins] == [{"Fn::GetAtt": [site_id, "RegionalDomainName"]}]
    assert s3_origins[0]["S3OriginConfig"].get("OriginAccessIdentity", "") == ""
    oac_id = s3_origins[0]["OriginAccessControlId"]["Fn::GetAtt"][0]
    oac = template["Resources"][oac_id]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("usage", ["frontend", "edge-logs"])
def test_edge_buckets_are_private_tls_only_and_kept(stack_templates, env, usage):
    template = stack_templates[edge_name(env)]
    bucket_id, resource = bucket(template, usage)
    assert resource["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    tls_denies = [
        s
        for s in policy_of(template, bucket_id)
        if s["Effect"] == "Deny"
        and s["Action"] in ("s3:*", ["s3:*"])
        and s["Principal"] in ("*", {"AWS": "*"})
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_denies) == 1, "TLS-only Deny missing"
    assert resource["DeletionPolicy"] == RETAIN_KEEPS_DATA
    assert resource["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("env", ENVS)
def test_site_bucket_is_versioned_logged_and_drops_old_versions_after_the_configured_days(
    stack_templates, configs, env
):
    template = stack_templates[edge_name(env)]
    logs_id, _ = bucket(template, "edge-logs")
    _, site = bucket(template, "frontend")
    props = site["Properties"]
    assert props.get("VersioningConfiguration") == {"Status": "Enabled"}
    assert props.get("LoggingConfiguration", {}).get("DestinationBucketName") == {"Ref": logs_id}
    noncurrent = [
        r["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for r in props["LifecycleConfiguration"]["Rules"]
        if r.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in r
    ]
    assert noncurrent == [configs[env].edge.noncurrent_version_days]
    # Never expires the current version: the live site stays.
    assert not any("ExpirationInDays" in r for r in props["LifecycleConfiguration"]["Rules"])


@pytest.mark.parametrize("env", ENVS)
def test_log_bucket_expires_logs_after_the_configured_days(stack_templates, configs, env):
    _, logs = bucket(stack_templates[edge_name(env)], "edge-logs")
    expirations = [
        r["ExpirationInDays"] for r in logs["Properties"]["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"
    ]
    assert expirations == [configs[env].edge.access_log_retention_days]
    # CloudFront's standard logs arrive with an ACL grant: ACLs must stay enabled on this bucket.
    assert logs["Properties"]["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}


# --- 2. the distribution ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_api_behaviour_passes_every_method_through_uncached_over_https_only(stack_templates, env):
    template = stack_templates[edge_name(env)]
    _, config = distribution(template)
    api = api_behaviour(config)
    assert set(api["AllowedMethods"]) == ALL_METHODS and len(api["AllowedMethods"]) == len(ALL_METHODS)
    assert api["CachePolicyId"] == CACHING_DISABLED
    assert api["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert api["ViewerProtocolPolicy"] == "https-only"
    assert "FunctionAssociations" not in api, "the SPA fallback must never rewrite /api/*"
    origin = origin_of(config, api)["CustomOriginConfig"]
    assert origin["OriginProtocolPolicy"] == "https-only"
    assert origin["OriginSSLProtocols"] == ["TLSv1.2"]


@pytest.mark.parametrize("env", ENVS)
def test_api_origin_is_this_environments_api(stack_templates, configs, env):
    config = configs[env]
    template = stack_templates[edge_name(env)]
    api_stack = f"erp-{env}-api"
    api_template = stack_templates[api_stack]
    _, dist = distribution(template)
    domain = origin_of(dist, api_behaviour(dist))["DomainName"]
    api_id, api = only(api_template, "AWS::ApiGatewayV2::Api")
    if config.api.edge_only:
        assert domain == config.api.domain_name
        assert stack_outputs_in(domain) == []
        assert api["Properties"]["DisableExecuteApiEndpoint"] is True, "the API must answer only behind the edge"
        domain_id, custom = only(api_template, "AWS::ApiGatewayV2::DomainName")
        assert custom["Properties"]["DomainName"] == config.api.domain_name
        assert custom["Properties"]["DomainNameConfigurations"] == [
            {"CertificateArn": config.api.certificate_arn, "EndpointType": "REGIONAL"}
        ]
        mappings = [
            m["Properties"]
            for m in resources_of(api_template, "AWS::ApiGatewayV2::ApiMapping").values()
            if m["Properties"]["DomainName"] == {"Ref": domain_id}
        ]
        assert len(mappings) == 1 and mappings[0]["ApiId"] == {"Ref": api_id}
        stages = {
            s["Properties"]["StageName"]
            for s in resources_of(api_template, "AWS::ApiGatewayV2::Stage").values()
            if s["Properties"]["ApiId"] == {"Ref": api_id}
        }
        assert mappings[0]["Stage"] in stages
        return
    # execute-api must stay on: it is the edge's origin.
    assert api["Properties"].get("DisableExecuteApiEndpoint") in (None, False)
    (read,) = stack_outputs_in(domain)
    assert read["StackName"] == api_stack and read["Region"] == config.region
    assert api_template["Outputs"][read["OutputName"]]["Value"] == {"Ref": api_id}
    assert domain == {
        "Fn::Join": ["", [{"Fn::GetStackOutput": read}, f".execute-api.{config.region}.", {"Ref": "AWS::URLSuffix"}]]
    }


@pytest.mark.parametrize("env", ENVS)
def test_default_behaviour_serves_the_bucket_read_only_through_the_spa_fallback(stack_templates, env):
    template = stack_templates[edge_name(env)]
    site_id, _ = bucket(template, "frontend")
    _, config = distribution(template)
    default = config["DefaultCacheBehavior"]
    assert default["AllowedMethods"] == ["GET", "HEAD"]
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert origin_of(config, default)["DomainName"] == {"Fn::GetAtt": [site_id, "RegionalDomainName"]}
    function_id, _ = only(template, "AWS::CloudFront::Function")
    assert default.get("FunctionAssociations") == [
        {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]}}
    ]
    cache_id = default["CachePolicyId"]["Ref"]
    cache = template["Resources"][cache_id]
    assert cache["Type"] == "AWS::CloudFront::CachePolicy"
    policy = cache["Properties"]["CachePolicyConfig"]
    assert policy["MinTTL"] == 0, "index.html's no-cache must be honoured"
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["HeadersConfig"] == {"HeaderBehavior": "none"}
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
    assert key["EnableAcceptEncodingGzip"] is True and key["EnableAcceptEncodingBrotli"] is True


@pytest.mark.parametrize("env", ENVS)
def test_no_error_pages_so_api_errors_stay_errors(stack_templates, env):
    _, config = distribution(stack_templates[edge_name(env)])
    assert not config.get("CustomErrorResponses"), "an error page would turn an /api/* 403/404 into HTML with 200"
    assert config["DefaultRootObject"] == "index.html"


@pytest.mark.parametrize("env", ENVS)
def test_distribution_protocols_logging_and_price_class(stack_templates, configs, env):
    template = stack_templates[edge_name(env)]
    logs_id, _ = bucket(template, "edge-logs")
    _, config = distribution(template)
    assert config["Enabled"] is True
    assert config["HttpVersion"] == "http2and3"
    assert config["IPV6Enabled"] is True
    assert config.get("Logging", {}).get("Bucket") == {"Fn::GetAtt": [logs_id, "RegionalDomainName"]}
    assert config["PriceClass"] == configs[env].edge.price_class


@pytest.mark.parametrize("env", ENVS)
def test_custom_domain_and_certificate_follow_config(stack_templates, configs, env):
    edge = configs[env].edge
    _, config = distribution(stack_templates[edge_name(env)])
    if edge.domain_name:
        assert config["Aliases"] == [edge.domain_name]
        assert config["ViewerCertificate"] == {
            "AcmCertificateArn": edge.certificate_arn,
            "MinimumProtocolVersion": "TLSv1.2_2021",
            "SslSupportMethod": "sni-only",
        }
    else:
        assert not config.get("Aliases")
        assert config.get("ViewerCertificate", {"CloudFrontDefaultCertificate": True}) == {
            "CloudFrontDefaultCertificate": True
        }


# --- 3. the SPA fallback, run for real ---------------------------------------------------------------------

# Client routes (no dot in the last segment) answer /index.html; files are fetched as asked.
SPA_CASES = {
    "/": "/index.html",
    "/approvals": "/index.html",
    "/approvals/": "/index.html",
    "/quests/12": "/index.html",
    "/index.html": "/index.html",
    "/assets/index-Ab12Cd34.js": "/assets/index-Ab12Cd34.js",
    "/favicon.ico": "/favicon.ico",
    "/a.b/c": "/index.html",
}
# Runs the function's code as CloudFront's runtime would call it (a viewer-request event); prints each result's uri,
# or null when it answered itself (a response instead of the request).
NODE_RUNNER = r"""
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const handler = new Function(input.code + '\n;return handler;')();
(async () => {
  const out = [];
  for (const uri of input.uris) {
    const event = {
      version: '1.0', context: {eventType: 'viewer-request'}, viewer: {ip: '198.51.100.7'},
      request: {method: 'GET', uri: uri, querystring: {}, headers: {}, cookies: {}},
    };
    const result = await handler(event);
    out.push(result && result.statusCode === undefined ? result.uri : null);
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
"""


def node() -> str:
    found = shutil.which("node") or shutil.which("node", path=str(REPO / ".venv" / "bin"))
    assert found, "node is needed to run the CloudFront Function (PATH or .venv/bin)"
    return found


@pytest.mark.parametrize("env", ENVS)
def test_spa_fallback_sends_client_routes_to_index_html_and_files_as_asked(stack_templates, env):
    _, function = only(stack_templates[edge_name(env)], "AWS::CloudFront::Function")
    props = function["Properties"]
    assert props["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert props["AutoPublish"] is True, "an unpublished function never runs on the live distribution"
    code = props["FunctionCode"]
    assert isinstance(code, str)
    uris = list(SPA_CASES)
    run = subprocess.run(
        [node(), "-e", NODE_RUNNER],
        input=json.dumps({"code": code, "uris": uris}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert dict(zip(uris, json.loads(run.stdout), strict=True)) == SPA_CASES


# --- 4. security headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_security_headers_on_both_behaviours(stack_templates, configs, env):
    config = configs[env]
    template = stack_templates[edge_name(env)]
    policy_id, policy = only(template, "AWS::CloudFront::ResponseHeadersPolicy")
    _, dist = distribution(template)
    for behaviour in (dist["DefaultCacheBehavior"], api_behaviour(dist)):
        assert behaviour.get("ResponseHeadersPolicyId") == {"Ref": policy_id}
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    hsts = headers["StrictTransportSecurity"]
    assert hsts["AccessControlMaxAgeSec"] >= ONE_YEAR
    assert hsts["IncludeSubdomains"] is True and hsts["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert "ContentTypeOptions" in headers  # X-Content-Type-Options: nosniff
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }
    csp = csp_directives(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"], "no inline or foreign scripts"
    connect = csp["connect-src"]
    assert "'self'" in connect
    assert f"https://cognito-idp.{config.region}.amazonaws.com" in connect
    if config.edge.domain_name:
        assert f"https://{config.edge.domain_name}" in connect


# --- 5. the web ACL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_web_acl_follows_config(stack_templates, stack_artifacts, configs, env):
    waf = configs[env].edge.waf
    template = stack_templates[edge_name(env)]
    _, dist = distribution(template)
    acls = resources_of(template, "AWS::WAFv2::WebACL")
    if not waf.enabled:
        assert acls == {} and "WebACLId" not in dist
        return
    assert artifact_environment(stack_artifacts, edge_name(env)).endswith(f"/{EDGE_REGION}")
    acl_id, acl = only(template, "AWS::WAFv2::WebACL")
    props = acl["Properties"]
    assert dist.get("WebACLId") == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert props["Scope"] == "CLOUDFRONT"
    assert props["DefaultAction"] == {"Allow": {}}
    rules = sorted(props["Rules"], key=lambda r: r["Priority"])
    assert len({r["Priority"] for r in rules}) == len(rules), "priorities must be unique"
    rate = rules[0]
    assert rate["Priority"] == 0
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == waf.rate_limit
    groups = {r["Statement"]["ManagedRuleGroupStatement"]["Name"]: r for r in rules[1:]}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= set(groups)
    overridden = set()
    for rule in groups.values():
        statement = rule["Statement"]["ManagedRuleGroupStatement"]
        assert statement["VendorName"] == "AWS"
        assert rule["OverrideAction"] == {"None": {}}, "Count here would switch the whole group off"
        for override in statement.get("RuleActionOverrides", []):
            assert override["ActionToUse"] == {"Count": {}}
            overridden.add(override["Name"])
    assert overridden == set(waf.count_only_rules)
    for visibility in [props["VisibilityConfig"], *(r["VisibilityConfig"] for r in rules)]:
        assert visibility["CloudWatchMetricsEnabled"] is True and visibility["SampledRequestsEnabled"] is True


# --- 6. alarms --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_edge_alarms_reach_the_edge_topic_and_its_subscribers(stack_templates, configs, env):
    config = configs[env]
    template = stack_templates[edge_name(env)]
    distribution_id, _ = distribution(template)
    topic_id, _ = only(template, "AWS::SNS::Topic")
    subscriptions = [
        s["Properties"]
        for s in resources_of(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": topic_id}
    ]
    assert sorted(s["Endpoint"] for s in subscriptions) == sorted(config.observability.alarm_emails)
    assert {s["Protocol"] for s in subscriptions} <= {"email"}

    alarms = [a["Properties"] for a in resources_of(template, "AWS::CloudWatch::Alarm").values()]
    for alarm in alarms:
        assert alarm.get("AlarmActions") == [{"Ref": topic_id}], alarm["AlarmName"]
        assert alarm.get("OKActions") == [{"Ref": topic_id}], alarm["AlarmName"]

    def cloudfront_5xx(alarm: dict) -> bool:
        names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm.get("Metrics", []) if "MetricStat" in m}
        return "5xxErrorRate" in names

    (five_xx,) = [a for a in alarms if cloudfront_5xx(a)]
    stats = {m["Id"]: m["MetricStat"] for m in five_xx["Metrics"] if "MetricStat" in m}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {"5xxErrorRate", "Requests"}
    for stat in stats.values():
        assert stat["Metric"]["Namespace"] == "AWS/CloudFront"
        assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == {
            "DistributionId": {"Ref": distribution_id},
            "Region": "Global",
        }
    (expression,) = [m for m in five_xx["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] is True
    assert all(re.search(rf"\b{metric_id}\b", expression["Expression"]) for metric_id in stats)
    assert five_xx["Threshold"] == config.edge.error_rate_alarm_pct

    waf_alarms = [a for a in alarms if a.get("Namespace") == "AWS/WAFV2"]
    if not config.edge.waf.enabled:
        assert waf_alarms == []
        assert len(alarms) == 1
    else:
        _, acl = only(template, "AWS::WAFv2::WebACL")
        (blocked,) = waf_alarms
        assert blocked["MetricName"] == "BlockedRequests"
        assert {d["Name"]: d["Value"] for d in blocked["Dimensions"]} == {
            "WebACL": acl["Properties"]["Name"],
            "Rule": "ALL",
        }
        assert blocked["Threshold"] == config.edge.waf.blocked_alarm_threshold
        assert len(alarms) == 2

    dashboards = [
        d["Properties"]["DashboardName"] for d in resources_of(template, "AWS::CloudWatch::Dashboard").values()
    ]
    assert dashboards == [f"erp-{env}-edge"]


# --- 7. the Frontend stack --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_sign_in_pages_return_to_the_edge(stack_templates, configs, env):
    config = configs[env]
    stacks = stacks_for(stack_templates, config)
    frontend = f"erp-{env}-frontend"
    edge = edge_name(env)
    _, client = only(stack_templates[frontend], "AWS::Cognito::UserPoolClient")
    props = client["Properties"]
    assert props["AllowedOAuthFlows"] == ["code"]
    assert props["AllowedOAuthFlowsUserPoolClient"] is True
    edge_url = stacks.output(edge, "Url")
    callbacks = stacks.resolve(frontend, props["CallbackURLs"])
    assert callbacks == [f"{edge_url}/", *config.auth.callback_urls]
    if config.edge.domain_name:
        assert props["CallbackURLs"][0] == f"https://{config.edge.domain_name}/"
    else:
        # The distribution's own address, read from the edge stack in us-east-1.
        (read,) = stack_outputs_in(props["CallbackURLs"][0])
        assert (read["StackName"], read["Region"]) == (edge, EDGE_REGION)
        host = callbacks[0].removeprefix("https://").removesuffix("/")
        distribution_id, _ = distribution(stack_templates[edge])
        assert stacks.origin(host) == Origin(edge, distribution_id, "DomainName")
    # The same pool as the SPA's.
    assert stacks.origin(stacks.resolve(frontend, props["UserPoolId"])).stack == f"erp-{env}-auth"


def spa_client(stacks: Stacks, env: str) -> Origin:
    """The client the frontend signs in with: the one its build reads (user-pool-client-id)."""
    frontend = f"erp-{env}-frontend"
    (parameter,) = [
        p["Properties"]
        for p in resources_of(stacks.templates[frontend], "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"].endswith("/frontend/user-pool-client-id")
    ]
    return stacks.origin(stacks.resolve(frontend, parameter["Value"]))


@pytest.mark.parametrize("env", ENVS)
def test_spa_client_has_no_oauth_and_is_the_only_audience_of_the_api(stack_templates, configs, env):
    stacks = stacks_for(stack_templates, configs[env])
    spa = spa_client(stacks, env)
    assert spa.stack == f"erp-{env}-auth" and spa.attribute is None
    resource = stacks.resource(spa.stack, spa.logical_id)
    assert resource["Type"] == "AWS::Cognito::UserPoolClient"
    props = resource["Properties"]
    for oauth in ("AllowedOAuthFlows", "AllowedOAuthScopes", "CallbackURLs", "LogoutURLs", "DefaultRedirectURI"):
        assert oauth not in props, f"SPA client has {oauth}"
    assert props.get("AllowedOAuthFlowsUserPoolClient", False) is False

    api = f"erp-{env}-api"
    jwt = [
        a["Properties"]["JwtConfiguration"]
        for a in resources_of(stack_templates[api], "AWS::ApiGatewayV2::Authorizer").values()
        if a["Properties"]["AuthorizerType"] == "JWT"
    ]
    assert jwt, "the API has no JWT authorizer"
    sign_in_id, _ = only(stack_templates[f"erp-{env}-frontend"], "AWS::Cognito::UserPoolClient")
    for configuration in jwt:
        audience = [stacks.origin(a) for a in stacks.resolve(api, configuration["Audience"])]
        assert audience == [spa], "tokens of the sign-in client (or any other) must not pass the API"
        assert Origin(f"erp-{env}-frontend", sign_in_id) not in audience


@pytest.mark.parametrize("env", ENVS)
def test_frontend_parameters_are_exactly_the_contract_and_cover_what_the_tools_read(stack_templates, configs, env):
    from tools.frontend import PARAMETERS as READ_BY_MAKE_FRONTEND

    prefix = f"{configs[env].ssm_prefix}/frontend/"
    written = [
        p["Properties"]["Name"]
        for name, template in stack_templates.items()
        if name.startswith(f"erp-{env}-")
        for p in resources_of(template, "AWS::SSM::Parameter").values()
        if isinstance(p["Properties"].get("Name"), str) and p["Properties"]["Name"].startswith(prefix)
    ]
    leaves = sorted(name.removeprefix(prefix) for name in written)
    assert leaves == sorted(FRONTEND_PARAMETERS), "each parameter once, exactly the contract"
    assert set(READ_BY_MAKE_FRONTEND) <= set(leaves)
    # tools/user_admin.py builds its names inline: f"{config.ssm_prefix}/frontend/<leaf>".
    user_admin = (REPO / "tools" / "user_admin.py").read_text()
    read_by_user_admin = set(re.findall(r"ssm_prefix\}/frontend/([a-z0-9-]+)", user_admin))
    assert read_by_user_admin, "tools/user_admin.py no longer reads frontend parameters this way: update the test"
    assert read_by_user_admin <= set(leaves)


@pytest.mark.parametrize("env", ENVS)
def test_frontend_parameters_point_at_this_environments_edge(stack_templates, configs, env):
    config = configs[env]
    stacks = stacks_for(stack_templates, config)
    frontend = f"erp-{env}-frontend"
    edge = edge_name(env)
    prefix = f"{config.ssm_prefix}/frontend/"
    values = {
        p["Properties"]["Name"].removeprefix(prefix): stacks.resolve(frontend, p["Properties"]["Value"])
        for p in resources_of(stack_templates[frontend], "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"].startswith(prefix)
    }
    site_id, site = bucket(stack_templates[edge], "frontend")
    distribution_id, _ = distribution(stack_templates[edge])
    sign_in_id, _ = only(stack_templates[frontend], "AWS::Cognito::UserPoolClient")
    assert values["url"] == stacks.output(edge, "Url")
    assert values["url"].startswith("https://") and not values["url"].endswith("/")
    assert values["bucket"] == site["Properties"]["BucketName"], f"`make frontend` would publish elsewhere ({site_id})"
    assert values["bucket-region"] == EDGE_REGION
    assert values["region"] == config.region
    assert stacks.origin(values["distribution-id"]) == Origin(edge, distribution_id)
    assert stacks.origin(values["user-pool-client-id"]) == spa_client(stacks, env)
    assert stacks.origin(values["sign-in-client-id"]) == Origin(frontend, sign_in_id)


# --- 8. count-only rules ----------------------------------------------------------------------------------


def probe_stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "WafProbe", env=cdk.Environment(account="123456789012", region=EDGE_REGION))


def test_an_unknown_count_only_rule_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"edge\.waf\.count_only_rules.*NoSuchRule_BODY"):
        EdgeWebAcl(probe_stack(), "Acl", name="probe", rate_limit=100, count_only_rules=["NoSuchRule_BODY"])


def test_a_count_only_rule_counts_in_its_group_and_nowhere_else():
    group, rule = "AWSManagedRulesCommonRuleSet", "SizeRestrictions_BODY"
    assert rule in MANAGED_GROUPS[group]
    stack = probe_stack()
    EdgeWebAcl(stack, "Acl", name="probe", rate_limit=100, count_only_rules=[rule])
    (acl,) = Template.from_stack(stack).find_resources("AWS::WAFv2::WebACL").values()
    overrides = {
        r["Name"]: r["Statement"]["ManagedRuleGroupStatement"].get("RuleActionOverrides")
        for r in acl["Properties"]["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert overrides.pop(group) == [{"Name": rule, "ActionToUse": {"Count": {}}}]
    assert all(value is None for value in overrides.values())

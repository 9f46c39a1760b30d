"""The edge's costs (CloudFront, its function, the CLOUDFRONT-scope web ACL, the tagged buckets) against small
hand-made assemblies, with the arithmetic written out. Prices: tools/cost/prices-ap-northeast-2.yaml."""

from __future__ import annotations

import pytest

from tests.tools.test_cost import NO_USAGE, lines_of, make_env, res, write_assembly
from tools import cost

# The price sheet, by hand (USD).
HTTPS_PER_10K = 0.012
DATA_OUT_GB = 0.120
FUNCTION_PER_M = 0.10
WAF_ACL, WAF_RULE, WAF_PER_M = 5.00, 1.00, 0.60
S3_GB_MONTH = 0.025
# CloudFront's always-free tier, per account and month.
FREE_REQUESTS, FREE_GB, FREE_INVOCATIONS = 10_000_000, 1024, 2_000_000

EDGE_DEFAULTS = {  # config/sections.py UsageAssumptions defaults
    "edge_requests_per_month": 2_000_000,
    "edge_transfer_gb_per_month": 20.0,
    "frontend_storage_gb": 0.1,
    "edge_log_storage_gb": 2.0,
}
PROD_LIKE = {**EDGE_DEFAULTS, "edge_requests_per_month": 12_000_000, "edge_transfer_gb_per_month": 60.0}


def tags(usage: str | None = None) -> list[dict]:
    common = [{"Key": "Environment", "Value": "dev"}, {"Key": "Project", "Value": "erp"}]
    return common + ([{"Key": "erp:usage", "Value": usage}] if usage else [])


def distribution(price_class: str | None = "PriceClass_200") -> dict:
    config = {
        "Enabled": True,
        "DefaultCacheBehavior": {
            "TargetOriginId": "site",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": {"Ref": "SiteCache"},
            "FunctionAssociations": [
                {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": ["SpaFallback", "FunctionARN"]}}
            ],
        },
        "CacheBehaviors": [{"PathPattern": "/api/*", "TargetOriginId": "api", "ViewerProtocolPolicy": "https-only"}],
    }
    if price_class:
        config["PriceClass"] = price_class
    return res("AWS::CloudFront::Distribution", DistributionConfig=config)


def managed(name: str) -> dict:
    return {
        "Name": name,
        "Priority": 1,
        "OverrideAction": {"None": {}},
        "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": name}},
        "VisibilityConfig": {},
    }


RATE_RULE = {
    "Name": "requests-per-ip",
    "Priority": 0,
    "Action": {"Block": {}},
    "Statement": {"RateBasedStatement": {"Limit": 2000, "AggregateKeyType": "IP"}},
    "VisibilityConfig": {},
}
EDGE_RULES = [
    RATE_RULE,
    managed("AWSManagedRulesAmazonIpReputationList"),
    managed("AWSManagedRulesCommonRuleSet"),
    managed("AWSManagedRulesKnownBadInputsRuleSet"),
]


def edge_stack(**extra) -> dict:
    """What erp-<env>-edge holds: the distribution, its function, the free policies and OAC, two tagged buckets."""
    return {
        "Site": res("AWS::S3::Bucket", Tags=tags("frontend")),
        "SitePolicy": res("AWS::S3::BucketPolicy", Bucket={"Ref": "Site"}),
        "Logs": res("AWS::S3::Bucket", Tags=tags("edge-logs")),
        "SiteCache": res("AWS::CloudFront::CachePolicy", CachePolicyConfig={}),
        "Headers": res("AWS::CloudFront::ResponseHeadersPolicy", ResponseHeadersPolicyConfig={}),
        "ApiRequests": res("AWS::CloudFront::OriginRequestPolicy", OriginRequestPolicyConfig={}),
        "Oac": res("AWS::CloudFront::OriginAccessControl", OriginAccessControlConfig={}),
        "SpaFallback": res("AWS::CloudFront::Function", AutoPublish=True, FunctionCode="function handler(e) {}"),
        "Distribution": distribution(),
        **extra,
    }


def estimate_edge(tmp_path, usage: dict, **extra) -> cost.Estimate:
    assembly = write_assembly(tmp_path / "cdk.out", {"Dev": {"erp-dev-edge": edge_stack(**extra)}})
    return cost.estimate(assembly, make_env(usage={**NO_USAGE, **usage}))


def priced(est: cost.Estimate, logical_id: str) -> list[tuple[str, float]]:
    return [(x.item, x.usd) for x in lines_of(est, logical_id)]


def test_default_usage_stays_inside_cloudfronts_free_tier(tmp_path):
    est = estimate_edge(tmp_path, EDGE_DEFAULTS)

    # 2 M requests <= 10 M free: 0 × $0.012; 20 GB <= 1 TB free: 0 × $0.120.
    assert priced(est, "Distribution") == [
        ("HTTPS requests beyond the first 10 M free per account (usage)", 0.0),
        ("data out to viewers beyond the first 1 TB free per account (usage)", 0.0),
    ]
    # 2 M invocations (every edge request) <= 2 M free.
    assert priced(est, "SpaFallback") == [
        ("invocations beyond the first 2 M free per account (usage: every edge request, assumed)", 0.0)
    ]
    # The buckets: 0.1 GB × $0.025 = 0.0025; 2 GB × $0.025 = 0.05.
    assert est.subtotals["erp-dev-edge"] == pytest.approx(0.1 * S3_GB_MONTH + 2.0 * S3_GB_MONTH)
    assert est.unpriced == []


def test_prod_like_usage_pays_requests_beyond_10_m_but_no_transfer_under_1_tb(tmp_path):
    est = estimate_edge(tmp_path, PROD_LIKE)

    requests, transfer = lines_of(est, "Distribution")
    assert requests.quantity == pytest.approx((12_000_000 - FREE_REQUESTS) / 10_000)  # 200 × 10k
    assert requests.usd == pytest.approx((12_000_000 - FREE_REQUESTS) / 10_000 * HTTPS_PER_10K)
    assert requests.usd == pytest.approx(2.40)
    assert requests.formula() == "200 10k requests × $0.012/10k requests"
    assert (transfer.quantity, transfer.usd) == (0, 0)  # 60 GB < 1,024 GB free
    [function] = lines_of(est, "SpaFallback")
    assert function.usd == pytest.approx((12_000_000 - FREE_INVOCATIONS) / 1e6 * FUNCTION_PER_M)  # 10 × 0.10 = 1.00
    assert est.subtotals["erp-dev-edge"] == pytest.approx(2.40 + 0 + 1.00 + 0.1 * S3_GB_MONTH + 2.0 * S3_GB_MONTH)


def test_transfer_beyond_the_free_terabyte_is_billed(tmp_path):
    est = estimate_edge(tmp_path, {**EDGE_DEFAULTS, "edge_transfer_gb_per_month": 1124.0})

    _requests, transfer = lines_of(est, "Distribution")
    assert transfer.quantity == pytest.approx(1124 - FREE_GB)  # 100 GB
    assert transfer.usd == pytest.approx(100 * DATA_OUT_GB)  # 12.00
    assert transfer.price.level == "A" and not transfer.price.approximate


def test_two_distributions_split_the_usage_and_share_one_free_tier(tmp_path):
    est = estimate_edge(tmp_path, PROD_LIKE, Second=distribution())

    first, second = lines_of(est, "Distribution")[0], lines_of(est, "Second")[0]
    assert "split over 2" in first.item
    assert first.usd == second.usd == pytest.approx(2.40 / 2)  # (12 M - 10 M) / 2 per distribution


def test_price_class_100_is_unpriced_not_billed_at_the_ap_price(tmp_path):
    est = estimate_edge(tmp_path, PROD_LIKE, Distribution=distribution("PriceClass_100"))

    assert lines_of(est, "Distribution") == []
    [unpriced] = est.unpriced
    assert unpriced.logical_id == "Distribution" and "PriceClass_100" in unpriced.reason


def test_missing_price_class_is_cloudfronts_default_all_and_priced(tmp_path):
    est = estimate_edge(tmp_path, PROD_LIKE, Distribution=distribution(None))

    assert sum(x.usd for x in lines_of(est, "Distribution")) == pytest.approx(2.40)


def test_cloudfront_web_acl_inspects_every_edge_request(tmp_path):
    acl = res("AWS::WAFv2::WebACL", Scope="CLOUDFRONT", DefaultAction={"Allow": {}}, Rules=EDGE_RULES)
    est = estimate_edge(tmp_path, PROD_LIKE, WebAcl=acl)

    assert priced(est, "WebAcl") == [
        ("web ACL", pytest.approx(WAF_ACL)),
        ("rules", pytest.approx(4 * WAF_RULE)),  # a rate-based rule + 3 managed groups, one rule each
        ("requests inspected (usage: every edge request)", pytest.approx(12 * WAF_PER_M)),  # 12 M × 0.60 = 7.20
    ]
    assert sum(x.usd for x in lines_of(est, "WebAcl")) == pytest.approx(5 + 4 + 12 * 0.60)  # 16.20
    assert sum(x.usd for x in lines_of(est, "WebAcl")) == pytest.approx(16.20)


def test_regional_web_acl_still_counts_the_auth_requests(tmp_path):
    rate = res("AWS::WAFv2::WebACL", Scope="REGIONAL", DefaultAction={"Allow": {}}, Rules=[RATE_RULE])
    no_scope = res("AWS::WAFv2::WebACL", DefaultAction={"Allow": {}}, Rules=[RATE_RULE])
    stack = {"UsersRateLimit": rate, "NoScope": no_scope}
    assembly = write_assembly(tmp_path / "cdk.out", {"Prod": {"erp-dev-auth": stack}})
    usage = {**NO_USAGE, **PROD_LIKE, "auth_requests_per_month": 1_500_000}
    est = cost.estimate(assembly, make_env(usage=usage))

    for acl in ("UsersRateLimit", "NoScope"):
        assert priced(est, acl) == [
            ("web ACL", pytest.approx(WAF_ACL)),
            ("rules", pytest.approx(1 * WAF_RULE)),
            ("requests inspected (usage)", pytest.approx(1.5 * WAF_PER_M)),  # auth requests, not the 12 M edge ones
        ]
        assert sum(x.usd for x in lines_of(est, acl)) == pytest.approx(5 + 1 + 1.5 * 0.60)  # 6.90
    assert est.unpriced == []


def test_paid_managed_rule_group_is_listed_unpriced_beside_the_priced_fees(tmp_path):
    rules = [*EDGE_RULES, managed("AWSManagedRulesBotControlRuleSet")]
    acl = res("AWS::WAFv2::WebACL", Scope="CLOUDFRONT", DefaultAction={"Allow": {}}, Rules=rules)
    est = estimate_edge(tmp_path, PROD_LIKE, WebAcl=acl)

    assert sum(x.usd for x in lines_of(est, "WebAcl")) == pytest.approx(5 + 5 + 12 * 0.60)
    [unpriced] = est.unpriced
    assert unpriced.logical_id == "WebAcl" and "AWSManagedRulesBotControlRuleSet" in unpriced.reason


def test_buckets_are_priced_by_their_usage_tag(tmp_path):
    usage = {**EDGE_DEFAULTS, "frontend_storage_gb": 0.5, "edge_log_storage_gb": 8.0}
    est = estimate_edge(tmp_path, usage)

    assert priced(est, "Site") == [("Standard storage (usage: frontend_storage_gb)", pytest.approx(0.5 * 0.025))]
    assert priced(est, "Logs") == [("Standard storage (usage: edge_log_storage_gb)", pytest.approx(8.0 * 0.025))]
    [site] = lines_of(est, "Site")
    assert site.price.source.startswith("A:") and "us-east-1" in site.price.source


def test_untagged_or_unknown_tag_bucket_is_still_unpriced(tmp_path):
    est = estimate_edge(
        tmp_path,
        EDGE_DEFAULTS,
        Artifacts=res("AWS::S3::Bucket", Tags=tags()),
        Bare=res("AWS::S3::Bucket"),
        Other=res("AWS::S3::Bucket", Tags=tags("backups")),
    )

    reasons = {u.logical_id: u.reason for u in est.unpriced}
    assert reasons == {
        "Artifacts": "storage: no usage assumption for this bucket",
        "Bare": "storage: no usage assumption for this bucket",
        "Other": "storage: no usage assumption for erp:usage='backups'",
    }
    assert lines_of(est, "Artifacts") == lines_of(est, "Bare") == lines_of(est, "Other") == []


def test_cloudfront_policies_and_origin_access_control_are_free(tmp_path):
    est = estimate_edge(tmp_path, EDGE_DEFAULTS)

    for rtype in (
        "AWS::CloudFront::CachePolicy",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "AWS::CloudFront::OriginRequestPolicy",
        "AWS::CloudFront::OriginAccessControl",
        "AWS::S3::BucketPolicy",
    ):
        assert est.free[rtype] == 1, rtype
    assert "AWS::CloudFront::KeyValueStore" not in cost.pricers.FREE_TYPES  # billed per read: not free

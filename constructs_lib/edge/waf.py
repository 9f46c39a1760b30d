"""The edge's web ACL (CLOUDFRONT scope, so it lives in us-east-1 with the distribution's stack).

HTTP APIs cannot take a web ACL; the distribution can, and every browser request passes it: the frontend's
files and /api/* alike. The services behind /api are Spring Boot (Java): the known-bad-inputs group carries
AWS's Log4j (CVE-2021-44228) and Java deserialization rules, the common rule set the OWASP-style basics.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from constructs_lib.common.waf import visibility

# Managed groups in evaluation order, with the rule names each contains (a count_only_rules entry must be one of
# them). Source: AWS WAF Developer Guide, "Baseline rule groups" and "IP reputation rule groups" (the latest
# static versions), read 2026-12-04.
MANAGED_GROUPS: dict[str, tuple[str, ...]] = {
    "AWSManagedRulesAmazonIpReputationList": (
        "AWSManagedIPReputationList",
        "AWSManagedReconnaissanceList",
        "AWSManagedIPDDoSList",
    ),
    "AWSManagedRulesCommonRuleSet": (
        "NoUserAgent_HEADER",
        "UserAgent_BadBots_HEADER",
        "SizeRestrictions_QUERYSTRING",
        "SizeRestrictions_Cookie_HEADER",
        "SizeRestrictions_BODY",
        "SizeRestrictions_URIPATH",
        "EC2MetaDataSSRF_BODY",
        "EC2MetaDataSSRF_COOKIE",
        "EC2MetaDataSSRF_URIPATH",
        "EC2MetaDataSSRF_QUERYARGUMENTS",
        "GenericLFI_QUERYARGUMENTS",
        "GenericLFI_URIPATH",
        "GenericLFI_BODY",
        "RestrictedExtensions_URIPATH",
        "RestrictedExtensions_QUERYARGUMENTS",
        "GenericRFI_QUERYARGUMENTS",
        "GenericRFI_BODY",
        "GenericRFI_URIPATH",
        "CrossSiteScripting_COOKIE",
        "CrossSiteScripting_QUERYARGUMENTS",
        "CrossSiteScripting_BODY",
        "CrossSiteScripting_URIPATH",
    ),
    "AWSManagedRulesKnownBadInputsRuleSet": (
        "JavaDeserializationRCE_HEADER",
        "JavaDeserializationRCE_BODY",
        "JavaDeserializationRCE_URIPATH",
        "JavaDeserializationRCE_QUERYSTRING",
        "Host_localhost_HEADER",
        "PROPFIND_METHOD",
        "ExploitablePaths_URIPATH",
        "Log4JRCE_HEADER",
        "Log4JRCE_QUERYSTRING",
        "Log4JRCE_BODY",
        "Log4JRCE_URIPATH",
    ),
}
MANAGED_RULE_NAMES = frozenset(name for names in MANAGED_GROUPS.values() for name in names)
RATE_RULE = "requests-per-ip"
RATE_WINDOW_SECONDS = 300


class EdgeWebAcl(Construct):
    """Rate limit per client IP first (cheapest to evaluate, stops floods before the managed groups), then the
    managed groups; anything else is allowed. Named `{name}` (its CloudWatch dimension `WebACL`)."""

    def __init__(
        self, scope: Construct, id: str, *, name: str, rate_limit: int, count_only_rules: Sequence[str]
    ) -> None:
        super().__init__(scope, id)
        unknown = sorted(set(count_only_rules) - MANAGED_RULE_NAMES)
        if unknown:
            # Config validation cannot see this table; the stack refuses it at synth, naming the field.
            raise ValueError(f"edge.waf.count_only_rules: {unknown[0]!r} is not a rule of {sorted(MANAGED_GROUPS)}")
        self.name = name
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=RATE_RULE,
                priority=0,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                visibility_config=visibility(f"{name}-{RATE_RULE}"),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP", limit=rate_limit, evaluation_window_sec=RATE_WINDOW_SECONDS
                    )
                ),
            )
        ]
        for priority, (group, names) in enumerate(MANAGED_GROUPS.items(), start=1):
            overrides = [
                wafv2.CfnWebACL.RuleActionOverrideProperty(
                    name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                )
                for rule in names
                if rule in count_only_rules
            ]
            rules.append(
                wafv2.CfnWebACL.RuleProperty(
                    name=group,
                    priority=priority,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    visibility_config=visibility(f"{name}-{group}"),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=group, rule_action_overrides=overrides or None
                        )
                    ),
                )
            )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            description="Edge: per-IP rate limit, IP reputation, common rules, known bad inputs incl. Log4j and Java",
            scope="CLOUDFRONT",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(name),
            rules=rules,
        )

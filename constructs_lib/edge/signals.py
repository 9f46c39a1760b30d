"""Alarms and a dashboard for the edge, in us-east-1 beside it: CloudFront and CLOUDFRONT-scope WAF publish their
metrics there, and an alarm can only act on a topic of its own region (so the edge has its own alarm topic, with
the environment's alarm e-mails)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from constructs import Construct

from config.sections import EdgeConfig
from constructs_lib.edge.waf import MANAGED_GROUPS, RATE_RULE

FIVE_MINUTES = Duration.minutes(5)
# Below this many requests in 5 minutes a few 5xx are noise (one failing poll at night is not an outage).
MIN_REQUESTS_FOR_RATE = 20


def cloudfront_metric(name: str, distribution_id: str, statistic: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/CloudFront",
        metric_name=name,
        dimensions_map={"DistributionId": distribution_id, "Region": "Global"},
        statistic=statistic,
        period=FIVE_MINUTES,
    )


def waf_metric(name: str, web_acl: str, rule: str = "ALL") -> cloudwatch.Metric:
    """CLOUDFRONT-scope web ACLs publish without a Region dimension (REGIONAL ones add it)."""
    return cloudwatch.Metric(
        namespace="AWS/WAFV2",
        metric_name=name,
        dimensions_map={"WebACL": web_acl, "Rule": rule},
        statistic="Sum",
        period=FIVE_MINUTES,
    )


class EdgeSignals(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        config: EdgeConfig,
        distribution_id: str,
        web_acl_name: str | None,
        action: cw_actions.SnsAction,
    ) -> None:
        super().__init__(scope, id)
        requests = cloudfront_metric("Requests", distribution_id, "Sum")
        error_rate = cloudfront_metric("5xxErrorRate", distribution_id, "Average")
        # Only a rate over enough requests counts; below that the expression is 0.
        significant_5xx = cloudwatch.MathExpression(
            expression=f"IF(requests >= {MIN_REQUESTS_FOR_RATE}, rate, 0)",
            using_metrics={"requests": requests, "rate": error_rate},
            label="5xx % (when >= 20 requests)",
            period=FIVE_MINUTES,
        )
        self.alarms: list[cloudwatch.Alarm] = [
            self._alarm(
                "Edge5xxRate",
                f"{name}-edge-5xx-rate",
                significant_5xx,
                config.error_rate_alarm_pct,
                f"More than {config.error_rate_alarm_pct}% of the edge's responses are 5xx (2 of 3 five-minute "
                "periods): the API or the bucket behind the distribution fails. Access logs: the edge's log bucket, "
                "cloudfront/.",
                action,
                evaluation_periods=3,
                datapoints_to_alarm=2,
            )
        ]
        if web_acl_name is not None:
            self.alarms.append(
                self._alarm(
                    "EdgeWafBlocked",
                    f"{name}-edge-waf-blocked",
                    waf_metric("BlockedRequests", web_acl_name),
                    config.waf.blocked_alarm_threshold,
                    f"The edge's web ACL blocked {config.waf.blocked_alarm_threshold}+ requests in 5 minutes: an "
                    "attack, or a rule blocking real users (WAF console: sampled requests show which rule). A rule "
                    "that blocks legitimate traffic goes in edge.waf.count_only_rules.",
                    action,
                )
            )
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{name}-edge", default_interval=Duration.hours(6)
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Edge alarms", alarms=self.alarms, width=24, height=3),
            cloudwatch.GraphWidget(title="Edge requests (5 min)", left=[requests], width=8),
            cloudwatch.GraphWidget(
                title="Edge error rates (%)",
                left=[
                    cloudfront_metric("4xxErrorRate", distribution_id, "Average"),
                    error_rate,
                ],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=config.error_rate_alarm_pct, label="alarm")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Bytes sent to viewers",
                left=[cloudfront_metric("BytesDownloaded", distribution_id, "Sum")],
                width=8,
            ),
        )
        if web_acl_name is not None:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="WAF: allowed vs blocked (5 min)",
                    left=[waf_metric("AllowedRequests", web_acl_name), waf_metric("BlockedRequests", web_acl_name)],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=config.waf.blocked_alarm_threshold, label="alarm")
                    ],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title="WAF: blocked by rule (5 min)",
                    left=[
                        waf_metric("BlockedRequests", web_acl_name, rule)
                        for rule in _rule_metric_names(web_acl_name, [RATE_RULE, *MANAGED_GROUPS])
                    ],
                    width=12,
                ),
            )

    def _alarm(
        self,
        id: str,
        alarm_name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        action: cw_actions.SnsAction,
        *,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            id,
            alarm_name=alarm_name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            # No traffic is no outage and no attack.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm


def _rule_metric_names(web_acl_name: str, rules: Sequence[str]) -> list[str]:
    """A rule's metric dimension is its visibility config's metric name (constructs_lib/edge/waf.py)."""
    return [f"{web_acl_name}-{rule}" for rule in rules]

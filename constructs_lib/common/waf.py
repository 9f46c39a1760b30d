"""What every web ACL and rule of the platform reports: CloudWatch metrics and sampled requests, always on."""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2


def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    """`metric` becomes the `Rule` (or `WebACL`) dimension of the AWS/WAFV2 metrics the alarms read."""
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )

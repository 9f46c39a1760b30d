"""What we watch: the one set of resources the alarms and the dashboard both read (issue 14 item 5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds

from constructs_lib.observability.log_metrics import ErrorLineMetrics


@dataclass(frozen=True)
class Watched:
    """A new tier to watch: add it here, then an alarm in alarms.py and a widget in dashboard.py."""

    errors: ErrorLineMetrics
    http_api: apigw.IHttpApi
    function: lambda_.IFunction
    load_balancer: elbv2.NetworkLoadBalancer
    target_groups: Mapping[str, elbv2.NetworkTargetGroup]
    database: rds.IDatabaseInstance
    cache_node_ids: list[str]

"""Warms the stage registry's pull-through cache by tag before anything pulls by digest (issue 18 item 5).

A CDK Trigger in the Registry stack runs lambda_handlers/cache_warmer whenever the third-party image list
(k8s_charts/images.THIRD_PARTY) or the node platforms change: it pulls each image by tag through the cache,
fails the deploy when a pinned digest is not what the tag resolves to, and pulls each per-platform image the
node groups run, so that digest-pinned pods find their image and the prod scan gate finds its scans. It
runs in the stage account with its own role (pull through the cache prefixes only), so hand deploys
(`cdk deploy 'ErpPipeline/<Stage>/*'`) warm the cache exactly as the pipeline does.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.deploy_trigger import deploy_trigger
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.delivery.pull_through_cache import acknowledge_cache_repositories, cache_repository_arns
from k8s_charts.images import THIRD_PARTY, node_platforms, registry_host

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "cache_warmer"
# Every layer of every platform of every image streams through the function once: well inside 15 minutes.
TIMEOUT = Duration.minutes(14)


def warm_list() -> list[dict]:
    """What the handler pulls: every third-party image by tag, with its pinned digest (or None)."""
    return [
        {"name": name, "repository": image.repository(), "tag": image.tag, "digest": image.digest}
        for name, image in THIRD_PARTY.items()
    ]


class CacheWarmer(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, after: list[Construct]) -> None:
        """`after`: the pull-through cache rules and creation templates the pulls go through."""
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.images = warm_list()
        self.platforms = node_platforms(config)
        self.function = PythonFunction(
            self,
            "Function",
            description=f"Pulls the third-party images of {config.name} by tag through the ECR pull-through cache",
            entry=HANDLER_DIR,
            environment={
                "REGISTRY": registry_host(config),
                "IMAGES": json.dumps(self.images, sort_keys=True),
                "PLATFORMS": json.dumps(self.platforms),
            },
            memory_mb=512,
            timeout=TIMEOUT,
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
        )
        role = self.function.role
        # GetAuthorizationToken has no resource-level permissions.
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullThroughTheCache",
                actions=[
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:CreateRepository",
                    "ecr:BatchImportUpstreamImage",
                    "ecr:DescribeRepositories",
                    "ecr:PutImageTagMutability",
                ],
                resources=cache_repository_arns(stack),
            )
        )
        acknowledge_cache_repositories(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and X-Ray PutTraceSegments have no resource-level permissions.",
        )
        self.trigger = deploy_trigger(
            self,
            "Trigger",
            handler=self.function.function,
            timeout=Duration.minutes(15),
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
            execute_after=after,
        )

"""Registry tier: the ECR repositories CI pushes service images to, the pull-through cache for third-party images
(warmed by tag on deploy), and where tooling finds them."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.parameters import EnvParameters
from constructs_lib.delivery.cache_warmer import CacheWarmer
from constructs_lib.delivery.pull_through_cache import PullThroughCache
from constructs_lib.delivery.registry import ServiceRepositories


class RegistryStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.images = ServiceRepositories(
            self, "Repositories", project=config.project, services=config.services, production=config.production
        )
        self.repositories = self.images.repositories
        # Third-party images (k8s_charts/images.py) come through the stage's own registry.
        self.pull_through_cache = PullThroughCache(self, "PullThroughCache", config=config.registry)
        # Pulled by tag once (a first pull by digest would not fill the cache), pins checked, before any pod pulls.
        self.cache_warmer = CacheWarmer(self, "CacheWarmer", config=config, after=[self.pull_through_cache])
        EnvParameters(
            self,
            "Parameters",
            prefix=config.ssm_prefix,
            values={
                "ecr/repository-prefix": f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}/{config.project}"
            },
        )

"""Network tier: the VPC the other stacks are placed in."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.network.vpc import ErpVpc


class NetworkStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.network = ErpVpc(self, "Network", config=config.network, production=config.production)
        self.vpc = self.network.vpc

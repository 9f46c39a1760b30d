"""One environment's whole platform; built once per config file, deployed by the pipeline or by hand."""

from __future__ import annotations

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from config.models import EnvironmentConfig
from stacks.data import DataStack
from stacks.network import NetworkStack


class ErpStage(Stage):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, id, env=Environment(account=config.account, region=config.region))
        self.config = config

        def name(kind: str) -> str:
            # Humans look stacks up by name in the console: make it predictable.
            return f"{config.project}-{config.name}-{kind}"

        self.network = NetworkStack(self, "Network", config=config, stack_name=name("network"))
        self.data = DataStack(self, "Data", config=config, vpc=self.network.vpc, stack_name=name("data"))

        for key, value in config.tags.items():
            Tags.of(self).add(key, value)

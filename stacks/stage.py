"""One environment's whole platform; built once per config file, deployed by the pipeline or by hand."""

from __future__ import annotations

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from config.models import EnvironmentConfig
from config.sections import EDGE_REGION
from stacks.api import ApiStack
from stacks.auth import AuthStack
from stacks.backup import BackupCopyStack, BackupStack
from stacks.cluster import ClusterStack
from stacks.data import EMPLOYEE_DB_USER, DataStack
from stacks.edge import EdgeStack
from stacks.frontend import FrontendStack
from stacks.network import NetworkStack
from stacks.observability import ObservabilityStack
from stacks.registry import RegistryStack
from stacks.workloads import WorkloadsStack


class ErpStage(Stage):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, id, env=Environment(account=config.account, region=config.region))
        self.config = config

        def name(kind: str) -> str:
            # Humans look stacks up by name in the console: make it predictable.
            return f"{config.resource_prefix}-{kind}"

        self.network = NetworkStack(self, "Network", config=config, stack_name=name("network"))
        self.data = DataStack(self, "Data", config=config, vpc=self.network.vpc, stack_name=name("data"))
        self.auth = AuthStack(self, "Auth", config=config, stack_name=name("auth"))
        self.api = ApiStack(
            self,
            "Api",
            config=config,
            vpc=self.network.vpc,
            database=self.data.database,
            employee_db_secret=self.data.database_users.secret(EMPLOYEE_DB_USER),
            user_pool=self.auth.user_pool,
            user_pool_client=self.auth.user_pool_client,
            stack_name=name("api"),
        )
        # The edge lives in us-east-1 (CloudFront's certificates, web ACLs and metrics); everything else here.
        self.edge = EdgeStack(
            self,
            "Edge",
            config=config,
            http_api=self.api.http_api,
            stack_name=name("edge"),
            env=Environment(account=config.account, region=EDGE_REGION),
        )
        # The edge fronts the API: deployed after it also when no reference orders them (api.edge_only).
        self.edge.add_stack_dependency(self.api)
        self.frontend = FrontendStack(
            self,
            "Frontend",
            config=config,
            edge=self.edge,
            user_pool=self.auth.user_pool,
            user_pool_client=self.auth.user_pool_client,
            stack_name=name("frontend"),
        )
        self.registry = RegistryStack(self, "Registry", config=config, stack_name=name("registry"))
        self.cluster = ClusterStack(
            self,
            "Cluster",
            config=config,
            vpc=self.network.vpc,
            database=self.data.endpoints.database,
            stack_name=name("cluster"),
        )
        # Backups (issue 21), before Workloads: its drift check covers only the stacks built before it. The copy
        # vault is in another region and named, so the primary plan refers to it by ARN and deploys after it.
        self.backup_copy: BackupCopyStack | None = None
        if config.backup.copy is not None:
            self.backup_copy = BackupCopyStack(
                self,
                "BackupCopy",
                config=config,
                stack_name=name("backup-copy"),
                env=Environment(account=config.account, region=config.backup.copy.region),
            )
        self.backup = BackupStack(
            self,
            "Backup",
            config=config,
            vpc=self.network.vpc,
            data=self.data.endpoints,
            live_secret=self.data.database_users.secret(EMPLOYEE_DB_USER),
            stack_name=name("backup"),
        )
        self.backup.add_stack_dependency(self.data)
        if self.backup_copy is not None:
            self.backup.add_stack_dependency(self.backup_copy)
        self.observability = ObservabilityStack(
            self,
            "Observability",
            config=config,
            database=self.data.endpoints.database,
            cache_replication_group_id=self.data.endpoints.cache_replication_group.ref,
            http_api=self.api.http_api,
            employee_function=self.api.employee_function,
            load_balancer=self.api.nlb.load_balancer,
            target_groups=self.api.endpoints.target_groups,
            stack_name=name("observability"),
        )
        self.workloads = WorkloadsStack(
            self,
            "Workloads",
            config=config,
            cluster=self.cluster.cluster,
            vpc=self.network.vpc,
            data=self.data.endpoints,
            api=self.api.endpoints,
            repositories=self.registry.repositories,
            stack_name=name("workloads"),
        )
        # Fluent Bit writes to the application log group the Observability stack creates.
        self.workloads.add_stack_dependency(self.observability)
        # Pods pull from the registry's repositories (referenced by name, so no implicit dependency).
        self.workloads.add_stack_dependency(self.registry)
        # The Helm releases pull through the registry's cache rules, warmed by its deploy (CacheWarmer): the
        # Cluster stack comes after the Registry stack (by hand too), and the prod gate fits between them.
        self.cluster.add_stack_dependency(self.registry)

        for key, value in config.tags.items():
            Tags.of(self).add(key, value)

"""Cluster tier: EKS, its add-ons, its controllers, and the cluster-wide default StorageClass."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_rds as rds
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.controllers import ErpControllers
from constructs_lib.cluster.eks import ErpCluster
from constructs_lib.cluster.managed_addons import ErpClusterAddons
from constructs_lib.cluster.night_schedule import NightSchedule
from constructs_lib.cluster.reloader import Reloader
from constructs_lib.common.parameters import EnvParameters
from constructs_lib.delivery.pull_through_cache import grant_pull_through
from constructs_lib.delivery.workload_health import WorkloadHealthReporter
from k8s_charts import build_storage_chart
from k8s_charts.namespace import build_app_namespace_chart


class ClusterStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        database: rds.IDatabaseInstance,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.eks = ErpCluster(self, "Eks", vpc=vpc, config=config)
        self.cluster = self.eks.cluster
        grant_pull_through(self.eks.node_role)
        # What the pipeline's smoke test reads about the pods (view only, no Secrets; from inside the VPC).
        self.workload_health = WorkloadHealthReporter(
            self, "WorkloadHealth", config=config, cluster=self.cluster, vpc=vpc
        )
        self.addons = ErpClusterAddons(
            self, "Addons", cluster=self.cluster, nodegroups=list(self.eks.nodegroups.values()), config=config
        )
        self.controllers = ErpControllers(
            self, "Controllers", cluster=self.cluster, config=config, nodegroups=list(self.eks.nodegroups.values())
        )
        # The erp namespace exists before any Helm release renders into it: Reloader's chart puts its Role
        # there (k8s_charts/namespace.py). `overwrite`: an environment whose Workloads chart created it applies
        # over it; RETAIN: a renamed construct must never `kubectl delete` the namespace and its volume claims.
        self.app_namespace = eks.KubernetesManifest(
            self,
            "AppNamespace",
            cluster=self.cluster,
            manifest=build_app_namespace_chart(config).to_json(),
            overwrite=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.reloader = Reloader(
            self,
            "Reloader",
            cluster=self.cluster,
            config=config,
            after=[*self.eks.nodegroups.values(), self.app_namespace],
        )
        storage = self.cluster.add_cdk8s_chart("StorageClass", build_storage_chart(config))
        storage.node.add_dependency(self.addons)
        if config.schedule is not None:
            NightSchedule(
                self,
                "NightSchedule",
                config=config,
                cluster=self.cluster,
                vpc=vpc,
                nodegroups=self.eks.nodegroups,
                database=database,
            )
        EnvParameters(
            self, "Parameters", prefix=config.ssm_prefix, values={"eks/cluster-name": self.cluster.cluster_name}
        )

"""The controllers installed with Helm at pinned versions, each with a least-privilege Pod Identity role.

The versions come from config and match the CRDs vendored in ../shared/crds, so the
schema the tests validate against is the schema the running controller enforces. One module per
add-on (load_balancer_controller.py, external_secrets.py) on the shared base in helm_addon.py.
"""

from __future__ import annotations

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.cluster_autoscaler import cluster_autoscaler
from constructs_lib.cluster.external_secrets import external_secrets
from constructs_lib.cluster.load_balancer_controller import load_balancer_controller


class ErpControllers(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.Cluster,
        config: EnvironmentConfig,
        nodegroups: list[eks.Nodegroup],
    ) -> None:
        super().__init__(scope, id)
        self.load_balancer_controller = load_balancer_controller(
            self, cluster=cluster, config=config, nodegroups=nodegroups
        )
        self.external_secrets = external_secrets(self, cluster=cluster, config=config, nodegroups=nodegroups)
        # Node autoscaling within each group's min/max (issue 22 item 1; cluster_autoscaler.py says why CA).
        self.cluster_autoscaler = cluster_autoscaler(self, cluster=cluster, config=config, nodegroups=nodegroups)

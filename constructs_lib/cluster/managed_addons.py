"""Managed add-ons: networking with NetworkPolicy enforcement, DNS, Pod Identity, EBS volumes, metrics."""

from __future__ import annotations

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.kubernetes_versions import addon_version
from config.models import EnvironmentConfig
from constructs_lib.common.pod_identity import PodIdentityRole
from constructs_lib.common.policies import owned_log_group


class ErpClusterAddons(Construct):
    """Add-ons EKS manages and upgrades; the ones that schedule pods wait for the node groups."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.Cluster,
        nodegroups: list[eks.Nodegroup],
        config: EnvironmentConfig,
    ) -> None:
        super().__init__(scope, id)
        minor = config.cluster.kubernetes_version

        def pinned(construct_id: str, name: str, **options) -> eks.Addon:
            """Pinned to the version recorded for the control plane's minor (config/kubernetes-versions.yaml)."""
            return eks.Addon(
                self,
                construct_id,
                cluster=cluster,
                addon_name=name,
                addon_version=addon_version(minor, name),
                **options,
            )

        # DaemonSets nodes need to become Ready: installed before any node group.
        node_prerequisites = [
            # Without enableNetworkPolicy the NetworkPolicies of the workloads chart are silently not enforced.
            pinned("VpcCni", "vpc-cni", configuration_values={"enableNetworkPolicy": "true"}),
            pinned("KubeProxy", "kube-proxy"),
            pinned("PodIdentityAgent", "eks-pod-identity-agent"),
        ]
        for nodegroup in nodegroups:
            for addon in node_prerequisites:
                nodegroup.node.add_dependency(addon)

        ebs_role = PodIdentityRole(
            self,
            "EbsCsiIdentity",
            cluster=cluster,
            namespace="kube-system",
            service_account="ebs-csi-controller-sa",
            aws_managed_policies={
                "service-role/AmazonEBSCSIDriverPolicy": "AWS-maintained EBS CSI policy tracks the driver's needs; "
                "scoped by tags to CSI-created volumes."
            },
        )
        needs_nodes = [
            pinned("CoreDns", "coredns"),
            pinned("EbsCsi", "aws-ebs-csi-driver"),
            pinned("MetricsServer", "metrics-server"),
        ]
        needs_nodes[1].node.add_dependency(ebs_role)

        if config.observability.container_insights:
            # Container Insights: the source of the pod-restart alarm and per-pod CPU/memory.
            agent_role = PodIdentityRole(
                self,
                "CloudWatchAgentIdentity",
                cluster=cluster,
                namespace="amazon-cloudwatch",
                service_account="cloudwatch-agent",
                aws_managed_policies={
                    "CloudWatchAgentServerPolicy": "AWS-maintained policy the Container Insights agent is "
                    "documented and tested with."
                },
            )
            # The agent would create this group with no retention; owning it first bounds the cost.
            performance_logs = owned_log_group(
                self,
                "ContainerInsightsLogs",
                log_group_name=f"/aws/containerinsights/{config.cluster_name}/performance",
                config=config,
            )
            # Our own Fluent Bit ships container logs to the one application log group.
            observability = pinned(
                "CloudWatchObservability",
                "amazon-cloudwatch-observability",
                configuration_values={"containerLogs": {"enabled": False}},
            )
            observability.node.add_dependency(agent_role)
            observability.node.add_dependency(performance_logs)
            needs_nodes.append(observability)

        for addon in needs_nodes:
            for nodegroup in nodegroups:
                addon.node.add_dependency(nodegroup)

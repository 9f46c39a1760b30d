"""EKS Pod Identity: one IAM role per Kubernetes service account, scoped to what that pod does."""

from __future__ import annotations

from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs_lib.common.nag import acknowledge


class PodIdentityRole(Construct):
    """A role only pods of ``namespace/service_account`` in this cluster can assume.

    Pod Identity instead of IRSA: no OIDC provider to manage, and the trust
    policy is the same for every cluster, so roles survive cluster replacement.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        namespace: str,
        service_account: str,
        statements: list[iam.PolicyStatement] | None = None,
        aws_managed_policies: dict[str, str] | None = None,
    ) -> None:
        """``aws_managed_policies``: AWS-managed policy name -> why that policy and not a narrower one."""
        super().__init__(scope, id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com").with_session_tags(),
            description=f"Pod Identity for {namespace}/{service_account}",
        )
        for name, reason in (aws_managed_policies or {}).items():
            self.role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(name))
            acknowledge(self.role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]", reason)
        for statement in statements or []:
            self.role.add_to_policy(statement)
        self.association = eks.CfnPodIdentityAssociation(
            self,
            "Association",
            cluster_name=cluster.cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=self.role.role_arn,
        )

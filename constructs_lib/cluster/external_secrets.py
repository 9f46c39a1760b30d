"""External Secrets Operator (Helm, pinned in config.cluster.helm) with a Pod Identity role that reads only
this environment's secrets: `{config.secret_prefix}/*` (EnvironmentConfig.secret_name builds every name)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.helm_addon import HelmAddon, install
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.pod_identity import PodIdentityRole
from k8s_charts import names

ADDON = HelmAddon(
    "external-secrets", "https://charts.external-secrets.io", names.EXTERNAL_SECRETS_NAMESPACE, True, "external_secrets"
)


def external_secrets(
    scope: Construct, *, cluster: eks.Cluster, config: EnvironmentConfig, nodegroups: list[eks.Nodegroup]
) -> eks.HelmChart:
    stack = Stack.of(scope)
    secrets_identity = PodIdentityRole(
        scope,
        "ExternalSecretsIdentity",
        cluster=cluster,
        namespace=names.EXTERNAL_SECRETS_NAMESPACE,
        service_account=names.EXTERNAL_SECRETS_SERVICE_ACCOUNT,
        statements=[
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name=f"{config.secret_prefix}/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        ],
    )
    acknowledge(
        secrets_identity.role,
        f"AwsSolutions-IAM5[Resource::arn:aws:secretsmanager:{stack.region}:{stack.account}:secret:{config.secret_prefix}/*]",
        "Reads only this environment's secrets (erp/{env}/*); their ARNs end in a random suffix.",
    )
    values = {
        "installCRDs": True,
        "replicaCount": 2 if config.production else 1,
        "serviceAccount": {"create": True, "name": names.EXTERNAL_SECRETS_SERVICE_ACCOUNT},
    }
    after = [secrets_identity, *nodegroups]
    return install(scope, "ExternalSecrets", ADDON, cluster=cluster, config=config, values=values, after=after)

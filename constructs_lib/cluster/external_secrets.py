"""External Secrets Operator (Helm, pinned in config.cluster.helm) with a Pod Identity role that reads exactly the
secrets the ExternalSecrets reference (k8s_charts/secrets.py): never the master DB secret, nor any other secret
under `{config.secret_prefix}/` (issue 18 item 17)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.helm_addon import HelmAddon, install
from constructs_lib.common.pod_identity import PodIdentityRole
from constructs_lib.data.database_users import db_user_name
from k8s_charts import names
from k8s_charts.images import EXTERNAL_SECRETS
from k8s_charts.placement import HelmDeployment

ADDON = HelmAddon(
    "external-secrets", "https://charts.external-secrets.io", names.EXTERNAL_SECRETS_NAMESPACE, True, "external_secrets"
)
# Its three Deployments and the values that size them (config/capacity.py counts them; the chart requests nothing).
PODS = (
    HelmDeployment("external-secrets", replicas="replicaCount", resources="resources"),
    HelmDeployment("external-secrets-webhook", replicas="webhook.replicaCount", resources="webhook.resources"),
    HelmDeployment(
        "external-secrets-cert-controller", replicas="certController.replicaCount", resources="certController.resources"
    ),
)


def pod_values(config: EnvironmentConfig) -> dict:
    """Replicas and requests of the controller, the webhook and the cert controller, set here so that the capacity
    check counts exactly what the pods ask for: a few ExternalSecrets refreshed hourly, a webhook on their writes."""
    small = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}
    return {
        "replicaCount": 2 if config.production else 1,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
        "webhook": {"resources": small},
        "certController": {"resources": small},
    }


def synced_secret_names(config: EnvironmentConfig) -> list[str]:
    """The Secrets Manager names the services' ExternalSecrets read (k8s_charts/secrets.py service_secret_data):
    MongoDB's URI, the cache AUTH token when the cache has one, and each `mysql` service's own user. Names, not
    ARNs from the Data stack: a policy with the Data stack's ARNs would keep a replaced secret's old ARN (weak
    references are re-read only when this template changes), while a name-based ARN follows the name.
    tests/infra/test_least_privilege.py checks this list against the rendered ExternalSecrets."""
    found = set()
    for service in config.services:
        if "mongodb" in service.uses:
            found.add(names.mongodb_secret_name(config))
        if "cache" in service.uses and not config.cache.allow_plaintext_clients:
            found.add(config.secret_name("cache"))
        if "mysql" in service.uses:
            found.add(config.secret_name("mysql", db_user_name(service.name)))
    return sorted(found)


def external_secrets(
    scope: Construct, *, cluster: eks.Cluster, config: EnvironmentConfig, nodegroups: list[eks.Nodegroup]
) -> eks.HelmChart:
    stack = Stack.of(scope)
    # Secrets Manager appends "-" and six random characters to a name: `??????` matches exactly those, so
    # `erp/dev/mysql/x-??????` is that one secret, and the master `erp/dev/mysql-??????` is never among them.
    secret_arns = [
        stack.format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{name}-??????",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        for name in synced_secret_names(config)
    ]
    secrets_identity = PodIdentityRole(
        scope,
        "ExternalSecretsIdentity",
        cluster=cluster,
        namespace=names.EXTERNAL_SECRETS_NAMESPACE,
        service_account=names.EXTERNAL_SECRETS_SERVICE_ACCOUNT,
        statements=[
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], resources=secret_arns
            )
        ]
        if secret_arns
        else [],
    )
    sizing = pod_values(config)
    values = {
        "installCRDs": True,
        **sizing,
        "serviceAccount": {"create": True, "name": names.EXTERNAL_SECRETS_SERVICE_ACCOUNT},
        # ghcr.io/external-secrets/external-secrets through the stage's pull-through cache, at the tag pinned (and
        # scan-gated) in k8s_charts/images.py; the webhook and the cert controller run the same image.
        **{
            key: {**sizing[key], "image": EXTERNAL_SECRETS.helm_values(config)} for key in ("webhook", "certController")
        },
        "image": EXTERNAL_SECRETS.helm_values(config),
    }
    after = [secrets_identity, *nodegroups]
    return install(scope, "ExternalSecrets", ADDON, cluster=cluster, config=config, values=values, after=after)

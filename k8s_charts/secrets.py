"""Secrets Manager -> Kubernetes Secrets through External Secrets: no credential ever appears in a manifest."""

from __future__ import annotations

from cdk8s import ApiObjectMetadata
from constructs import Construct

from config.models import EnvironmentConfig
from config.sections import ServiceConfig
from k8s_charts import names
from k8s_charts.common import custom_resource
from k8s_charts.values import PlatformValues

API_VERSION = "external-secrets.io/v1"
# Short enough that a rotated RDS password reaches new pods within minutes, cheap at Secrets Manager prices.
REFRESH_INTERVAL = "15m"
# Keys of the per-consumer MySQL secrets' JSON (same shape as the RDS-generated one).
RDS_USERNAME_FIELD = "username"
RDS_PASSWORD_FIELD = "password"  # pragma: allowlist secret


def service_secret_data(
    env: EnvironmentConfig, service: ServiceConfig, values: PlatformValues
) -> dict[str, tuple[str, str]]:
    """Kubernetes Secret key -> (secret ARN, JSON property): only the credentials the service's `uses` names."""
    data: dict[str, tuple[str, str]] = {}
    if "mongodb" in service.uses:
        data[names.MONGODB_URI_KEY] = (values.mongodb_secret_arn, names.MONGODB_SECRET_JSON_KEY)
    if "cache" in service.uses and not env.cache.allow_plaintext_clients:
        data[names.CACHE_AUTH_TOKEN_KEY] = (values.cache_secret_arn, names.CACHE_SECRET_JSON_KEY)
    if "mysql" in service.uses:
        arn = values.mysql_secret_arns.get(service.name)
        if arn is None:
            raise ValueError(
                f"services[{service.name}] uses mysql but PlatformValues.mysql_secret_arns has no entry for it "
                f"(its own user's secret {env.secret_name('mysql', service.name)})"
            )
        data[names.DB_USERNAME_KEY] = (arn, RDS_USERNAME_FIELD)
        data[names.DB_PASSWORD_KEY] = (arn, RDS_PASSWORD_FIELD)
    return data


class ExternalSecrets(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        custom_resource(
            self,
            "Store",
            api_version=API_VERSION,
            kind="ClusterSecretStore",
            metadata=ApiObjectMetadata(name=names.CLUSTER_SECRET_STORE),
            spec={
                # No auth block: the controller's own Pod Identity credentials are used.
                "provider": {"aws": {"service": "SecretsManager", "region": values.region}},
                # Cluster-scoped store, but only the erp namespace may read through it.
                "conditions": [{"namespaces": [env.namespace]}],
            },
        )
        for service in env.services:
            data = service_secret_data(env, service, values)
            if data:
                self._external_secret(service.name, env=env, name=names.service_secret(service.name), data=data)

    def _external_secret(self, id: str, *, env: EnvironmentConfig, name: str, data: dict[str, tuple[str, str]]) -> None:
        """data: Kubernetes Secret key -> (secret ARN, property of its JSON)."""
        custom_resource(
            self,
            id,
            api_version=API_VERSION,
            kind="ExternalSecret",
            metadata=ApiObjectMetadata(name=name, namespace=env.namespace),
            spec={
                "refreshInterval": REFRESH_INTERVAL,
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": names.CLUSTER_SECRET_STORE},
                "target": {"name": name, "creationPolicy": "Owner", "deletionPolicy": "Retain"},
                "data": [
                    {"secretKey": key, "remoteRef": {"key": arn, "property": prop}} for key, (arn, prop) in data.items()
                ],
            },
        )

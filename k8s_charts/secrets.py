"""Secrets Manager -> Kubernetes Secrets through External Secrets: no credential ever appears in a manifest."""

from __future__ import annotations

from cdk8s import ApiObjectMetadata
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import names
from k8s_charts.common import custom_resource
from k8s_charts.values import PlatformValues

API_VERSION = "external-secrets.io/v1"
# Short enough that a rotated RDS password reaches new pods within minutes, cheap at Secrets Manager prices.
REFRESH_INTERVAL = "15m"
# Keys of the RDS-generated secret's JSON.
RDS_USERNAME_FIELD = "username"
RDS_PASSWORD_FIELD = "password"  # pragma: allowlist secret


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
        self._external_secret(
            "Database",
            env=env,
            name=names.DB_SECRET,
            data={
                names.DB_USERNAME_KEY: (values.db_secret_arn, RDS_USERNAME_FIELD),
                names.DB_PASSWORD_KEY: (values.db_secret_arn, RDS_PASSWORD_FIELD),
            },
        )
        self._external_secret(
            "Cache",
            env=env,
            name=names.CACHE_SECRET,
            data={names.CACHE_AUTH_TOKEN_KEY: (values.cache_secret_arn, names.CACHE_SECRET_JSON_KEY)},
        )

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

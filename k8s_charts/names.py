"""Names the CDK side and the charts must agree on (Pod Identity associations, secrets, DNS): defined once, here."""

from __future__ import annotations

from typing import NamedTuple

from config.models import EnvironmentConfig


class ServiceAccountRef(NamedTuple):
    namespace: str
    name: str


def namespace(env: EnvironmentConfig) -> str:
    return env.namespace


def service_account(service_name: str) -> str:
    """Each microservice runs as a ServiceAccount of its own name, so any IAM role it is given is its own."""
    return service_name


# Fluent Bit lives outside the erp namespace: it needs hostPath and root, which `restricted` forbids.
LOGGING_NAMESPACE = "logging"
FLUENT_BIT = "fluent-bit"

# The ADOT collector that replaced the X-Ray daemon (k8s_charts/tracing.py): Deployment, ServiceAccount,
# ConfigMap and pod label share this name.
OTEL_COLLECTOR = "otel-collector"
# Its Service keeps the daemon's name and port, so the services' AWS_XRAY_DAEMON_ADDRESS did not change.
XRAY_SERVICE = "xray-daemon"
XRAY_PORT = 2000  # X-Ray segments (UDP) and the sampling proxy (TCP)
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318


def xray_address(env: EnvironmentConfig) -> str:
    return f"{XRAY_SERVICE}.{env.namespace}.svc.cluster.local:{XRAY_PORT}"


# Installed by the CDK side with Helm; the ClusterSecretStore authenticates with this SA's Pod Identity.
EXTERNAL_SECRETS_NAMESPACE = "external-secrets"  # pragma: allowlist secret (a name)
EXTERNAL_SECRETS_SERVICE_ACCOUNT = "external-secrets"  # pragma: allowlist secret (a name)
CLUSTER_SECRET_STORE = "aws-secrets-manager"  # pragma: allowlist secret (a name)


def service_secret(service_name: str) -> str:
    """The one Kubernetes Secret (and ExternalSecret) of a service: only the credentials its `uses` names."""
    return f"{service_name}-secrets"


# Keys inside a service's Secret.
DB_USERNAME_KEY = "mysql-username"
DB_PASSWORD_KEY = "mysql-password"  # pragma: allowlist secret (a name)
CACHE_AUTH_TOKEN_KEY = "cache-auth-token"
MONGODB_URI_KEY = "mongodb-uri"
# Key inside erp/{env}/mongodb's JSON (constructs_lib.data.mongodb.URI_KEY) and the placeholder it starts with.
MONGODB_SECRET_JSON_KEY = "uri"  # pragma: allowlist secret (a name)


def mongodb_secret_name(env: EnvironmentConfig) -> str:
    """Secrets Manager name of the MongoDB URI (created by the Data stack without a usable value)."""
    return env.secret_name("mongodb")


# Key inside the cache secret's JSON in Secrets Manager (constructs_lib.data.cache.AUTH_TOKEN_KEY).
CACHE_SECRET_JSON_KEY = "authToken"  # pragma: allowlist secret (a name)

KAFKA = "kafka"  # StatefulSet and client Service
KAFKA_HEADLESS = "kafka-headless"  # stable per-broker DNS for the quorum and advertised listeners
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093


def kafka_bootstrap(env: EnvironmentConfig) -> str:
    return f"{KAFKA}.{env.namespace}.svc.cluster.local:{KAFKA_PORT}"


# Kafka's health into CloudWatch (k8s_charts/kafka_metrics.py): Deployment, ServiceAccount, ConfigMap and pod label.
# The alarms (constructs_lib/observability/kafka_health.py) read the metrics at this namespace; the collector's
# awsemf exporter writes them as EMF events into this log group and stream (its Pod Identity may write only there).
KAFKA_METRICS = "kafka-metrics"
KAFKA_METRICS_LOG_STREAM = "kafka-metrics"


def kafka_metrics_namespace(env: EnvironmentConfig) -> str:
    return f"{env.project}/{env.name}/kafka"


def kafka_metrics_log_group(env: EnvironmentConfig) -> str:
    return f"/aws/otel/{env.cluster_name}/{KAFKA_METRICS}"


STORAGE_CLASS = "gp3-encrypted"

# The in-cluster employee API: a SigV4 proxy in front of the employee Lambda's IAM-only function URL.
# Named after the old service so the approval service's default-shaped URL works (context path /api).
EMPLOYEE_PROXY = "employee-service"
EMPLOYEE_PROXY_PORT = 8081


def employee_service_url(env: EnvironmentConfig) -> str:
    return f"http://{EMPLOYEE_PROXY}.{env.namespace}.svc.cluster.local:{EMPLOYEE_PROXY_PORT}/api"


def service_url(env: EnvironmentConfig, service_name: str, port: int) -> str:
    return f"http://{service_name}.{env.namespace}.svc.cluster.local:{port}"


# The one source of the data tier's ports (constructs_lib.data.database/cache use them): NetworkPolicy ports
# cannot be tokens, so they are fixed here rather than read from the database construct.
MYSQL_PORT = 3306
REDIS_PORT = 6379

# Node label of the apps node group(s) the microservices and the OTel collector are pinned to.
APPS_NODE_LABEL = ("workload", "apps")

# "namespace/name" of workloads allowed to run as root: Fluent Bit reads root-owned 0640 files under
# /var/log/pods. It still drops every capability and cannot escalate privileges.
ROOT_EXEMPT_WORKLOADS = frozenset({f"{LOGGING_NAMESPACE}/{FLUENT_BIT}"})


def pod_identity_service_accounts(env: EnvironmentConfig) -> dict[str, ServiceAccountRef]:
    """Every ServiceAccount of the platform, keyed by workload: the candidates for Pod Identity associations
    (the egress policies let only the OTel collector, kafka-metrics, the employee proxy and Fluent Bit reach AWS
    APIs)."""
    accounts = {s.name: ServiceAccountRef(env.namespace, service_account(s.name)) for s in env.services}
    accounts[OTEL_COLLECTOR] = ServiceAccountRef(env.namespace, OTEL_COLLECTOR)
    accounts[EMPLOYEE_PROXY] = ServiceAccountRef(env.namespace, EMPLOYEE_PROXY)
    accounts[KAFKA_METRICS] = ServiceAccountRef(env.namespace, KAFKA_METRICS)
    accounts[FLUENT_BIT] = ServiceAccountRef(LOGGING_NAMESPACE, FLUENT_BIT)
    accounts["external-secrets"] = ServiceAccountRef(EXTERNAL_SECRETS_NAMESPACE, EXTERNAL_SECRETS_SERVICE_ACCOUNT)
    return accounts

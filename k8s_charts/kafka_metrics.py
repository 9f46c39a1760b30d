"""Kafka's health into CloudWatch: kafka-exporter beside an ADOT collector, one Deployment (`kafka-metrics`).

kafka-exporter (danielqsj/kafka_exporter v1.9.0) reads the cluster metadata and the consumer groups' offsets over
the client port and serves them on localhost:9308. The collector's prometheus receiver scrapes it there, and scrapes
the kubelet of every node that runs a broker for the brokers' volume stats; its metrics_transform processor sums the
per-partition series into the few the alarms read, and its awsemf exporter writes them as EMF events into one log
group, from which CloudWatch extracts the metrics (namespace `<project>/<env>/kafka`). The alarms
(constructs_lib/observability/kafka_health.py) read exactly the names and dimensions `SERIES` declares.

What each signal is, from what kafka-exporter v1.9.0 offers (kafka_exporter.go):
  * consumer lag: `kafka_consumergroup_lag_sum` per group and topic (newest offset - committed offset, summed over
    partitions; emitted while the group has committed offsets, whether or not a consumer is connected, because
    `--offset.show-all` is on), summed over topics per group.
  * under-replicated partitions: `kafka_topic_partition_under_replicated_partition` (1 when the ISR is smaller than
    the replica set), summed.
  * offline partitions: the exporter emits `kafka_topic_partition_leader` only for a partition with a leader (sarama's
    Leader() fails for leader -1), and `kafka_topic_partitions` for every partition: offline = partitions - partitions
    with a leader (the alarm's metric math). The leader count uses metrics_transform's `count`, which leaves a lone
    data point's value as it is (aggregateutil.mergeNumberDataPoints counts from the second point on): with exactly
    one led partition it reads that leader's broker id, not 1. The topic filter therefore includes
    `__consumer_offsets` (50 partitions), so the total always exceeds any broker id and "offline > 0" holds.
  * brokers up (the "active controller" signal): kafka-exporter has no controller metric; `kafka_brokers` is the
    number of brokers in the metadata it refreshes every 30 s (in KRaft the live, unfenced brokers the active
    controller publishes; a broker the client cannot reach is dropped from its list). Fewer than `replicas` means a
    broker is down or fenced; no data at all means the exporter, the collector or the whole cluster is down.
  * volume used: the kubelet's `kubelet_volume_stats_used_bytes` / `_capacity_bytes` of the `data-kafka-<n>` claims.

Kubelet scrape, least privilege: the collector discovers the Kafka pods (a Role: list/watch pods in this namespace
only) and scrapes `https://<pod's hostIP>:10250/metrics` directly, with its service account token and the cluster
CA (EKS issues kubelet serving certificates through the kubernetes.io/kubelet-serving signer, with the node IP as
a SAN). The kubelet authorises `/metrics` as `nodes/metrics` (get): that is the ClusterRole's only rule. Not the
API server's node proxy (`nodes/proxy`): that subresource also reaches the kubelet's exec and log endpoints. Only
the collector container mounts the token; kafka-exporter gets none.

The collector is the tracing collector's image (k8s_charts/images.ADOT_COLLECTOR) with its own config: every key
and switched-on value of that config is the pinned release's (k8s_charts/contracts/aws-otel-collector.yaml, section
collector_config.configs.kafka_metrics, checked by tests/charts/test_kafka_metrics.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdk8s_plus_27 import k8s
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import common, names, tracing
from k8s_charts.images import ADOT_COLLECTOR, KAFKA_EXPORTER, image_uri
from k8s_charts.values import PlatformValues

COMPONENT = "monitoring"
EXPORTER_PORT = 9308  # kafka-exporter's web.listen-address default
KUBELET_PORT = 10250
EXPORTER_UID = 65534  # `nobody` of the image's busybox base (Dockerfile: USER nobody)
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # where client-go's in-cluster config reads it
EXPORTER_SCRAPE = "30s"  # two lag points a minute: the lag alarm reads each minute's minimum
KUBELET_SCRAPE = "60s"
# The StatefulSet's volumeClaimTemplate (k8s_charts/kafka.py): claims are `data-kafka-<ordinal>`.
DATA_CLAIM = "data"
# Dimension names: the exporter's and the kubelet's own label names, kept through the collector.
GROUP_DIMENSION = "consumergroup"
CLAIM_DIMENSION = "persistentvolumeclaim"


@dataclass(frozen=True)
class Series:
    """One metric as scraped, and as it reaches CloudWatch: renamed, its other labels aggregated away."""

    scraped: str
    name: str
    dimensions: tuple[str, ...]
    aggregation: str  # metrics_transform aggregate_labels aggregation_type
    source: str  # "exporter" or "kubelet"


BROKERS = Series("kafka_brokers", "kafka_brokers", (), "max", "exporter")
PARTITIONS = Series("kafka_topic_partitions", "kafka_partitions", (), "sum", "exporter")
LED_PARTITIONS = Series("kafka_topic_partition_leader", "kafka_partitions_with_leader", (), "count", "exporter")
UNDER_REPLICATED = Series(
    "kafka_topic_partition_under_replicated_partition", "kafka_under_replicated_partitions", (), "sum", "exporter"
)
LAG = Series("kafka_consumergroup_lag_sum", "kafka_consumergroup_lag_sum", (GROUP_DIMENSION,), "sum", "exporter")
VOLUME_USED = Series(
    "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_used_bytes", (CLAIM_DIMENSION,), "max", "kubelet"
)
VOLUME_CAPACITY = Series(
    "kubelet_volume_stats_capacity_bytes", "kubelet_volume_stats_capacity_bytes", (CLAIM_DIMENSION,), "max", "kubelet"
)
SERIES = (BROKERS, PARTITIONS, LED_PARTITIONS, UNDER_REPLICATED, LAG, VOLUME_USED, VOLUME_CAPACITY)


def emitted_metric_count(env: EnvironmentConfig) -> int:
    """CloudWatch custom metrics the collector creates: one per series and dimension value (what `make cost` bills)."""
    values = {
        (): 1,
        (GROUP_DIMENSION,): len(env.observability.kafka.consumer_groups),
        (CLAIM_DIMENSION,): env.kafka.replicas,
    }
    return sum(values[series.dimensions] for series in SERIES)


def quote(value: str) -> str:
    """Go's regexp.QuoteMeta: its metacharacters escaped (Python's re.escape also escapes `-`)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)


def exact(values: list[str]) -> str:
    """A Go regexp matching exactly these names (kafka-exporter's filters are unanchored MatchString)."""
    return "^(" + "|".join(quote(v) for v in values) + ")$"


def watched_topics(env: EnvironmentConfig) -> list[str]:
    """The configured topics, and __consumer_offsets: its partitions hold the groups' commits (and see LED_PARTITIONS)."""
    return [t.name for t in env.kafka.topics] + ["__consumer_offsets"]


def data_claims(env: EnvironmentConfig) -> list[str]:
    return [f"{DATA_CLAIM}-{names.KAFKA}-{ordinal}" for ordinal in range(env.kafka.replicas)]


def exporter_args(env: EnvironmentConfig) -> list[str]:
    return [
        f"--kafka.server={names.kafka_bootstrap(env)}",
        f"--topic.filter={exact(watched_topics(env))}",
        f"--group.filter={exact(env.observability.kafka.consumer_groups)}",
        f"--web.listen-address=:{EXPORTER_PORT}",
        # The default, stated: lag of every group with commits, not only of groups with a consumer connected (a
        # stopped consumer is exactly when its lag matters).
        "--offset.show-all",
    ]


def _keep(names_: list[str]) -> dict:
    return {"source_labels": ["__name__"], "regex": "|".join(names_), "action": "keep"}


def scrape_configs(env: EnvironmentConfig) -> list[dict]:
    """Only the series the alarms need are kept, at scrape (metric_relabel_configs), before any conversion."""
    exporter = [s.scraped for s in SERIES if s.source == "exporter"]
    kubelet = [s.scraped for s in SERIES if s.source == "kubelet"]
    claims = "|".join(quote(c) for c in data_claims(env))
    return [
        {
            "job_name": "kafka-exporter",
            "scrape_interval": EXPORTER_SCRAPE,
            "static_configs": [{"targets": [f"127.0.0.1:{EXPORTER_PORT}"]}],
            "metric_relabel_configs": [_keep(exporter)],
        },
        {
            "job_name": "kafka-volumes",
            "scrape_interval": KUBELET_SCRAPE,
            "scheme": "https",
            "authorization": {"credentials_file": f"{TOKEN_DIR}/token"},
            "tls_config": {"ca_file": f"{TOKEN_DIR}/ca.crt"},
            "kubernetes_sd_configs": [
                {
                    "role": "pod",
                    "namespaces": {"names": [env.namespace]},
                    "selectors": [{"role": "pod", "label": f"{common.NAME_LABEL}={names.KAFKA}"}],
                }
            ],
            "relabel_configs": [
                # One target per broker pod (its client port), and only once it runs on a node.
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "client", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_host_ip"], "regex": ".+", "action": "keep"},
                # `$$` is a literal `$` after the collector's ${...} expansion: the node's kubelet.
                {
                    "source_labels": ["__meta_kubernetes_pod_host_ip"],
                    "regex": "(.+)",
                    "target_label": "__address__",
                    "replacement": f"$$1:{KUBELET_PORT}",
                },
            ],
            "metric_relabel_configs": [
                {
                    "source_labels": ["__name__", "namespace", CLAIM_DIMENSION],
                    "regex": f"({'|'.join(kubelet)});{quote(env.namespace)};({claims})",
                    "action": "keep",
                }
            ],
        },
    ]


def transforms() -> list[dict]:
    """Each series renamed to its CloudWatch name, every label but its dimensions aggregated away."""
    found = []
    for series in SERIES:
        transform: dict = {"include": series.scraped, "match_type": "strict", "action": "update"}
        if series.name != series.scraped:
            transform["new_name"] = series.name
        transform["operations"] = [
            {
                "action": "aggregate_labels",
                "label_set": list(series.dimensions),
                "aggregation_type": series.aggregation,
            }
        ]
        found.append(transform)
    return found


def metric_declarations() -> list[dict]:
    """One declaration per dimension set; only declared names become CloudWatch metrics (the rest: log only)."""
    by_dimensions: dict[tuple[str, ...], list[str]] = {}
    for series in SERIES:
        by_dimensions.setdefault(series.dimensions, []).append(series.name)
    return [
        {"dimensions": [list(dimensions)], "metric_name_selectors": [f"^{quote(n)}$" for n in metric_names]}
        for dimensions, metric_names in by_dimensions.items()
    ]


def collector_config(env: EnvironmentConfig) -> dict:
    return {
        "extensions": {"health_check": {"endpoint": tracing.listen(tracing.HEALTH_CHECK_PORT)}},
        "receivers": {"prometheus": {"config": {"scrape_configs": scrape_configs(env)}}},
        "processors": {"metrics_transform": {"transforms": transforms()}},
        "exporters": {
            "awsemf": {
                "region": "${env:AWS_REGION}",
                "namespace": names.kafka_metrics_namespace(env),
                # Created by the Observability stack with the environment's retention; the role may write only here.
                "log_group_name": names.kafka_metrics_log_group(env),
                "log_stream_name": names.KAFKA_METRICS_LOG_STREAM,
                # Exactly the declared dimension sets: no rolled-up copies (each would be another custom metric).
                "dimension_rollup_option": "NoDimensionRollup",
                "metric_declarations": metric_declarations(),
            }
        },
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "metrics": {"receivers": ["prometheus"], "processors": ["metrics_transform"], "exporters": ["awsemf"]}
            },
        },
    }


def _rbac(scope: Construct, env: EnvironmentConfig, labels: dict[str, str]) -> None:
    """Discover the Kafka pods (this namespace only) and read the kubelets' /metrics: nothing else."""
    ns, name = env.namespace, names.KAFKA_METRICS
    subject = [k8s.Subject(kind="ServiceAccount", name=name, namespace=ns)]
    k8s.KubeRole(
        scope,
        "PodReader",
        metadata=common.meta(f"{name}-pods", ns, labels=labels),
        rules=[k8s.PolicyRule(api_groups=[""], resources=["pods"], verbs=["list", "watch"])],
    )
    k8s.KubeRoleBinding(
        scope,
        "PodReaderBinding",
        metadata=common.meta(f"{name}-pods", ns, labels=labels),
        role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=f"{name}-pods"),
        subjects=subject,
    )
    cluster_role = f"{ns}-{name}-kubelet"
    k8s.KubeClusterRole(
        scope,
        "KubeletMetrics",
        metadata=common.meta(cluster_role, labels=labels),
        rules=[k8s.PolicyRule(api_groups=[""], resources=["nodes/metrics"], verbs=["get"])],
    )
    k8s.KubeClusterRoleBinding(
        scope,
        "KubeletMetricsBinding",
        metadata=common.meta(cluster_role, labels=labels),
        role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=cluster_role),
        subjects=subject,
    )


def _token_volume() -> k8s.Volume:
    """What automounting would give every container, for the collector alone: a bound token, the CA, the namespace."""
    return k8s.Volume(
        name="api-token",
        projected=k8s.ProjectedVolumeSource(
            sources=[
                k8s.VolumeProjection(
                    service_account_token=k8s.ServiceAccountTokenProjection(path="token", expiration_seconds=3600)
                ),
                k8s.VolumeProjection(
                    config_map=k8s.ConfigMapProjection(
                        name="kube-root-ca.crt", items=[k8s.KeyToPath(key="ca.crt", path="ca.crt")]
                    )
                ),
                k8s.VolumeProjection(
                    downward_api=k8s.DownwardApiProjection(
                        items=[
                            k8s.DownwardApiVolumeFile(
                                path="namespace", field_ref=k8s.ObjectFieldSelector(field_path="metadata.namespace")
                            )
                        ]
                    )
                ),
            ]
        ),
    )


class KafkaMetrics(Construct):
    """ServiceAccount (Pod Identity: the one log group), RBAC, ConfigMap and the one-replica Deployment."""

    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        ns, name = env.namespace, names.KAFKA_METRICS
        labels = common.pod_labels(name, COMPONENT)

        k8s.KubeServiceAccount(
            self, "ServiceAccount", metadata=common.meta(name, ns, labels=labels), automount_service_account_token=False
        )
        _rbac(self, env, labels)
        text = tracing.render_config(collector_config(env))
        k8s.KubeConfigMap(
            self, "Config", metadata=common.meta(name, ns, labels=labels), data={tracing.CONFIG_FILE: text}
        )

        exporter_check = k8s.HttpGetAction(path="/healthz", port=common.int_or_string(EXPORTER_PORT))
        exporter = k8s.Container(
            name="kafka-exporter",
            image=image_uri(KAFKA_EXPORTER, env, values.registry_host),
            image_pull_policy="IfNotPresent",
            args=exporter_args(env),
            resources=common.resources(
                cpu_request="20m", cpu_limit="200m", memory_request="64Mi", memory_limit="128Mi"
            ),
            # It exits when Kafka is unreachable at start; /healthz answers once it serves.
            readiness_probe=k8s.Probe(http_get=exporter_check, period_seconds=10, failure_threshold=3),
            liveness_probe=k8s.Probe(http_get=exporter_check, period_seconds=20, failure_threshold=3),
            security_context=k8s.SecurityContext(
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                run_as_non_root=True,
                run_as_user=EXPORTER_UID,
                run_as_group=EXPORTER_UID,
                capabilities=k8s.Capabilities(drop=["ALL"]),
            ),
        )
        collector = k8s.Container(
            name="collector",
            image=image_uri(ADOT_COLLECTOR, env, values.registry_host),
            image_pull_policy="IfNotPresent",
            args=tracing.config_args(),
            env=[common.env_var("AWS_REGION", values.region)],
            resources=common.resources(
                cpu_request="50m", cpu_limit="500m", memory_request="128Mi", memory_limit="256Mi"
            ),
            **tracing.health_probes(),
            security_context=common.restricted_container_security(),
            volume_mounts=[
                k8s.VolumeMount(name="config", mount_path=tracing.CONFIG_DIR, read_only=True),
                k8s.VolumeMount(name="api-token", mount_path=TOKEN_DIR, read_only=True),
            ],
        )
        selector = common.selector_labels(name)
        k8s.KubeDeployment(
            self,
            "Deployment",
            metadata=common.meta(name, ns, labels=labels),
            spec=k8s.DeploymentSpec(
                # One: a second would write every data point twice into the same log stream.
                replicas=1,
                selector=k8s.LabelSelector(match_labels=selector),
                strategy=common.surge_first(),
                template=k8s.PodTemplateSpec(
                    # The collector reads its config once: a changed config rolls the pod.
                    metadata=k8s.ObjectMeta(
                        labels=labels,
                        annotations=common.config_hash(text),
                    ),
                    spec=k8s.PodSpec(
                        service_account_name=name,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=common.restricted_pod_security(uid=tracing.ADOT_UID),
                        node_selector=common.apps_node_selector(env),
                        containers=[exporter, collector],
                        volumes=[
                            k8s.Volume(name="config", config_map=k8s.ConfigMapVolumeSource(name=name)),
                            _token_volume(),
                        ],
                    ),
                ),
            ),
        )

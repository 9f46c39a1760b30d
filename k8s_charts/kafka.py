"""Kafka in KRaft mode (combined broker+controller) as a StatefulSet on encrypted gp3 volumes, plus its topics.

The apache/kafka image turns every ``KAFKA_*`` variable into a server.properties line (``.`` -> ``_``),
formats the log directory with ``CLUSTER_ID`` on first start, and writes its final config to
/opt/kafka/config; node.id and the advertised listener depend on the pod, so a two-line wrapper derives
them from the StatefulSet ordinal in the hostname before exec'ing the image's own entrypoint.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import uuid

from cdk8s import ApiObject, ApiObjectMetadata, JsonPatch
from cdk8s_plus_27 import Pods, Service, ServicePort, k8s
from constructs import Construct

from config.models import EnvironmentConfig
from config.sections import KAFKA_SEGMENT_BYTES, KafkaTopic
from k8s_charts import names
from k8s_charts.common import (
    apps_node_selector,
    env_var,
    int_or_string,
    meta,
    node_group,
    pod_labels,
    quantity,
    resources,
    restricted_container_security,
    restricted_pod_security,
    scratch_volume,
    selector_labels,
)
from k8s_charts.images import KAFKA, image_uri

KAFKA_UID = 1000  # the image's `appuser`
DATA_DIR = "/var/lib/kafka/data"
# A subdirectory: Kafka refuses to start on a volume root holding ext4's lost+found.
LOG_DIRS = f"{DATA_DIR}/logs"
# Not in config (KafkaConfig has no cpu_limit): one core bounds a noisy broker without starving the JVM.
CPU_LIMIT = "1"
TOPICS_JOB = "kafka-topics"


def replication_factor(replicas: int) -> int:
    return min(3, replicas)


def min_insync_replicas(replicas: int) -> int:
    return 2 if replicas >= 3 else 1


def cluster_id(env: EnvironmentConfig) -> str:
    """Stable per environment (re-formatting with a new id would orphan the data): a base64url UUID."""
    digest = uuid.uuid5(uuid.NAMESPACE_DNS, f"kafka.{env.cluster_name}.{env.account}").bytes
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def headless_domain(env: EnvironmentConfig) -> str:
    return f"{names.KAFKA_HEADLESS}.{env.namespace}.svc.cluster.local"


def broker_host(env: EnvironmentConfig, ordinal: int) -> str:
    return f"{names.KAFKA}-{ordinal}.{headless_domain(env)}"


def quorum_voters(env: EnvironmentConfig) -> str:
    return ",".join(f"{i}@{broker_host(env, i)}:{names.KAFKA_CONTROLLER_PORT}" for i in range(env.kafka.replicas))


def broker_env(env: EnvironmentConfig) -> list[k8s.EnvVar]:
    replicas = env.kafka.replicas
    rf, isr = str(replication_factor(replicas)), str(min_insync_replicas(replicas))
    settings = {
        "CLUSTER_ID": cluster_id(env),
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": quorum_voters(env),
        "KAFKA_LISTENERS": f"PLAINTEXT://:{names.KAFKA_PORT},CONTROLLER://:{names.KAFKA_CONTROLLER_PORT}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_LOG_DIRS": LOG_DIRS,
        "KAFKA_DEFAULT_REPLICATION_FACTOR": rf,
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": rf,
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": rf,
        "KAFKA_MIN_INSYNC_REPLICAS": isr,
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": isr,
        # Topics come from config through the topics Job, never from a typo in a producer.
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        # Heap from the container limit, leaving the rest to the page cache Kafka lives on.
        "KAFKA_HEAP_OPTS": "-XX:InitialRAMPercentage=50.0 -XX:MaxRAMPercentage=50.0",
    }
    return [env_var(key, value) for key, value in settings.items()]


def start_command(env: EnvironmentConfig) -> list[str]:
    """The pod's hostname is `kafka-<ordinal>`: the ordinal is its node.id, the hostname its broker address."""
    script = (
        'export KAFKA_NODE_ID="${HOSTNAME##*-}"\n'
        f'export KAFKA_ADVERTISED_LISTENERS="PLAINTEXT://${{HOSTNAME}}.{headless_domain(env)}:{names.KAFKA_PORT}"\n'
        "exec /etc/kafka/docker/run\n"
    )
    return ["bash", "-c", script]


# Read by the cluster autoscaler (k8s_charts/contracts/cluster-autoscaler.yaml pod_annotations).
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def kafka_scheduling(env: EnvironmentConfig) -> dict:
    """nodeSelector/tolerations for the kafka node group; one broker per node and per zone when clustered."""
    group = node_group(env, env.cluster.kafka_node_group)
    tolerations = [
        k8s.Toleration(key=taint.key, operator="Equal", value=taint.value, effect=taint.effect)
        for taint in group.taints
    ]
    scheduling: dict = {"node_selector": dict(group.labels) or None, "tolerations": tolerations or None}
    if env.kafka.replicas > 1:
        selector = k8s.LabelSelector(match_labels=selector_labels(names.KAFKA))
        scheduling["affinity"] = k8s.Affinity(
            pod_anti_affinity=k8s.PodAntiAffinity(
                required_during_scheduling_ignored_during_execution=[
                    k8s.PodAffinityTerm(topology_key="kubernetes.io/hostname", label_selector=selector)
                ]
            )
        )
        scheduling["topology_spread_constraints"] = [
            k8s.TopologySpreadConstraint(
                max_skew=1,
                topology_key="topology.kubernetes.io/zone",
                # Hard, and counting every zone even before it has a node: a broker waits for a node in its own
                # zone rather than doubling up in another (its volume would pin it there for good).
                when_unsatisfiable="DoNotSchedule",
                min_domains=env.network.az_count,
                label_selector=selector,
            )
        ]
    return scheduling


class KafkaCluster(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, registry_host: str | None = None) -> None:
        super().__init__(scope, id)
        ns, kafka = env.namespace, env.kafka
        labels = pod_labels(names.KAFKA, "broker")
        selector = selector_labels(names.KAFKA)

        headless = Service(
            self,
            "Headless",
            metadata=ApiObjectMetadata(name=names.KAFKA_HEADLESS, namespace=ns, labels=labels),
            cluster_ip="None",
            selector=Pods.select(self, "Pods", labels=selector),
            ports=[
                ServicePort(name="client", port=names.KAFKA_PORT, target_port=names.KAFKA_PORT),
                ServicePort(
                    name="controller", port=names.KAFKA_CONTROLLER_PORT, target_port=names.KAFKA_CONTROLLER_PORT
                ),
            ],
        )
        # Brokers must resolve each other before any is ready, or the quorum never forms.
        ApiObject.of(headless).add_json_patch(JsonPatch.add("/spec/publishNotReadyAddresses", True))
        Service(
            self,
            "Client",
            metadata=ApiObjectMetadata(name=names.KAFKA, namespace=ns, labels=labels),
            selector=Pods.select(self, "ClientPods", labels=selector),
            ports=[ServicePort(name="client", port=names.KAFKA_PORT, target_port=names.KAFKA_PORT)],
        )

        port_probe = k8s.TcpSocketAction(port=int_or_string(names.KAFKA_PORT))
        container = k8s.Container(
            name="kafka",
            image=image_uri(KAFKA, env, registry_host),
            image_pull_policy="IfNotPresent",
            command=start_command(env),
            ports=[
                k8s.ContainerPort(name="client", container_port=names.KAFKA_PORT),
                k8s.ContainerPort(name="controller", container_port=names.KAFKA_CONTROLLER_PORT),
            ],
            env=broker_env(env),
            resources=resources(
                cpu_request=kafka.cpu_request,
                cpu_limit=CPU_LIMIT,
                memory_request=kafka.memory_request,
                memory_limit=kafka.memory_limit,
            ),
            # Formatting storage and (in a cluster) electing a controller precede the client listener.
            startup_probe=k8s.Probe(tcp_socket=port_probe, period_seconds=10, failure_threshold=30),
            readiness_probe=k8s.Probe(tcp_socket=port_probe, period_seconds=10, failure_threshold=3),
            liveness_probe=k8s.Probe(tcp_socket=port_probe, period_seconds=20, failure_threshold=6),
            security_context=restricted_container_security(),
            volume_mounts=[
                k8s.VolumeMount(name="data", mount_path=DATA_DIR),
                # The image renders server.properties and log4j files here at every start.
                k8s.VolumeMount(name="config", mount_path="/opt/kafka/config"),
                k8s.VolumeMount(name="logs", mount_path="/opt/kafka/logs"),
                k8s.VolumeMount(name="tmp", mount_path="/tmp"),
            ],
        )
        k8s.KubeStatefulSet(
            self,
            "StatefulSet",
            metadata=meta(names.KAFKA, ns, labels=labels),
            spec=k8s.StatefulSetSpec(
                service_name=names.KAFKA_HEADLESS,
                replicas=kafka.replicas,
                # All brokers at once: with OrderedReady, broker 0 waits for a quorum that cannot exist yet.
                pod_management_policy="Parallel",
                selector=k8s.LabelSelector(match_labels=selector),
                persistent_volume_claim_retention_policy=k8s.StatefulSetPersistentVolumeClaimRetentionPolicy(
                    when_deleted="Retain", when_scaled="Retain"
                ),
                volume_claim_templates=[
                    k8s.KubePersistentVolumeClaimProps(
                        metadata=k8s.ObjectMeta(name="data", labels=selector),
                        spec=k8s.PersistentVolumeClaimSpec(
                            access_modes=["ReadWriteOnce"],
                            storage_class_name=names.STORAGE_CLASS,
                            resources=k8s.ResourceRequirements(
                                requests={"storage": quantity(f"{kafka.template_storage_gib}Gi")}
                            ),
                        ),
                    )
                ],
                template=k8s.PodTemplateSpec(
                    # The cluster autoscaler never removes a broker's node to save money (dev's one broker would
                    # go down); drains for upgrades still evict it within its budget.
                    metadata=k8s.ObjectMeta(labels=labels, annotations={SAFE_TO_EVICT: "false"}),
                    spec=k8s.PodSpec(
                        automount_service_account_token=False,
                        # A Service named `kafka` would inject KAFKA_PORT & co., which the image renders as config.
                        enable_service_links=False,
                        security_context=restricted_pod_security(uid=KAFKA_UID, fs_group=KAFKA_UID),
                        termination_grace_period_seconds=120,
                        containers=[container],
                        volumes=[
                            scratch_volume("config", "16Mi"),
                            scratch_volume("logs", "1Gi"),
                            scratch_volume("tmp"),
                        ],
                        **kafka_scheduling(env),
                    ),
                ),
            ),
        )

        k8s.KubePodDisruptionBudget(
            self,
            "DisruptionBudget",
            metadata=meta(names.KAFKA, ns, labels=labels),
            spec=k8s.PodDisruptionBudgetSpec(
                max_unavailable=int_or_string(1), selector=k8s.LabelSelector(match_labels=selector)
            ),
        )


def topic_configs(env: EnvironmentConfig, topic: KafkaTopic) -> dict[str, int]:
    """Set on create and again on every run: retention by time, and by size so the partitions of every topic
    on a broker fit its volume (KafkaConfig.retention_bytes; a partition holds up to retention.bytes plus one
    segment.bytes segment before the oldest is deleted)."""
    return {
        "retention.ms": topic.retention_hours * 3_600_000,
        "retention.bytes": env.kafka.retention_bytes(topic),
        "segment.bytes": KAFKA_SEGMENT_BYTES,
    }


def topics_script(env: EnvironmentConfig) -> str:
    """Wait (bounded) for Kafka, then create each configured topic; re-running it changes nothing."""
    bootstrap = shlex.quote(names.kafka_bootstrap(env))
    rf = replication_factor(env.kafka.replicas)
    lines = [
        "set -eu",
        "printf 'request.timeout.ms=10000\\ndefault.api.timeout.ms=15000\\n' > /tmp/admin.properties",
        "topics() { /opt/kafka/bin/kafka-topics.sh --bootstrap-server "
        f'{bootstrap} --command-config /tmp/admin.properties "$@"; }}',
        "attempt=1",
        "until topics --list > /dev/null; do",
        '  if [ "$attempt" -ge 40 ]; then echo "Kafka unreachable after $attempt attempts" >&2; exit 1; fi',
        "  attempt=$((attempt + 1)); sleep 10",
        "done",
    ]
    for topic in env.kafka.topics:
        name = shlex.quote(topic.name)
        configs = topic_configs(env, topic)
        lines += [
            f"topics --create --if-not-exists --topic {name} --partitions {topic.partitions}"
            f" --replication-factor {rf} " + " ".join(f"--config {key}={value}" for key, value in configs.items()),
            # An existing topic keeps its settings on --if-not-exists: grow its partitions (they never shrink)
            # and apply the configured retention (time and size) and segment size anyway.
            f"current=$(topics --describe --topic {name} | sed -n 's/.*PartitionCount: *\\([0-9]*\\).*/\\1/p' | head -n 1)",
            f'if [ "${{current:-0}}" -lt {topic.partitions} ]; then'
            f" topics --alter --topic {name} --partitions {topic.partitions}; fi",
            "/opt/kafka/bin/kafka-configs.sh --bootstrap-server "
            f"{bootstrap} --command-config /tmp/admin.properties --alter --entity-type topics"
            f" --entity-name {name} --add-config " + ",".join(f"{key}={value}" for key, value in configs.items()),
        ]
    return "\n".join(lines) + "\n"


class KafkaTopics(Construct):
    """A Job named after its script's hash: Jobs are immutable, so a changed topic list gets a new Job."""

    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, registry_host: str | None = None) -> None:
        super().__init__(scope, id)
        script = topics_script(env)
        name = f"{TOPICS_JOB}-{hashlib.sha256(script.encode()).hexdigest()[:8]}"
        labels = pod_labels(TOPICS_JOB, "kafka-setup")
        k8s.KubeJob(
            self,
            "Job",
            metadata=meta(name, env.namespace, labels=labels),
            spec=k8s.JobSpec(
                backoff_limit=4,
                active_deadline_seconds=1800,
                ttl_seconds_after_finished=3600,
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=labels),
                    spec=k8s.PodSpec(
                        restart_policy="Never",
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=restricted_pod_security(uid=KAFKA_UID),
                        node_selector=apps_node_selector(env),
                        containers=[
                            k8s.Container(
                                name="create-topics",
                                image=image_uri(KAFKA, env, registry_host),
                                image_pull_policy="IfNotPresent",
                                command=["bash", "-c", script],
                                # kafka-run-class.sh creates $LOG_DIR; the root filesystem is read-only.
                                env=[env_var("LOG_DIR", "/tmp/logs")],
                                resources=resources(
                                    cpu_request="100m", cpu_limit="500m", memory_request="384Mi", memory_limit="512Mi"
                                ),
                                security_context=restricted_container_security(),
                                volume_mounts=[k8s.VolumeMount(name="tmp", mount_path="/tmp")],
                            )
                        ],
                        volumes=[scratch_volume("tmp")],
                    ),
                ),
            ),
        )

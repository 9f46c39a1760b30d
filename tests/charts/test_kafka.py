"""Kafka: KRaft (never ZooKeeper), on retained encrypted volumes, sized by config for dev (1) and prod (3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from k8s_charts import names
from k8s_charts.images import KAFKA, image_uri
from k8s_charts.kafka import cluster_id, min_insync_replicas, replication_factor
from tests.support.charts import find, selector_matches

from .conftest import build

CONTRACTS = Path(__file__).resolve().parents[2] / "k8s_charts" / "contracts"


def kafka_env(built) -> dict[str, str]:
    statefulset = find(built.chart("kafka"), "StatefulSet", names.KAFKA)[0]
    return {e["name"]: e["value"] for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_expected_sizes_per_environment():
    assert build("dev").env.kafka.replicas == 1 and build("prod").env.kafka.replicas == 3
    assert [(replication_factor(n), min_insync_replicas(n)) for n in (1, 3, 5)] == [(1, 1), (3, 2), (3, 2)]


def test_no_zookeeper_anywhere(built):
    assert "zookeeper" not in json.dumps(built.everything).lower()


def test_kraft_combined_mode_with_a_voter_per_replica(built):
    replicas = built.env.kafka.replicas
    env = kafka_env(built)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == replicas
    domain = f"{names.KAFKA_HEADLESS}.{built.env.namespace}.svc.cluster.local"
    assert voters == [f"{i}@{names.KAFKA}-{i}.{domain}:{names.KAFKA_CONTROLLER_PORT}" for i in range(replicas)]
    assert env["CLUSTER_ID"] == cluster_id(built.env) and re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])


def test_replication_settings_follow_the_replica_count(built):
    replicas = built.env.kafka.replicas
    env = kafka_env(built)
    rf = str(min(3, replicas))
    for key in (
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert env[key] == rf, key
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == ("2" if replicas >= 3 else "1")
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == env["KAFKA_MIN_INSYNC_REPLICAS"]


def test_node_id_and_advertised_listener_come_from_the_pod_ordinal(built):
    statefulset = find(built.chart("kafka"), "StatefulSet", names.KAFKA)[0]
    script = statefulset["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert 'KAFKA_NODE_ID="${HOSTNAME##*-}"' in script
    assert f"PLAINTEXT://${{HOSTNAME}}.{names.KAFKA_HEADLESS}.{built.env.namespace}.svc.cluster.local:9092" in script
    assert script.rstrip().endswith("exec /etc/kafka/docker/run")
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == image_uri(KAFKA, built.env)


def test_statefulset_on_retained_encrypted_volumes(built):
    statefulset = find(built.chart("kafka"), "StatefulSet", names.KAFKA)[0]
    spec = statefulset["spec"]
    assert spec["replicas"] == built.env.kafka.replicas
    assert spec["serviceName"] == names.KAFKA_HEADLESS
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == names.STORAGE_CLASS
    assert claim["spec"]["resources"]["requests"]["storage"] == f"{built.env.kafka.storage_gib}Gi"
    mounts = {m["name"]: m["mountPath"] for m in spec["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert kafka_env(built)["KAFKA_LOG_DIRS"].startswith(mounts[claim["metadata"]["name"]] + "/")
    (storage_class,) = find(build(built.env.name).chart("storage"), "StorageClass", names.STORAGE_CLASS)
    assert storage_class["parameters"]["encrypted"] == "true"


def test_services_headless_for_the_quorum_and_a_client_service(built):
    headless = find(built.chart("kafka"), "Service", names.KAFKA_HEADLESS)[0]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["ports"]} == {names.KAFKA_PORT, names.KAFKA_CONTROLLER_PORT}
    client = find(built.chart("kafka"), "Service", names.KAFKA)[0]["spec"]
    assert [p["port"] for p in client["ports"]] == [names.KAFKA_PORT]
    pod_labels = find(built.chart("kafka"), "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    assert selector_matches({"matchLabels": headless["selector"]}, pod_labels)
    assert selector_matches({"matchLabels": client["selector"]}, pod_labels)


def test_pdb_allows_one_broker_down(built):
    pdb = find(built.chart("kafka"), "PodDisruptionBudget", names.KAFKA)[0]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_scheduling_follows_the_kafka_node_group(built):
    group = next(g for g in built.env.cluster.node_groups if g.name == built.env.cluster.kafka_node_group)
    pod = find(built.chart("kafka"), "StatefulSet")[0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == group.labels
    assert pod.get("tolerations", []) == [
        {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect} for t in group.taints
    ]
    clustered = built.env.kafka.replicas > 1
    assert ("affinity" in pod) == clustered
    assert ("topologySpreadConstraints" in pod) == clustered


def test_prod_brokers_get_dedicated_tainted_nodes_one_per_host():
    pod = find(build("prod").chart("kafka"), "StatefulSet")[0]["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}]
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_runs_as_the_images_appuser(built):
    pod = find(built.chart("kafka"), "StatefulSet")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["fsGroup"] == 1000
    # A Service named kafka would otherwise inject KAFKA_PORT=tcp://..., rendered into server.properties.
    assert pod["enableServiceLinks"] is False


def test_topic_job_is_idempotent_bounded_and_matches_config(built):
    (job,) = find(built.chart("kafka"), "Job")
    spec = job["spec"]
    assert spec["backoffLimit"] >= 1 and spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
    script = spec["template"]["spec"]["containers"][0]["command"][-1]
    assert names.kafka_bootstrap(built.env) in script
    assert re.search(r"-ge \d+ \]; then .*exit 1", script), "the wait loop must give up"
    rf = min(3, built.env.kafka.replicas)
    for topic in built.env.kafka.topics:
        retention = f"retention.ms={topic.retention_hours * 3_600_000}"
        assert (
            f"--create --if-not-exists --topic {topic.name} --partitions {topic.partitions} --replication-factor {rf}"
            f" --config {retention}" in script
        )
        assert f"--alter --entity-type topics --entity-name {topic.name} --add-config {retention}" in script
    # Every topic a service reads (KAFKA_TOPICS_*) is created: auto-creation is off.
    assert {t for s in built.env.services for t in s.kafka_topics} <= {t.name for t in built.env.kafka.topics}
    assert {t.name for t in built.env.kafka.topics} >= {"approval-requests", "approval-results"}


def test_topic_job_name_changes_with_its_script():
    jobs = {env: find(build(env).chart("kafka"), "Job")[0]["metadata"]["name"] for env in ("dev", "prod")}
    assert jobs["dev"] != jobs["prod"] and all(name.startswith("kafka-topics-") for name in jobs.values())


def test_topics_script_grows_partitions_and_sets_retention_when_run(tmp_path):
    """Run the Job's script against stub Kafka tools: an existing 1-partition topic is grown to the configured
    count, a topic already at it is left alone, and retention is applied to both."""
    import subprocess

    from k8s_charts.kafka import topics_script

    env = build("dev").env
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kafka-topics.sh").write_text(
        "#!/bin/sh\n"
        f'echo "topics $*" >> {calls}\n'
        'case "$*" in *--describe*approval-requests*) '
        'printf "Topic: approval-requests\\tTopicId: x\\tPartitionCount: 1\\tReplicationFactor: 1\\n";; '
        '*--describe*) printf "Topic: t\\tTopicId: y\\tPartitionCount: 3\\tReplicationFactor: 1\\n";; esac\n'
    )
    (bin_dir / "kafka-configs.sh").write_text(f'#!/bin/sh\necho "configs $*" >> {calls}\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    script = topics_script(env).replace("/opt/kafka/bin/", f"{bin_dir}/").replace("/tmp/admin", f"{tmp_path}/admin")
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    log = calls.read_text().splitlines()
    grown = [line for line in log if "--alter" in line and "--partitions" in line]
    assert grown == [line for line in log if line.startswith("topics") and "--alter --topic approval-requests" in line]
    assert len(grown) == 1 and grown[0].endswith("--partitions 3")
    assert sum("retention.ms=604800000" in line and line.startswith("configs") for line in log) == 2


# --- retention by size (issue 20 item 2): the topics cannot fill a broker's volume ----------------------------


def topic_settings(script: str, topic: str) -> tuple[dict[str, int], dict[str, int]]:
    """(--config on create, --add-config on every run) of one topic, as the Job's script passes them."""
    create = re.search(rf"--create --if-not-exists --topic {re.escape(topic)} .*", script).group(0)
    on_create = {key: int(value) for key, value in re.findall(r"--config ([a-z.]+)=(\d+)", create)}
    alter = re.search(rf"--entity-name {re.escape(topic)} --add-config (\S+)", script).group(1)
    on_run = {key: int(value) for key, value in (pair.split("=") for pair in alter.split(","))}
    return on_create, on_run


def topics_job_script(built) -> str:
    (job,) = find(built.chart("kafka"), "Job")
    return job["spec"]["template"]["spec"]["containers"][0]["command"][-1]


def test_topic_job_caps_every_topic_by_size_on_create_and_on_every_run(built):
    from config.sections import KAFKA_SEGMENT_BYTES

    script = topics_job_script(built)
    for topic in built.env.kafka.topics:
        on_create, on_run = topic_settings(script, topic.name)
        assert on_create == on_run, topic.name  # an existing topic gets what a new one would
        assert on_run == {
            "retention.ms": topic.retention_hours * 3_600_000,
            "retention.bytes": built.env.kafka.retention_bytes(topic),
            "segment.bytes": KAFKA_SEGMENT_BYTES,
        }


def test_topics_cannot_fill_a_brokers_volume(built):
    """Worst case on one broker: each partition replica it holds at retention.bytes plus one full segment (Kafka
    deletes whole segments only), replicas spread evenly; within topic_disk_share_pct of the volume."""
    kafka = built.env.kafka
    rf = replication_factor(kafka.replicas)
    script = topics_job_script(built)
    worst = 0
    for topic in kafka.topics:
        _, settings = topic_settings(script, topic.name)
        per_broker = -(-topic.partitions * rf // kafka.replicas)
        worst += per_broker * (settings["retention.bytes"] + settings["segment.bytes"])
    assert 0 < worst <= kafka.storage_gib * 1024**3 * kafka.topic_disk_share_pct / 100


def test_too_little_storage_for_the_topics_is_refused_with_one_line(config_dir):
    from tests.config.test_config import edit, error_of

    edit(config_dir, "dev", "kafka.storage_gib", 1)
    edit(config_dir, "dev", "kafka.initial_storage_gib", 1)
    message = error_of(config_dir, "dev")  # one line, or it fails
    assert message.startswith(f"{config_dir}/dev.yaml: kafka")
    assert "topics need up to" in message and "grow storage_gib" in message


def test_the_autoscaler_never_scales_away_a_brokers_node(built):
    """Scale-down would restart the broker (dev's only one: the approvals stop); upgrades drain it on purpose."""
    contract = yaml.safe_load((CONTRACTS / "cluster-autoscaler.yaml").read_text(encoding="utf-8"))
    known = {a["key"] for a in contract["pod_annotations"]}
    (statefulset,) = find(built.chart("kafka"), "StatefulSet")
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert set(annotations) <= known

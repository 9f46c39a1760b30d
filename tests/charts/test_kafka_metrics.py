"""Issue 20 item 2: kafka-metrics (kafka-exporter + an ADOT collector) puts what the Kafka alarms read into CloudWatch.

Everything is read from the rendered manifests: the exporter's args, the collector's config (the ConfigMap its
`--config` names), the RBAC bound to its service account, the NetworkPolicies. The collector pipeline is run on
made-up scrapes, the way the pinned versions process them (Prometheus relabeling, metrics_transform's aggregation,
awsemf's declarations; k8s_charts/contracts/aws-otel-collector.yaml, collector_config.configs.kafka_metrics):
`emf_metrics` is what reaches CloudWatch, and tests/infra/test_kafka_health.py checks every alarm against it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_charts import names
from k8s_charts.kafka_metrics import EXPORTER_PORT, KUBELET_PORT, TOKEN_DIR, data_claims
from k8s_charts.namespace import ANYWHERE
from tests.charts.test_namespace import POD_IDENTITY_AGENT_IPV4
from tests.contracts.test_third_party_contracts import arg_violations
from tests.support.charts import Manifest, find, selector_matches

from .conftest import ENVIRONMENTS, build

CONTRACTS = Path(__file__).resolve().parents[2] / "k8s_charts" / "contracts"
EXPORTER_CONTRACT = yaml.safe_load((CONTRACTS / "kafka-exporter.yaml").read_text())
COLLECTOR_CONTRACT = yaml.safe_load((CONTRACTS / "aws-otel-collector.yaml").read_text())
# The image's config grammar with the types, keys, values and behaviour the kafka-metrics config uses.
SPEC = {**COLLECTOR_CONTRACT["collector_config"], **COLLECTOR_CONTRACT["collector_config"]["configs"]["kafka_metrics"]}
NAME_LABEL = "app.kubernetes.io/name"


# --- reading the rendered workload --------------------------------------------------------------------------


def deployment(built) -> Manifest:
    (found,) = find(built.chart("kafka"), "Deployment", names.KAFKA_METRICS)
    return found


def container(built, name: str) -> Manifest:
    (found,) = [c for c in deployment(built)["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def collector_config(built) -> dict[str, Any]:
    """The file the collector's `--config=file:<path>` names, from the ConfigMap mounted over its directory."""
    collector = container(built, "collector")
    (path,) = [a.split("=", 1)[1].removeprefix("file:") for a in collector["args"] if a.startswith("--config=")]
    volumes = {v["name"]: v for v in deployment(built)["spec"]["template"]["spec"]["volumes"]}
    for mount in collector["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source and path.startswith(mount["mountPath"].rstrip("/") + "/"):
            (config_map,) = find(built.chart("kafka"), "ConfigMap", source["name"])
            return yaml.safe_load(config_map["data"][path.rsplit("/", 1)[1]])
    raise AssertionError(f"no ConfigMap mounted at {path}")


def arg(container_: Manifest, flag: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in container_["args"] if a.startswith(f"{flag}=")]
    return value


def scrape_job(config: dict, job: str) -> dict:
    (found,) = [s for s in config["receivers"]["prometheus"]["config"]["scrape_configs"] if s["job_name"] == job]
    return found


# --- the pinned versions' behaviour (the contract's `behaviour`) ----------------------------------------------


def expanded(value: str) -> str:
    """What confmap leaves of a string after ${...} expansion: `$$` is a literal `$`."""
    return value.replace("$$", "$")


def go_expand(template: str, match: re.Match) -> str:
    """Go regexp.Expand for `$1`, `${1}` and `$name`."""

    def group(m: re.Match) -> str:
        key = m.group(1) or m.group(2)
        return match.group(int(key) if key.isdigit() else key) or ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus relabeling (model/relabel): anchored regex, defaults replace / ';' / (.*) / $1; None = dropped."""
    labels = dict(labels)
    for config in configs:
        action = config.get("action", "replace")
        value = config.get("separator", ";").join(labels.get(name, "") for name in config.get("source_labels", []))
        regex = re.compile(f"^(?s:{expanded(config.get('regex', '(.*)'))})$")
        match = regex.match(value)
        if action == "keep":
            if not match:
                return None
        elif action == "drop":
            if match:
                return None
        elif action == "replace":
            if match:
                result = go_expand(expanded(config.get("replacement", "$1")), match)
                if result:
                    labels[config["target_label"]] = result
                else:
                    labels.pop(config["target_label"], None)
        else:
            raise AssertionError(f"relabel action {action} not simulated")
    return labels


def exporter_matches(filter_: str, value: str) -> bool:
    """kafka-exporter: regexp.MustCompile(filter).MatchString (unanchored)."""
    return re.search(filter_, value) is not None


def aggregate(points: list[tuple[dict, float]], keep: list[str], how: str) -> list[tuple[dict, float]]:
    """aggregate_labels: every attribute but `keep` dropped, points with equal attributes merged (aggregate.go)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for attributes, value in points:
        groups[tuple(sorted((k, v) for k, v in attributes.items() if k in keep))].append(value)
    merged = []
    for key, values in groups.items():
        if how == "count":
            value = float(len(values)) if len(values) > 1 else values[0]  # a lone point keeps its value
        else:
            value = {"sum": sum, "max": max, "min": min}[how](values)
        merged.append((dict(key), value))
    return merged


def emf_metrics(config: dict, scrapes: dict[str, list[tuple[str, dict, float]]]) -> dict[tuple[str, tuple], float]:
    """(CloudWatch metric name, ((dimension, value), ...)) -> value, for one scrape of each job."""
    metrics: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for job, samples in scrapes.items():
        configs = scrape_job(config, job).get("metric_relabel_configs", [])
        for name, labels, value in samples:
            kept = relabel({"__name__": name, **labels}, configs)
            if kept is not None:
                metrics[kept.pop("__name__")].append((kept, value))
    for transform in config["processors"]["metrics_transform"]["transforms"]:
        assert transform["action"] == "update" and transform.get("match_type", "strict") == "strict", transform
        points = metrics.pop(transform["include"], None)
        if points is None:
            continue
        for operation in transform["operations"]:
            assert operation["action"] == "aggregate_labels", operation
            points = aggregate(points, operation["label_set"], operation["aggregation_type"])
        metrics[transform.get("new_name", transform["include"])] = points
    exporter = config["exporters"]["awsemf"]
    assert exporter["dimension_rollup_option"] == "NoDimensionRollup"  # else rolled-up sets would be added
    found = {}
    for name, points in metrics.items():
        declarations = [
            d
            for d in exporter["metric_declarations"]
            if any(re.search(selector, name) for selector in d["metric_name_selectors"])
        ]
        for attributes, value in points:
            for declaration in declarations:
                for dimensions in declaration["dimensions"]:
                    if all(d in attributes for d in dimensions):
                        found[(name, tuple(sorted((d, attributes[d]) for d in dimensions)))] = value
    return found


def emf_shapes(config: dict) -> set[tuple[str, tuple[str, ...]]]:
    """Every (metric name, dimension names) the awsemf exporter can emit: its declarations, read from the config."""
    return {
        (selector.removeprefix("^").removesuffix("$"), tuple(sorted(dimensions)))
        for declaration in config["exporters"]["awsemf"]["metric_declarations"]
        for selector in declaration["metric_name_selectors"]
        for dimensions in declaration["dimensions"]
    }


# --- made-up scrapes ----------------------------------------------------------------------------------------


def exporter_scrape(built, *, offline: int = 0, under_replicated: int = 0) -> list[tuple[str, dict, float]]:
    """What kafka-exporter serves, given its filters: every configured topic with 3 partitions more than configured
    (none offline unless asked), __consumer_offsets, and topics/groups its filters must leave out."""
    exporter = container(built, "kafka-exporter")
    topics, groups = arg(exporter, "--topic.filter"), arg(exporter, "--group.filter")
    config_groups = built.env.observability.kafka.consumer_groups
    all_topics = {t.name: t.partitions for t in built.env.kafka.topics}
    all_topics |= {"__consumer_offsets": 50, "approval-requests-retry": 4, "scratch": 2}
    samples: list[tuple[str, dict, float]] = [("kafka_brokers", {}, float(built.env.kafka.replicas))]
    samples += [("kafka_exporter_build_info", {"version": "1.9.0"}, 1.0), ("go_goroutines", {}, 42.0)]
    led_left, urp_left = offline, under_replicated
    for topic, partitions in all_topics.items():
        if not exporter_matches(topics, topic):
            continue
        samples.append(("kafka_topic_partitions", {"topic": topic}, float(partitions)))
        for partition in range(partitions):
            labels = {"topic": topic, "partition": str(partition)}
            if led_left:
                led_left -= 1  # no leader: no leader series (client.Leader fails)
            else:
                samples.append(("kafka_topic_partition_leader", labels, float(partition % built.env.kafka.replicas)))
            samples.append(("kafka_topic_partition_under_replicated_partition", labels, float(urp_left > 0)))
            urp_left = max(urp_left - 1, 0)
            samples.append(("kafka_topic_partition_current_offset", labels, 1000.0))
        for i, group in enumerate([*config_groups, "some-other-group"]):
            if exporter_matches(groups, group) and not topic.startswith("__"):
                samples.append(
                    ("kafka_consumergroup_lag_sum", {"consumergroup": group, "topic": topic}, 10.0 * (i + 1))
                )
                samples.append(
                    ("kafka_consumergroup_lag", {"consumergroup": group, "topic": topic, "partition": "0"}, 1)
                )
    return samples


def kubelet_scrape(built) -> list[tuple[str, dict, float]]:
    ns = built.env.namespace
    samples = []
    for i, claim in enumerate([*data_claims(built.env), "data-mongodb-0"]):
        for namespace in (ns, "other"):
            labels = {"namespace": namespace, "persistentvolumeclaim": claim}
            samples.append(("kubelet_volume_stats_used_bytes", labels, float(i + 1) * 2**30))
            samples.append(("kubelet_volume_stats_capacity_bytes", labels, 10.0 * 2**30))
            samples.append(("kubelet_volume_stats_inodes_used", labels, 100.0))
    samples.append(("kubelet_running_pods", {}, 12.0))
    return samples


def scrapes(built, **faults: int) -> dict[str, list]:
    return {"kafka-exporter": exporter_scrape(built, **faults), "kafka-volumes": kubelet_scrape(built)}


# --- what reaches CloudWatch --------------------------------------------------------------------------------


def test_exactly_what_the_alarms_read_reaches_cloudwatch(built):
    config = collector_config(built)
    env = built.env
    emitted = emf_metrics(config, scrapes(built))
    groups = env.observability.kafka.consumer_groups
    claims = data_claims(env)
    group_topics = [t.name for t in env.kafka.topics]
    expected = {
        ("kafka_brokers", ()): float(env.kafka.replicas),
        ("kafka_partitions", ()): float(sum(t.partitions for t in env.kafka.topics) + 50),
        ("kafka_partitions_with_leader", ()): float(sum(t.partitions for t in env.kafka.topics) + 50),
        ("kafka_under_replicated_partitions", ()): 0.0,
        **{
            ("kafka_consumergroup_lag_sum", (("consumergroup", g),)): 10.0 * (i + 1) * len(group_topics)
            for i, g in enumerate(groups)
        },
        **{
            (f"kubelet_volume_stats_{what}_bytes", (("persistentvolumeclaim", c),)): 0.0
            for c in claims
            for what in ("used", "capacity")
        },
    }
    assert set(emitted) == set(expected)  # nothing else: no per-partition series, no other group or claim
    for key, value in expected.items():
        if key[0].startswith("kubelet_"):
            continue
        assert emitted[key] == value, key
    for i, claim in enumerate(claims):
        dims = (("persistentvolumeclaim", claim),)
        assert emitted[("kubelet_volume_stats_used_bytes", dims)] == (i + 1) * 2**30
        assert emitted[("kubelet_volume_stats_capacity_bytes", dims)] == 10 * 2**30
    # The declarations are the whole of it: every shape they allow is produced.
    assert {(name, tuple(d for d, _ in dims)) for name, dims in emitted} == emf_shapes(config)


def test_offline_and_under_replicated_partitions_show_in_the_sums(built):
    config = collector_config(built)
    total = sum(t.partitions for t in built.env.kafka.topics) + 50
    for offline in (1, 2, total - 1, total):
        emitted = emf_metrics(config, scrapes(built, offline=offline, under_replicated=3))
        led = emitted.get(("kafka_partitions_with_leader", ()), 0.0)  # no series at all when nothing has a leader
        # The alarm's math: partitions - FILL(led, 0). With one led partition `count` keeps that leader's id (the
        # collector's quirk): still more than 0 offline, because the total exceeds any broker id.
        assert emitted[("kafka_partitions", ())] - led > 0, offline
        if offline < total - 1:
            assert emitted[("kafka_partitions", ())] - led == offline
        assert emitted[("kafka_under_replicated_partitions", ())] == 3
    assert total > built.env.kafka.replicas  # what keeps the quirk harmless


def test_cloudwatch_namespace_and_log_group_are_the_environments(built):
    exporter = collector_config(built)["exporters"]["awsemf"]
    env = built.env
    assert exporter["namespace"] == names.kafka_metrics_namespace(env) == f"erp/{env.name}/kafka"
    assert exporter["log_group_name"] == names.kafka_metrics_log_group(env) == f"/aws/otel/erp-{env.name}/kafka-metrics"
    assert exporter["log_stream_name"] == names.KAFKA_METRICS_LOG_STREAM
    assert exporter["region"] == "${env:AWS_REGION}"
    assert {e["name"]: e["value"] for e in container(built, "collector")["env"]} == {"AWS_REGION": built.values.region}
    assert collector_config(built)["service"]["pipelines"] == {
        "metrics": {"receivers": ["prometheus"], "processors": ["metrics_transform"], "exporters": ["awsemf"]}
    }


# --- the exporter -------------------------------------------------------------------------------------------


def test_exporter_flags_are_flags_of_the_pinned_exporter(built):
    exporter = container(built, "kafka-exporter")
    assert f"/{EXPORTER_CONTRACT['image'].split('/', 1)[1]}:{EXPORTER_CONTRACT['version']}" in exporter["image"]
    assert arg_violations(exporter["args"], EXPORTER_CONTRACT["args"]) == []
    assert arg(exporter, "--kafka.server") == names.kafka_bootstrap(built.env)
    assert "--offset.show-all" in exporter["args"]  # lag of a group whose consumer is down is the point


def test_exporter_filters_select_exactly_the_configured_topics_and_groups(built):
    exporter = container(built, "kafka-exporter")
    topics, groups = arg(exporter, "--topic.filter"), arg(exporter, "--group.filter")
    wanted = [t.name for t in built.env.kafka.topics] + ["__consumer_offsets"]
    for topic in wanted:
        assert exporter_matches(topics, topic), topic
    for other in ("approval-requests-retry", "xapproval-results", "__transaction_state", "approval_requests"):
        assert not exporter_matches(topics, other), other
    for group in built.env.observability.kafka.consumer_groups:
        assert exporter_matches(groups, group)
        assert not exporter_matches(groups, f"{group}-old") and not exporter_matches(groups, f"x{group}")


def test_the_collector_scrapes_the_exporter_where_it_listens(built):
    exporter = container(built, "kafka-exporter")
    port = int(arg(exporter, "--web.listen-address").rsplit(":", 1)[1])
    job = scrape_job(collector_config(built), "kafka-exporter")
    assert port == EXPORTER_PORT and job["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]
    assert exporter["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert "/healthz" in {e["path"] for e in EXPORTER_CONTRACT["endpoints"]}
    assert "ports" not in exporter  # served on localhost to the collector only: no Service, no ingress


def test_containers_run_as_the_images_users(built):
    pod = deployment(built)["spec"]["template"]["spec"]
    exporter_uid = int(re.search(r"uid (\d+)", EXPORTER_CONTRACT["runs_as"]).group(1))
    assert container(built, "kafka-exporter")["securityContext"]["runAsUser"] == exporter_uid
    assert pod["securityContext"]["runAsUser"] == int(re.search(r"uid (\d+)", COLLECTOR_CONTRACT["runs_as"]).group(1))
    assert pod["serviceAccountName"] == names.KAFKA_METRICS
    assert deployment(built)["spec"]["replicas"] == 1  # a second one would write every point twice


# --- the kubelet scrape -------------------------------------------------------------------------------------


def discovered_targets(built, host_ips: list[str | None]) -> list[dict[str, str]]:
    """Prometheus' pod role for the Kafka StatefulSet's pods (one target per container port), then relabeled."""
    job = scrape_job(collector_config(built), "kafka-volumes")
    (sd,) = job["kubernetes_sd_configs"]
    (statefulset,) = find(built.chart("kafka"), "StatefulSet", names.KAFKA)
    template = statefulset["spec"]["template"]
    (selector,) = sd["selectors"]
    key, _, value = selector["label"].partition("=")
    assert selector["role"] == sd["role"] == "pod" and template["metadata"]["labels"].get(key) == value
    assert sd["namespaces"] == {"names": [built.env.namespace]} == {"names": [statefulset["metadata"]["namespace"]]}
    targets = []
    for ordinal, host_ip in enumerate(host_ips):
        for kafka in template["spec"]["containers"]:
            for port in kafka["ports"]:
                meta = {
                    "__address__": f"10.0.0.{ordinal}:{port['containerPort']}",
                    "__meta_kubernetes_pod_container_port_name": port["name"],
                    "__meta_kubernetes_pod_host_ip": host_ip or "",
                    "__meta_kubernetes_pod_name": f"{names.KAFKA}-{ordinal}",
                }
                relabeled = relabel(meta, job["relabel_configs"])
                if relabeled is not None:
                    targets.append(relabeled)
    return targets


def test_the_kubelet_of_each_scheduled_broker_is_scraped_once_over_tls(built):
    job = scrape_job(collector_config(built), "kafka-volumes")
    replicas = built.env.kafka.replicas
    ips = [f"10.1.{i}.10" for i in range(replicas)]
    targets = discovered_targets(built, [*ips, None])  # one more pod, not yet on a node
    assert [t["__address__"] for t in targets] == [f"{ip}:{KUBELET_PORT}" for ip in ips]
    assert job["scheme"] == "https" and job.get("metrics_path", "/metrics") == "/metrics"
    assert job["authorization"] == {"credentials_file": f"{TOKEN_DIR}/token"}
    assert job["tls_config"] == {"ca_file": f"{TOKEN_DIR}/ca.crt"}  # kubelet-serving certs: the cluster CA


def test_only_the_collector_holds_an_api_token(built):
    pod = deployment(built)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (account,) = [
        a
        for a in find(built.chart("kafka"), "ServiceAccount", names.KAFKA_METRICS)
        if a["metadata"]["namespace"] == built.env.namespace
    ]
    assert account["automountServiceAccountToken"] is False
    (mount,) = [m for m in container(built, "collector")["volumeMounts"] if m["mountPath"] == TOKEN_DIR]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    files = {
        item["path"]
        for source in volume["projected"]["sources"]
        for item in (source.get("configMap") or source.get("downwardAPI") or {}).get("items", [])
    } | {s["serviceAccountToken"]["path"] for s in volume["projected"]["sources"] if "serviceAccountToken" in s}
    assert files == {"token", "ca.crt", "namespace"}  # what client-go's in-cluster config reads
    assert "volumeMounts" not in container(built, "kafka-exporter")


def rbac_of(built) -> dict[str, set[tuple[str, str, str, frozenset]]]:
    """Role kind -> (namespace, api group, resource, verbs) granted to the kafka-metrics service account."""
    subject = {"kind": "ServiceAccount", "name": names.KAFKA_METRICS, "namespace": built.env.namespace}
    granted: dict[str, set] = defaultdict(set)
    for kind, binding_kind in (("Role", "RoleBinding"), ("ClusterRole", "ClusterRoleBinding")):
        for binding in find(built.everything, binding_kind):
            if subject not in binding["subjects"]:
                continue
            assert binding["subjects"] == [subject], binding["metadata"]["name"]  # bound to it alone
            ref = binding["roleRef"]
            assert ref["kind"] == kind
            (role,) = [
                r
                for r in find(built.everything, kind, ref["name"])
                if r["metadata"].get("namespace") == binding["metadata"].get("namespace")
            ]
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        granted[kind].add(
                            (role["metadata"].get("namespace", "-"), group, resource, frozenset(rule["verbs"]))
                        )
    return dict(granted)


def test_rbac_is_pod_discovery_in_its_namespace_and_kubelet_metrics_only(built):
    assert rbac_of(built) == {
        "Role": {(built.env.namespace, "", "pods", frozenset({"list", "watch"}))},
        # The kubelet authorises GET /metrics as nodes/metrics; nodes/proxy would also open exec and logs.
        "ClusterRole": {("-", "", "nodes/metrics", frozenset({"get"}))},
    }


# --- network ------------------------------------------------------------------------------------------------


def policies(built) -> dict[str, dict]:
    return {p["metadata"]["name"]: p["spec"] for p in find(built.chart("namespace"), "NetworkPolicy")}


def rules_for(built, pod_labels: dict[str, str], direction: str) -> list[dict]:
    return [
        rule
        for spec in policies(built).values()
        if direction.capitalize() in spec["policyTypes"] and selector_matches(spec["podSelector"], pod_labels)
        for rule in spec.get(direction, [])
    ]


def peers(rule: dict, key: str) -> list[dict]:
    return rule.get(key, [])


def test_kafka_metrics_reaches_the_brokers_the_kubelets_and_aws_only(built):
    labels = deployment(built)["spec"]["template"]["metadata"]["labels"]
    (kafka,) = find(built.chart("kafka"), "StatefulSet", names.KAFKA)
    kafka_labels = kafka["spec"]["template"]["metadata"]["labels"]
    reach = set()
    for rule in rules_for(built, labels, "egress"):
        ports = {(p["port"], p.get("protocol", "TCP")) for p in rule.get("ports", [])}
        for peer in peers(rule, "to"):
            if "podSelector" in peer and "namespaceSelector" not in peer:
                assert selector_matches(peer["podSelector"], kafka_labels), peer
                reach |= {("kafka", port) for port in ports}
            elif "ipBlock" in peer:
                reach |= {(peer["ipBlock"]["cidr"], port) for port in ports}
            else:
                reach |= {("dns", port) for port in ports}
    assert reach == {
        ("kafka", (names.KAFKA_PORT, "TCP")),
        (built.values.vpc_cidr, (KUBELET_PORT, "TCP")),  # the nodes' kubelets
        (ANYWHERE, (443, "TCP")),  # the API server (pod discovery) and CloudWatch Logs
        (POD_IDENTITY_AGENT_IPV4, (80, "TCP")),
        ("dns", (53, "UDP")),
        ("dns", (53, "TCP")),
    }
    admitted = [
        rule
        for rule in rules_for(built, kafka_labels, "ingress")
        if any(selector_matches(p.get("podSelector", {"matchLabels": {"x": "y"}}), labels) for p in rule["from"])
    ]
    assert [{(p["port"], p.get("protocol", "TCP")) for p in r["ports"]} for r in admitted] == [
        {(names.KAFKA_PORT, "TCP")}
    ]
    assert rules_for(built, labels, "ingress") == []  # nothing calls it


# --- the contract -------------------------------------------------------------------------------------------


def key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every key, `[]` for list items (the contract's notation)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from key_paths(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for item in node:
            yield from key_paths(item, prefix.removesuffix(".") + "[].")


def value_violations(config: dict, values: dict[str, list]) -> list[str]:
    problems = []

    def check(what: str, value: Any) -> None:
        if value not in values[what]:
            problems.append(f"{what} {value!r}: not a value of the pinned version")

    for component_id, body in (config.get("receivers") or {}).items():
        if component_id.split("/")[0] != "prometheus":
            continue
        for job in body["config"]["scrape_configs"]:
            check("prometheus.scheme", job.get("scheme", "http"))
            for sd in job.get("kubernetes_sd_configs", []):
                check("prometheus.kubernetes_sd_configs.role", sd["role"])
            for rule in job.get("relabel_configs", []) + job.get("metric_relabel_configs", []):
                check("prometheus.relabel.action", rule.get("action", "replace"))
            for rule in job.get("relabel_configs", []):
                for label in rule.get("source_labels", []):
                    if label.startswith("__meta_"):
                        check("prometheus.pod_meta_labels", label)
    for component_id, body in (config.get("processors") or {}).items():
        if component_id.split("/")[0] != "metrics_transform":
            continue
        for transform in body["transforms"]:
            check("metrics_transform.action", transform["action"])
            check("metrics_transform.match_type", transform.get("match_type", "strict"))
            for operation in transform.get("operations", []):
                check("metrics_transform.operations.action", operation["action"])
                if "aggregation_type" in operation:
                    check("metrics_transform.aggregation_type", operation["aggregation_type"])
    for component_id, body in (config.get("exporters") or {}).items():
        if component_id.split("/")[0] == "awsemf" and "dimension_rollup_option" in body:
            check("awsemf.dimension_rollup_option", body["dimension_rollup_option"])
    return problems


def config_violations(config: dict, spec: dict = SPEC) -> list[str]:
    """Sections, component types, every key (inside lists too) and the values the code switches on."""
    problems = [f"{s}: not a section of the pinned version" for s in config if s not in spec["sections"]]
    defined = {kind: set(config.get(kind) or {}) for kind in ("extensions", "receivers", "processors", "exporters")}
    for kind, components in spec["keys"].items():
        for component_id, body in (config.get(kind) or {}).items():
            kind_of = component_id.split("/", 1)[0]
            if kind_of not in spec["types"][kind]:
                problems.append(f"{kind}.{component_id}: {kind_of} is not a type this contract covers")
                continue
            problems += [
                f"{kind}.{component_id}.{path}: not a key of the pinned version"
                for path in key_paths(body)
                if path not in components[kind_of]
            ]
    service = config.get("service", {})
    problems += [f"service.{k}: not a key of the pinned version" for k in service if k not in spec["service"]]
    problems += [
        f"service.extensions: {e} is not defined"
        for e in service.get("extensions", [])
        if e not in defined["extensions"]
    ]
    for pipeline_id, pipeline in service.get("pipelines", {}).items():
        if pipeline_id.split("/")[0] not in spec["pipeline_signals"]:
            problems.append(f"service.pipelines.{pipeline_id}: not a signal of the pinned version")
        for key, ids in pipeline.items():
            if key not in spec["pipeline"]:
                problems.append(f"service.pipelines.{pipeline_id}.{key}: not a key of the pinned version")
            else:
                problems += [
                    f"service.pipelines.{pipeline_id}.{key}: {i} is not defined" for i in ids if i not in defined[key]
                ]
    return problems + value_violations(config, spec["values"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_collector_config_key_and_value_is_the_pinned_versions(env):
    assert config_violations(collector_config(build(env))) == []


def test_the_config_check_rejects_what_the_pinned_version_does_not_have():
    config = yaml.safe_load(yaml.safe_dump(collector_config(build("prod"))))
    assert config_violations(config) == []
    job = config["receivers"]["prometheus"]["config"]["scrape_configs"][1]
    job["metric_relabel_config"] = job.pop("metric_relabel_configs")  # a typo
    job["kubernetes_sd_configs"][0]["role"] = "pods"
    config["processors"]["metrics_transform"]["transforms"][0]["operations"][0]["aggregation_type"] = "avg"
    config["processors"]["metricstransform/old"] = {}  # the deprecated type name
    config["exporters"]["awsemf"]["dimension_rollup_option"] = "None"
    config["service"]["pipelines"]["metrics"]["exporters"] = ["awsemf/kafka"]
    typo = "receivers.prometheus.config.scrape_configs[].metric_relabel_config"
    assert config_violations(config) == [
        f"{typo}: not a key of the pinned version",
        f"{typo}[].action: not a key of the pinned version",
        f"{typo}[].regex: not a key of the pinned version",
        f"{typo}[].source_labels: not a key of the pinned version",
        "processors.metricstransform/old: metricstransform is not a type this contract covers",
        "service.pipelines.metrics.exporters: awsemf/kafka is not defined",
        "prometheus.kubernetes_sd_configs.role 'pods': not a value of the pinned version",
        "metrics_transform.aggregation_type 'avg': not a value of the pinned version",
        "awsemf.dimension_rollup_option 'None': not a value of the pinned version",
    ]


def test_the_relabel_and_pipeline_simulation_can_fail(built):
    """The simulated behaviour is not vacuous: a wrong keep regex or a lost dimension changes what is emitted."""
    config = yaml.safe_load(yaml.safe_dump(collector_config(built)))
    scrape_job(config, "kafka-exporter")["metric_relabel_configs"][0]["regex"] = "kafka_brokers"
    emitted = emf_metrics(config, scrapes(built))
    assert ("kafka_partitions", ()) not in emitted
    config = yaml.safe_load(yaml.safe_dump(collector_config(built)))
    for transform in config["processors"]["metrics_transform"]["transforms"]:
        if transform["include"] == "kafka_consumergroup_lag_sum":
            transform["operations"][0]["label_set"] = []
    emitted = emf_metrics(config, scrapes(built))
    assert not [key for key in emitted if key[0] == "kafka_consumergroup_lag_sum"]  # declared with its dimension

"""Issue 20 item 1: the ADOT collector replaced the X-Ray daemon, and the unchanged services still reach it.

Read from the rendered manifests: the collector's config is the file its `--config` names, taken from the
ConfigMap mounted there. Checked: the X-Ray receiver on UDP 2000 with the sampling proxy on TCP 2000, OTLP on
4317/4318, one traces pipeline into the X-Ray exporter, probes on the health_check extension, the Service's
ports = the container's = the receivers', every tracing service's AWS_XRAY_DAEMON_ADDRESS resolving to a
Service that selects the collector, no X-Ray daemon image anywhere, and every key of its config recorded in
k8s_charts/contracts/aws-otel-collector.yaml (collector_config.configs.tracing): the collector refuses to start on
an unknown key, so a made-up one must fail here rather than in the cluster. (The kafka-metrics collector runs the
same image with its own config, the contract's collector_config.configs.kafka_metrics, checked by
test_kafka_metrics.py.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k8s_charts import names
from k8s_charts.images import ADOT_COLLECTOR, THIRD_PARTY
from k8s_charts.tracing import collector_replicas
from tests.support.charts import Manifest, Workload, find, selector_matches, workloads

from .conftest import build

CONTRACT = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "k8s_charts" / "contracts" / "aws-otel-collector.yaml").read_text()
)
# The image's config grammar with the keys the tracing config may use.
SPEC = {**CONTRACT["collector_config"], **CONTRACT["collector_config"]["configs"]["tracing"]}
COMPONENT_KINDS = ("extensions", "receivers", "processors", "exporters", "connectors")


# --- reading the rendered collectors ------------------------------------------------------------------------


@dataclass(frozen=True)
class Collector:
    workload: Workload
    container: Manifest
    config: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.workload.key}/{self.container['name']}"

    def env(self) -> dict[str, str]:
        return {e["name"]: e.get("value") for e in self.container.get("env", [])}

    def ports(self) -> set[tuple[int, str]]:
        return {(p["containerPort"], p.get("protocol", "TCP")) for p in self.container.get("ports", [])}


def config_text(workload: Workload, container: Manifest, manifests: list[Manifest]) -> str:
    """The file `--config` names, from the ConfigMap volume mounted over its directory."""
    (location,) = [a.split("=", 1)[1] for a in container.get("args", []) if a.startswith("--config=")]
    path = location.removeprefix("file:")
    assert "AOT_CONFIG_CONTENT" not in {e["name"] for e in container.get("env", [])}, "it would override --config"
    volumes = {v["name"]: v for v in workload.pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        directory = mount["mountPath"].rstrip("/")
        source = volumes[mount["name"]].get("configMap")
        if source and path.startswith(f"{directory}/"):
            (config_map,) = [
                m
                for m in find(manifests, "ConfigMap", source["name"])
                if m["metadata"].get("namespace") == workload.namespace
            ]
            return config_map["data"][path.removeprefix(f"{directory}/")]
    raise AssertionError(f"{workload.key}: no ConfigMap is mounted at {path}")


def collectors(manifests: list[Manifest]) -> list[Collector]:
    """Every container of every workload that runs the ADOT image."""
    image = re.compile(rf"/{re.escape(ADOT_COLLECTOR.repository())}[:@]")
    return [
        Collector(w, c, yaml.safe_load(config_text(w, c, manifests)))
        for w in workloads(manifests)
        for c in w.containers
        if image.search(c["image"])
    ]


def tracing_collector(built) -> Collector:
    (collector,) = [
        c for c in collectors(built.chart("tracing")) if c.workload.manifest["metadata"]["name"] == names.OTEL_COLLECTOR
    ]
    return collector


def port_of(endpoint: str) -> int:
    host, _, port = endpoint.rpartition(":")
    assert host == "0.0.0.0", f"{endpoint}: reachable only from inside the pod"
    return int(port)


# --- the contract check ---------------------------------------------------------------------------------------


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from dotted_keys(value, f"{prefix}{key}.")


def config_key_violations(config: dict[str, Any], spec: dict[str, Any] = SPEC) -> list[str]:
    """What in a collector config the pinned release does not have (or the contract has not read)."""
    problems = [
        f"{section}: not a section of the pinned version" for section in config if section not in spec["sections"]
    ]
    defined = {kind: set(config.get(kind) or {}) for kind in COMPONENT_KINDS}
    for kind in COMPONENT_KINDS:
        for component_id, body in (config.get(kind) or {}).items():
            kind_of = component_id.split("/", 1)[0]
            if kind_of not in spec["compiled"].get(kind, []):
                problems.append(f"{kind}.{component_id}: {kind_of} is not compiled into the pinned version")
                continue
            known = spec["keys"].get(kind, {}).get(kind_of)
            if known is None:
                if body:
                    problems.append(f"{kind}.{component_id}: no key of {kind_of} is recorded in the contract")
                continue
            problems += [
                f"{kind}.{component_id}.{key}: not a key of the pinned version"
                for key in dotted_keys(body)
                if key not in known
            ]
    service = config.get("service") or {}
    for key, value in service.items():
        if key not in spec["service"]:
            problems.append(f"service.{key}: not a key of the pinned version")
        elif key == "telemetry" and value:
            problems.append("service.telemetry: no telemetry key is recorded in the contract")
    problems += [
        f"service.extensions: {ext} is not defined"
        for ext in service.get("extensions", [])
        if ext not in defined["extensions"]
    ]
    for pipeline_id, pipeline in (service.get("pipelines") or {}).items():
        if pipeline_id.split("/", 1)[0] not in spec["pipeline_signals"]:
            problems.append(f"service.pipelines.{pipeline_id}: not a signal of the pinned version")
        for key, ids in pipeline.items():
            if key not in spec["pipeline"]:
                problems.append(f"service.pipelines.{pipeline_id}.{key}: not a key of the pinned version")
                continue
            problems += [
                f"service.pipelines.{pipeline_id}.{key}: {cid} is not defined"
                for cid in ids
                if cid not in defined[key] | defined["connectors"]
            ]
    return problems


# --- the tests ------------------------------------------------------------------------------------------------


def test_xray_receiver_takes_segments_on_udp_2000_and_serves_the_sampling_proxy_on_tcp_2000(built):
    collector = tracing_collector(built)
    receiver = collector.config["receivers"]["awsxray"]
    assert port_of(receiver["endpoint"]) == names.XRAY_PORT and receiver.get("transport", "udp") == "udp"
    proxy = receiver["proxy_server"]
    assert port_of(proxy["endpoint"]) == names.XRAY_PORT  # default is localhost:2000: the pods could not reach it
    assert {(names.XRAY_PORT, "UDP"), (names.XRAY_PORT, "TCP")} <= collector.ports()
    # The proxy signs sampling calls for, and the exporter writes to, the stack's region (from the container env).
    assert proxy["region"] == collector.config["exporters"]["awsxray"]["region"] == "${env:AWS_REGION}"
    assert collector.env()["AWS_REGION"] == built.values.region


def test_otlp_receiver_listens_on_grpc_4317_and_http_4318(built):
    collector = tracing_collector(built)
    protocols = collector.config["receivers"]["otlp"]["protocols"]
    assert port_of(protocols["grpc"]["endpoint"]) == names.OTLP_GRPC_PORT == 4317
    assert port_of(protocols["http"]["endpoint"]) == names.OTLP_HTTP_PORT == 4318
    assert {(4317, "TCP"), (4318, "TCP")} <= collector.ports()


def test_one_traces_pipeline_from_both_receivers_to_the_xray_exporter(built):
    collector = tracing_collector(built)
    pipelines = collector.config["service"]["pipelines"]
    assert list(pipelines) == ["traces"]
    traces = pipelines["traces"]
    assert sorted(traces["receivers"]) == ["awsxray", "otlp"] and traces["exporters"] == ["awsxray"]
    # memory_limiter first (it refuses data before anything buffers it), then batching.
    assert traces["processors"] == ["memory_limiter", "batch"]
    limiter = collector.config["processors"]["memory_limiter"]
    limit_mib = int(collector.container["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"] < limit_mib  # its Validate, and below the OOM kill
    assert re.fullmatch(r"[1-9]\d*s", limiter["check_interval"])


def test_probes_ask_the_health_check_extension(built):
    collector = tracing_collector(built)
    assert "health_check" in collector.config["service"]["extensions"]
    port = port_of(collector.config["extensions"]["health_check"]["endpoint"])
    assert port == CONTRACT["health_check"]["port"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = collector.container[probe]["httpGet"]
        assert (check["port"], check["path"]) == (port, CONTRACT["health_check"]["path"]), probe


def test_it_runs_as_the_images_user_with_its_own_pod_identity(built):
    collector = tracing_collector(built)
    pod = collector.workload.pod_spec
    uid = int(re.search(r"uid (\d+)", CONTRACT["runs_as"]).group(1))
    assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"] is True
    account = names.pod_identity_service_accounts(built.env)[names.OTEL_COLLECTOR]
    assert (collector.workload.namespace, pod["serviceAccountName"]) == tuple(account)


def test_service_port_is_the_container_port_is_the_receiver_port(built):
    collector = tracing_collector(built)
    (service,) = find(built.chart("tracing"), "Service", names.XRAY_SERVICE)
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, collector.workload.pod_labels)
    receivers = collector.config["receivers"]
    listening = {
        (port_of(receivers["awsxray"]["endpoint"]), "UDP"),
        (port_of(receivers["awsxray"]["proxy_server"]["endpoint"]), "TCP"),
        (port_of(receivers["otlp"]["protocols"]["grpc"]["endpoint"]), "TCP"),
        (port_of(receivers["otlp"]["protocols"]["http"]["endpoint"]), "TCP"),
    }
    served = set()
    for port in service["spec"]["ports"]:
        protocol = port.get("protocol", "TCP")
        assert port["targetPort"] == port["port"], port
        served.add((port["port"], protocol))
    assert served == listening == collector.ports()


def test_every_tracing_service_reaches_a_service_that_selects_the_collector(built):
    """The unchanged Spring services: AWS_XRAY_DAEMON_ADDRESS names a Service that exists and ends at the collector."""
    collector = tracing_collector(built)
    tracing = [s for s in built.env.services if "xray" in s.uses]
    assert tracing
    for service in tracing:
        (deployment,) = find(built.chart("services"), "Deployment", service.name)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        address = {e["name"]: e.get("value") for e in container["env"]}["AWS_XRAY_DAEMON_ADDRESS"]
        assert address == names.xray_address(built.env)  # the value the daemon had: nothing changed for them
        host, _, port = address.rpartition(":")
        name, namespace, suffix = host.split(".", 2)
        assert suffix == "svc.cluster.local"
        (target,) = [m for m in find(built.everything, "Service", name) if m["metadata"]["namespace"] == namespace]
        assert namespace == collector.workload.namespace
        assert selector_matches({"matchLabels": target["spec"]["selector"]}, collector.workload.pod_labels)
        ports = {(p["port"], p.get("protocol", "TCP")): p["targetPort"] for p in target["spec"]["ports"]}
        for protocol in ("UDP", "TCP"):  # segments, and the sampling rules the SDK fetches
            assert (ports[(int(port), protocol)], protocol) in collector.ports(), (service.name, protocol)


def test_no_xray_daemon_runs_anywhere(built):
    images = [c["image"] for w in workloads(built.everything) for c in w.containers]
    assert images and not [image for image in images if "xray-daemon" in image or "/xray/" in image]
    assert not [i for i in THIRD_PARTY.values() if "xray" in i.path]
    assert not find(built.everything, "DaemonSet", names.XRAY_SERVICE)


def test_replicas_follow_the_apps_nodes_with_a_budget_when_more_than_one(built):
    collector = tracing_collector(built)
    replicas = collector.workload.manifest["spec"]["replicas"]
    key, value = names.APPS_NODE_LABEL
    apps_min = sum(g.min_size for g in built.env.cluster.node_groups if g.labels.get(key) == value)
    assert replicas == collector_replicas(built.env) == (2 if apps_min >= 2 else 1)
    budgets = [
        b
        for b in find(built.chart("tracing"), "PodDisruptionBudget")
        if selector_matches(b["spec"]["selector"], collector.workload.pod_labels)
    ]
    assert len(budgets) == (replicas > 1)
    assert collector.workload.manifest["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_prod_runs_two_collectors():
    assert tracing_collector(build("prod")).workload.manifest["spec"]["replicas"] == 2


def test_every_key_of_the_collector_config_is_in_the_contract(built):
    config = tracing_collector(built).config
    assert set(config) >= {"receivers", "processors", "exporters", "extensions", "service"}
    assert config_key_violations(config) == []


def test_every_config_of_the_image_uses_only_types_compiled_into_it():
    """One contract for the image, a section per config: each section's component types are the build's."""
    grammar = CONTRACT["collector_config"]
    assert set(grammar["configs"]) == {"tracing", "kafka_metrics"}
    not_compiled = [
        f"configs.{name}.{kind}.{component_type}"
        for name, section in grammar["configs"].items()
        for listing in (section["keys"], section.get("types", {}))
        for kind, types in listing.items()
        for component_type in types
        if component_type not in grammar["compiled"][kind]
    ]
    assert not_compiled == []


def test_the_key_check_rejects_what_the_pinned_version_does_not_have(built):
    config = yaml.safe_load(yaml.safe_dump(tracing_collector(built).config))
    assert config_key_violations(config) == []
    config["receivers"]["awsxray"]["proxy_server"]["regoin"] = "x"  # a typo
    config["receivers"]["xray"] = {"endpoint": "0.0.0.0:2000"}  # not a type of the build
    config["receivers"]["prometheus/kafka"] = {"config": {}}  # compiled in, keys never read
    config["exporters"]["awsxray"]["sampling"] = True  # made up
    config["service"]["pipelines"]["trace"] = {"receivers": ["otlp"], "exporter": ["awsxray"]}
    config["service"]["pipelines"]["traces"]["processors"].append("batch/x")
    config["service"]["telemetry"] = {"logs": {"level": "debug"}}
    config["processor"] = {}
    assert config_key_violations(config) == [
        "processor: not a section of the pinned version",
        "receivers.awsxray.proxy_server.regoin: not a key of the pinned version",
        "receivers.xray: xray is not compiled into the pinned version",
        "receivers.prometheus/kafka: no key of prometheus is recorded in the contract",
        "exporters.awsxray.sampling: not a key of the pinned version",
        "service.telemetry: no telemetry key is recorded in the contract",
        "service.pipelines.traces.processors: batch/x is not defined",
        "service.pipelines.trace: not a signal of the pinned version",
        "service.pipelines.trace.exporter: not a key of the pinned version",
    ]

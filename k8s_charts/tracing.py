"""The AWS Distro for OpenTelemetry collector that replaced the X-Ray daemon (end of support 2027-02-25).

The Spring services keep their X-Ray SDK and their `AWS_XRAY_DAEMON_ADDRESS`
(`xray-daemon.<ns>.svc.cluster.local:2000`, names.xray_address): the Service keeps the daemon's name and port
and now selects the collector's pods. The collector's `awsxray` receiver takes the same UDP segments on 2000 and
serves the same TCP sampling proxy on 2000 (GetSamplingRules / GetSamplingTargets, signed with its own Pod
Identity), so the sampling rules and the X-Ray group (constructs_lib/observability/tracing.py) work unchanged:
the receiver names each span's `service.name` after the segment and the `awsxray` exporter writes it back.
OTLP (gRPC 4317, HTTP 4318) goes into the same traces pipeline for OpenTelemetry SDKs.

A Deployment, not a DaemonSet like the daemon: the SDKs reach it through a ClusterIP Service (never the node's
own pod), so one pod per node bought no locality, only cost growing with the node count. Two replicas (spread
over zones and hosts, PDB) where the apps nodes guarantee two; one otherwise (dev), with a surge-first rollout.
Every config key is one of the pinned release's (k8s_charts/contracts/aws-otel-collector.yaml, section
collector_config.configs.tracing, checked by tests/charts/test_collector.py).
"""

from __future__ import annotations

import yaml
from cdk8s import ApiObjectMetadata
from cdk8s_plus_27 import ConfigMap, Pods, Protocol, Service, ServiceAccount, ServicePort, k8s
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import common, names
from k8s_charts.images import ADOT_COLLECTOR, image_uri
from k8s_charts.services import DrainingDeployment
from k8s_charts.values import PlatformValues

IMAGE = ADOT_COLLECTOR  # k8s_charts/images.py: through the stage's ECR pull-through cache
ADOT_UID = 4317  # the image's `aoc` user (Dockerfile: adduser -u 4317); a name, so runAsNonRoot needs the number
HEALTH_CHECK_PORT = 13133  # the health_check extension: 200 once every pipeline is ready, 503 before
CONFIG_DIR = "/conf"
CONFIG_FILE = "collector.yaml"
MEMORY_LIMIT_MIB = 256  # the container's limit
# memory_limiter's hard limit (~80 % of the container's) and its spike share: it refuses data (the senders drop it)
# and forces a GC before the kernel would kill the pod.
LIMITER_MIB, LIMITER_SPIKE_MIB = 200, 50
COMPONENT = "tracing"


def listen(port: int) -> str:
    """Every interface of the pod: the Service and the kubelet's probes reach it on the pod IP."""
    return f"0.0.0.0:{port}"


def config_args() -> list[str]:
    """The image's CMD is `--config=/etc/otel-config.yaml` (its demo config); replaced by the mounted file."""
    return [f"--config=file:{CONFIG_DIR}/{CONFIG_FILE}"]


def render_config(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def health_probes() -> dict[str, k8s.Probe]:
    """Readiness and liveness on the health_check extension (the image is FROM scratch: no shell, no curl)."""
    check = k8s.HttpGetAction(path="/", port=common.int_or_string(HEALTH_CHECK_PORT))
    return {
        "readiness_probe": k8s.Probe(http_get=check, period_seconds=10, failure_threshold=3),
        "liveness_probe": k8s.Probe(http_get=check, initial_delay_seconds=10, period_seconds=20, failure_threshold=3),
    }


def collector_config() -> dict:
    """The collector's config. The region comes from the container's AWS_REGION (`${env:...}`, the pinned
    release's env provider), so the file is the same in every stage and its hash changes only with it."""
    region = "${env:AWS_REGION}"
    return {
        "extensions": {"health_check": {"endpoint": listen(HEALTH_CHECK_PORT)}},
        "receivers": {
            "awsxray": {
                # What the daemon bound: segments on UDP, and on TCP the proxy the SDKs fetch sampling rules from.
                "endpoint": listen(names.XRAY_PORT),
                "transport": "udp",
                "proxy_server": {
                    "endpoint": listen(names.XRAY_PORT),
                    "region": region,
                    "local_mode": True,  # never ask EC2 instance metadata (the egress policy blocks it anyway)
                },
            },
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": listen(names.OTLP_GRPC_PORT)},
                    "http": {"endpoint": listen(names.OTLP_HTTP_PORT)},
                }
            },
        },
        "processors": {
            # First in the pipeline, so it refuses data before anything else buffers it.
            "memory_limiter": {
                "check_interval": "1s",
                "limit_mib": LIMITER_MIB,
                "spike_limit_mib": LIMITER_SPIKE_MIB,
            },
            # The exporter splits a batch into PutTraceSegments calls of at most 50 documents.
            "batch": {"timeout": "1s"},
        },
        "exporters": {"awsxray": {"region": region}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {
                    "receivers": ["awsxray", "otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["awsxray"],
                }
            },
        },
    }


def collector_replicas(env: EnvironmentConfig) -> int:
    """Two where the apps node groups keep at least two nodes (one node drained, traces still flow); else one."""
    key, value = names.APPS_NODE_LABEL
    groups = [g for g in env.cluster.node_groups if g.labels.get(key) == value] or env.cluster.node_groups
    return 2 if sum(g.min_size for g in groups) >= 2 else 1


class OtelCollector(Construct):
    """ServiceAccount (Pod Identity: X-Ray writes and sampling), ConfigMap, Deployment, the `xray-daemon` Service
    and, with two replicas, a PodDisruptionBudget."""

    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        ns, name = env.namespace, names.OTEL_COLLECTOR
        labels = common.pod_labels(name, COMPONENT)
        selector = common.selector_labels(name)
        replicas = collector_replicas(env)

        ServiceAccount(
            self,
            "ServiceAccount",
            metadata=ApiObjectMetadata(name=name, namespace=ns, labels=labels),
            # Pod Identity injects its own token volume; the collector never calls the Kubernetes API.
            automount_token=False,
        )
        text = render_config(collector_config())
        config = ConfigMap(
            self,
            "Config",
            metadata=ApiObjectMetadata(name=name, namespace=ns, labels=labels),
            data={CONFIG_FILE: text},
        )
        container = k8s.Container(
            name=name,
            image=image_uri(IMAGE, env, values.registry_host),
            image_pull_policy="IfNotPresent",
            args=config_args(),
            env=[common.env_var("AWS_REGION", values.region)],
            ports=[
                k8s.ContainerPort(name="xray-udp", container_port=names.XRAY_PORT, protocol="UDP"),
                k8s.ContainerPort(name="xray-tcp", container_port=names.XRAY_PORT, protocol="TCP"),
                k8s.ContainerPort(name="otlp-grpc", container_port=names.OTLP_GRPC_PORT, protocol="TCP"),
                k8s.ContainerPort(name="otlp-http", container_port=names.OTLP_HTTP_PORT, protocol="TCP"),
            ],
            resources=common.resources(
                cpu_request="50m", cpu_limit="500m", memory_request="128Mi", memory_limit=f"{MEMORY_LIMIT_MIB}Mi"
            ),
            **health_probes(),
            security_context=common.restricted_container_security(),
            volume_mounts=[k8s.VolumeMount(name="config", mount_path=CONFIG_DIR, read_only=True)],
        )
        # With the preStop sleep the Service stops sending before SIGTERM; the collector then flushes its batch.
        DrainingDeployment(
            self,
            "Deployment",
            metadata=common.meta(name, ns, labels=labels),
            spec=k8s.DeploymentSpec(
                replicas=replicas,
                selector=k8s.LabelSelector(match_labels=selector),
                # The new pod is ready before the old one goes: with one replica, no gap in tracing.
                strategy=common.surge_first(),
                template=k8s.PodTemplateSpec(
                    # The collector reads its config once: a changed config must roll the pods.
                    metadata=k8s.ObjectMeta(
                        labels=labels,
                        annotations=common.config_hash(text),
                    ),
                    spec=k8s.PodSpec(
                        service_account_name=name,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=common.restricted_pod_security(uid=ADOT_UID),
                        # Multi-arch image: any apps node.
                        node_selector=common.apps_node_selector(env),
                        topology_spread_constraints=common.zone_and_host_spread(
                            selector, match_label_keys=["pod-template-hash"]
                        ),
                        containers=[container],
                        volumes=[k8s.Volume(name="config", config_map=k8s.ConfigMapVolumeSource(name=config.name))],
                    ),
                ),
            ),
        )
        # The daemon's Service name and port: AWS_XRAY_DAEMON_ADDRESS of the services is unchanged.
        Service(
            self,
            "Service",
            metadata=ApiObjectMetadata(name=names.XRAY_SERVICE, namespace=ns, labels=labels),
            selector=Pods.select(self, "Pods", labels=selector),
            ports=[
                ServicePort(name="xray-udp", port=names.XRAY_PORT, target_port=names.XRAY_PORT, protocol=Protocol.UDP),
                ServicePort(name="xray-tcp", port=names.XRAY_PORT, target_port=names.XRAY_PORT, protocol=Protocol.TCP),
                ServicePort(name="otlp-grpc", port=names.OTLP_GRPC_PORT, target_port=names.OTLP_GRPC_PORT),
                ServicePort(name="otlp-http", port=names.OTLP_HTTP_PORT, target_port=names.OTLP_HTTP_PORT),
            ],
        )
        if replicas > 1:
            k8s.KubePodDisruptionBudget(
                self,
                "DisruptionBudget",
                metadata=common.meta(name, ns, labels=labels),
                spec=k8s.PodDisruptionBudgetSpec(
                    max_unavailable=common.int_or_string(1),
                    selector=k8s.LabelSelector(match_labels=selector),
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
            )

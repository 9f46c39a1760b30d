"""The X-Ray daemon: a DaemonSet on the apps nodes behind the `xray-daemon` Service the SDKs send to."""

from __future__ import annotations

from cdk8s import ApiObjectMetadata
from cdk8s_plus_27 import Pods, Protocol, Service, ServiceAccount, ServicePort, k8s
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import common, names
from k8s_charts.images import XRAY_DAEMON, image_uri
from k8s_charts.values import PlatformValues

# 3.6.x moved to the AWS SDK for Go v2, the first line that understands EKS Pod Identity credentials.
IMAGE = XRAY_DAEMON  # k8s_charts/images.py: through the stage's ECR pull-through cache
XRAY_UID = 10001  # the image's `xray` user (a name, so runAsNonRoot needs the number)


class XRayDaemon(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        ns, name = env.namespace, names.XRAY_DAEMON
        labels = common.pod_labels(name, "tracing")
        selector = common.selector_labels(name)

        account = ServiceAccount(
            self,
            "ServiceAccount",
            metadata=ApiObjectMetadata(name=name, namespace=ns, labels=labels),
            automount_token=False,
        )
        # The daemon has no HTTP endpoint; its TCP sampling proxy on the same port is the health signal.
        tcp_probe = k8s.TcpSocketAction(port=common.int_or_string(names.XRAY_PORT))
        k8s.KubeDaemonSet(
            self,
            "DaemonSet",
            metadata=common.meta(name, ns, labels=labels),
            spec=k8s.DaemonSetSpec(
                selector=k8s.LabelSelector(match_labels=selector),
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=labels),
                    spec=k8s.PodSpec(
                        service_account_name=account.name,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=common.restricted_pod_security(uid=XRAY_UID),
                        node_selector=common.apps_node_selector(env),
                        containers=[
                            k8s.Container(
                                name=name,
                                image=image_uri(IMAGE, env, values.registry_host),
                                image_pull_policy="IfNotPresent",
                                # Appended to the image's entrypoint (which binds 0.0.0.0:2000 UDP and TCP).
                                # Local mode: no EC2 metadata lookups, which the egress policy blocks anyway.
                                args=["--region", values.region, "--local-mode"],
                                env=[common.env_var("AWS_REGION", values.region)],
                                ports=[
                                    k8s.ContainerPort(name="xray-udp", container_port=names.XRAY_PORT, protocol="UDP"),
                                    k8s.ContainerPort(name="xray-tcp", container_port=names.XRAY_PORT, protocol="TCP"),
                                ],
                                resources=common.resources(
                                    cpu_request="50m", cpu_limit="250m", memory_request="64Mi", memory_limit="256Mi"
                                ),
                                readiness_probe=k8s.Probe(tcp_socket=tcp_probe, period_seconds=10),
                                liveness_probe=k8s.Probe(
                                    tcp_socket=tcp_probe, initial_delay_seconds=10, period_seconds=20
                                ),
                                security_context=common.restricted_container_security(),
                            )
                        ],
                    ),
                ),
            ),
        )
        Service(
            self,
            "Service",
            metadata=ApiObjectMetadata(name=name, namespace=ns, labels=labels),
            selector=Pods.select(self, "Pods", labels=selector),
            ports=[
                ServicePort(name="xray-udp", port=names.XRAY_PORT, target_port=names.XRAY_PORT, protocol=Protocol.UDP),
                ServicePort(name="xray-tcp", port=names.XRAY_PORT, target_port=names.XRAY_PORT, protocol=Protocol.TCP),
            ],
        )

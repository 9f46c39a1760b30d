"""One Spring Boot microservice: Deployment, Service, HPA, PDB, and the TargetGroupBinding that feeds it the NLB."""

from __future__ import annotations

from typing import Any

from cdk8s import ApiObjectMetadata
from cdk8s_plus_27 import Pods, Service, ServiceAccount, ServicePort, k8s
from constructs import Construct

from config.models import EnvironmentConfig, ServiceConfig
from k8s_charts import names
from k8s_charts.common import (
    API_COMPONENT,
    apps_node_selector,
    custom_resource,
    env_var,
    int_or_string,
    meta,
    pod_labels,
    resources,
    restricted_container_security,
    restricted_pod_security,
    scratch_volume,
    secret_env_var,
    selector_labels,
    zone_and_host_spread,
)
from k8s_charts.values import PlatformValues

# The uid the service images run as (config has no per-service uid): non-root, numeric for runAsNonRoot.
APP_UID = 1000
TGB_API_VERSION = "elbv2.k8s.aws/v1beta1"  # the version the vendored v3.5.0 CRD serves and stores
# The NLB keeps sending to a terminating pod until deregistration propagates: hold SIGTERM back that long.
PRE_STOP_SLEEP_SECONDS = 15


def pinned_image(image: str) -> str:
    """Refuse `latest` and untagged images; a whole CDK token (an asset's imageUri) is pinned by construction."""
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" in image or (":" not in last and last.startswith("${Token[") and last.endswith("]}")):
        return image
    if ":" not in last or last.rsplit(":", 1)[1] in ("", "latest"):
        raise ValueError(f"image {image!r} is not pinned: give a version tag or a digest")
    return image


def platform_env(env: EnvironmentConfig, service: ServiceConfig, values: PlatformValues) -> list[k8s.EnvVar]:
    """Wiring every service gets, then `service.env` from config (which may not override the wiring:
    a literal there could smuggle a password into git)."""
    wired = [
        env_var("SERVER_PORT", str(service.port)),
        env_var(
            "SPRING_DATASOURCE_URL",
            f"jdbc:mysql://{values.db_host}:{values.db_port}/{values.db_name}?sslMode=REQUIRED",
        ),
        secret_env_var("SPRING_DATASOURCE_USERNAME", secret=names.DB_SECRET, key=names.DB_USERNAME_KEY),
        secret_env_var("SPRING_DATASOURCE_PASSWORD", secret=names.DB_SECRET, key=names.DB_PASSWORD_KEY),
        env_var("SPRING_DATA_REDIS_HOST", values.cache_host),
        env_var("SPRING_DATA_REDIS_PORT", values.cache_port),
        secret_env_var("SPRING_DATA_REDIS_PASSWORD", secret=names.CACHE_SECRET, key=names.CACHE_AUTH_TOKEN_KEY),
        env_var("SPRING_DATA_REDIS_SSL_ENABLED", "true"),
        env_var("SPRING_KAFKA_BOOTSTRAP_SERVERS", names.kafka_bootstrap(env)),
        env_var("SPRING_KAFKA_CONSUMER_GROUP_ID", names.KAFKA_CONSUMER_GROUP),
        env_var("APP_KAFKA_TOPIC", names.KAFKA_TOPIC),
        env_var("AWS_XRAY_DAEMON_ADDRESS", names.xray_address(env)),
        # Segments named after the service, so the X-Ray sampling rule and group match them.
        env_var("AWS_XRAY_TRACING_NAME", service.name),
        env_var("AWS_REGION", values.region),
    ]
    clashes = sorted({var.name for var in wired} & set(service.env))
    if clashes:
        raise ValueError(f"services[{service.name}].env: {', '.join(clashes)} are set by the platform")
    return wired + [env_var(key, value) for key, value in service.env.items()]


class DrainingDeployment(k8s.KubeDeployment):
    """Adds a native preStop sleep (no shell needed in the image). The typed L1 classes predate that action
    (GA in Kubernetes 1.34) and strip unknown fields even from JSON patches, so it is added on render."""

    def to_json(self) -> Any:
        manifest = super().to_json()
        for container in manifest["spec"]["template"]["spec"]["containers"]:
            container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}}
        return manifest


def health_probe(path: str, *, period: int, failures: int) -> k8s.Probe:
    return k8s.Probe(
        http_get=k8s.HttpGetAction(path=path, port=k8s.IntOrString.from_string("http")),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=3,
    )


class Microservice(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        env: EnvironmentConfig,
        service: ServiceConfig,
        values: PlatformValues,
    ) -> None:
        super().__init__(scope, id)
        self.env, self.service, self.values = env, service, values
        self.labels = pod_labels(service.name, API_COMPONENT)
        self.selector = selector_labels(service.name)

        ServiceAccount(
            self,
            "ServiceAccount",
            metadata=self._metadata(names.service_account(service.name)),
            # Pod Identity projects its own token; the app never calls the Kubernetes API.
            automount_token=False,
        )
        Service(
            self,
            "Service",
            metadata=self._metadata(service.name),
            selector=Pods.select(self, "Pods", labels=self.selector),
            ports=[ServicePort(name="http", port=service.port, target_port=service.port)],
        )
        # Before the Deployment: the LB controller injects its readiness gate only into pods created after it.
        self._target_group_binding()
        self._deployment()
        self._autoscaling()

    def _metadata(self, name: str) -> ApiObjectMetadata:
        return ApiObjectMetadata(name=name, namespace=self.env.namespace, labels=self.labels)

    def _target_group_binding(self) -> None:
        port = self.service.port
        custom_resource(
            self,
            "TargetGroupBinding",
            api_version=TGB_API_VERSION,
            kind="TargetGroupBinding",
            metadata=self._metadata(self.service.name),
            spec={
                "serviceRef": {"name": self.service.name, "port": port},
                "targetGroupARN": self.values.target_group_arns[self.service.name],
                "targetType": "ip",
                # The controller opens the pods' security group to the NLB on the service port only.
                "networking": {
                    "ingress": [
                        {
                            "from": [{"securityGroup": {"groupID": self.values.nlb_security_group_id}}],
                            "ports": [{"port": port, "protocol": "TCP"}],
                        }
                    ]
                },
            },
        )

    def _deployment(self) -> None:
        env, service = self.env, self.service
        container = k8s.Container(
            name=service.name,
            image=pinned_image(self.values.images[service.name]),
            image_pull_policy="IfNotPresent",
            ports=[k8s.ContainerPort(name="http", container_port=service.port, protocol="TCP")],
            env=platform_env(env, service, self.values),
            resources=resources(
                cpu_request=service.cpu_request,
                cpu_limit=service.cpu_limit,
                memory_request=service.memory_request,
                memory_limit=service.memory_limit,
            ),
            # Spring Boot can take a minute to start on a small node: the startup probe allows 5.
            startup_probe=health_probe(service.liveness_path, period=5, failures=60),
            readiness_probe=health_probe(service.health_path, period=10, failures=3),
            liveness_probe=health_probe(service.liveness_path, period=20, failures=3),
            security_context=restricted_container_security(),
            volume_mounts=[k8s.VolumeMount(name="tmp", mount_path="/tmp")],
        )
        DrainingDeployment(
            self,
            "Deployment",
            metadata=meta(service.name, env.namespace, labels=self.labels),
            spec=k8s.DeploymentSpec(
                replicas=service.replicas,
                selector=k8s.LabelSelector(match_labels=self.selector),
                strategy=k8s.DeploymentStrategy(
                    type="RollingUpdate",
                    rolling_update=k8s.RollingUpdateDeployment(
                        max_surge=int_or_string(1), max_unavailable=int_or_string(0)
                    ),
                ),
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=self.labels),
                    spec=k8s.PodSpec(
                        service_account_name=names.service_account(service.name),
                        automount_service_account_token=False,
                        # Service links would inject KAFKA_* variables that Spring and Kafka tooling misread.
                        enable_service_links=False,
                        security_context=restricted_pod_security(uid=APP_UID),
                        node_selector=apps_node_selector(env),
                        topology_spread_constraints=zone_and_host_spread(
                            self.selector, match_label_keys=["pod-template-hash"]
                        ),
                        termination_grace_period_seconds=60,
                        containers=[container],
                        volumes=[scratch_volume("tmp")],
                    ),
                ),
            ),
        )

    def _autoscaling(self) -> None:
        service = self.service
        k8s.KubeHorizontalPodAutoscalerV2(
            self,
            "Autoscaler",
            metadata=meta(service.name, self.env.namespace, labels=self.labels),
            spec=k8s.HorizontalPodAutoscalerSpecV2(
                scale_target_ref=k8s.CrossVersionObjectReferenceV2(
                    api_version="apps/v1", kind="Deployment", name=service.name
                ),
                min_replicas=service.min_replicas,
                max_replicas=service.max_replicas,
                metrics=[
                    k8s.MetricSpecV2(
                        type="Resource",
                        resource=k8s.ResourceMetricSourceV2(
                            name="cpu",
                            target=k8s.MetricTargetV2(type="Utilization", average_utilization=service.cpu_target_pct),
                        ),
                    )
                ],
            ),
        )
        if service.replicas > 1 or service.max_replicas > 1:
            k8s.KubePodDisruptionBudget(
                self,
                "DisruptionBudget",
                metadata=meta(service.name, self.env.namespace, labels=self.labels),
                spec=k8s.PodDisruptionBudgetSpec(
                    max_unavailable=int_or_string(1),
                    selector=k8s.LabelSelector(match_labels=self.selector),
                    # A crash-looping pod must not block node drains.
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
            )

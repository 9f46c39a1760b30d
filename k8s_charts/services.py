"""One Spring Boot microservice: Deployment, Service, HPA, PDB, and the TargetGroupBinding that feeds it the NLB."""

from __future__ import annotations

from typing import Any

from cdk8s import ApiObjectMetadata
from cdk8s_plus_27 import Pods, Service, ServiceAccount, ServicePort, k8s
from constructs import Construct

from config.hosting import HealthCheckConfig, topic_variable, url_variable
from config.models import EnvironmentConfig
from config.sections import ServiceConfig
from k8s_charts import names
from k8s_charts.common import (
    API_COMPONENT,
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
    service_node_selector,
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


def dependency_env(env: EnvironmentConfig, service: ServiceConfig, values: PlatformValues) -> list[k8s.EnvVar]:
    """Exactly the variables the service's code reads, derived from `uses` alone (names: ../shared/erp-services.md).

    Nothing is injected "just in case": a variable nobody reads is noise, and a credential nobody reads is a leak.
    """
    secret = names.service_secret(service.name)
    wired = [env_var("SERVER_PORT", str(service.port))]
    for dependency in service.uses:
        if dependency == "mongodb":
            wired.append(secret_env_var("MONGODB_URI", secret=secret, key=names.MONGODB_URI_KEY))
        elif dependency == "kafka":
            wired.append(env_var("SPRING_KAFKA_BOOTSTRAP_SERVERS", names.kafka_bootstrap(env)))
            wired += [env_var(topic_variable(topic), topic) for topic in service.kafka_topics]
        elif dependency == "cache":
            # The services build their Redis connection from REDIS_HOST/REDIS_PORT only.
            wired += [env_var("REDIS_HOST", values.cache_host), env_var("REDIS_PORT", values.cache_port)]
            if not env.cache.allow_plaintext_clients:
                # TLS + AUTH: Spring Boot's own properties, read once the app uses Boot's connection factory
                # (the app-side change the README lists for production).
                wired += [
                    secret_env_var("SPRING_DATA_REDIS_PASSWORD", secret=secret, key=names.CACHE_AUTH_TOKEN_KEY),
                    env_var("SPRING_DATA_REDIS_SSL_ENABLED", "true"),
                ]
        elif dependency == "mysql":
            wired += [
                env_var(
                    "SPRING_DATASOURCE_URL",
                    f"jdbc:mysql://{values.db_host}:{values.db_port}/{values.db_name}?sslMode=REQUIRED",
                ),
                secret_env_var("SPRING_DATASOURCE_USERNAME", secret=secret, key=names.DB_USERNAME_KEY),
                secret_env_var("SPRING_DATASOURCE_PASSWORD", secret=secret, key=names.DB_PASSWORD_KEY),
            ]
        elif dependency == "xray":
            wired.append(env_var("AWS_XRAY_DAEMON_ADDRESS", names.xray_address(env)))
            # Segments named after the service, so the X-Ray sampling rule and group match them.
            wired.append(env_var("AWS_XRAY_TRACING_NAME", service.name))
        elif dependency == "employee-api":
            wired.append(env_var("EMPLOYEE_SERVICE_URL", names.employee_service_url(env)))
        else:
            callee = next(s for s in env.services if s.name == dependency)
            wired.append(env_var(url_variable(callee.name), names.service_url(env, callee.name, callee.port)))
    return wired


def platform_env(env: EnvironmentConfig, service: ServiceConfig, values: PlatformValues) -> list[k8s.EnvVar]:
    """The wiring from `uses`, then `service.env` from config (which may not override the wiring:
    a literal there could smuggle a password into git)."""
    wired = dependency_env(env, service, values)
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


def health_probe(check: HealthCheckConfig, *, period: int, failures: int) -> k8s.Probe:
    """The same check the NLB target group runs (constructs_lib.network.nlb): TCP connect, or GET on a real path."""
    port = k8s.IntOrString.from_string("http")
    if check.type == "http":
        action = {"http_get": k8s.HttpGetAction(path=check.path, port=port)}
    else:
        action = {"tcp_socket": k8s.TcpSocketAction(port=port)}
    return k8s.Probe(**action, period_seconds=period, failure_threshold=failures, timeout_seconds=3)


# A MONGODB_URI still holding the stack's placeholder stops the pod here, with this message in
# `kubectl describe pod` (the app would otherwise fall back to mongodb://localhost and fail obscurely).
MONGODB_CHECK = (
    'case "$MONGODB_URI" in mongodb://*|mongodb+srv://*) exit 0 ;; esac\n'
    'echo \'MONGODB_URI is not set (still the placeholder): put the real URI into the "uri" key of the Secrets'
    " Manager secret {secret} (README: Deploy, aws secretsmanager put-secret-value); External Secrets syncs it"
    " within 15 minutes' | tee /dev/termination-log >&2\n"
    "exit 1\n"
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
            # Named with the port: a new port replaces the target group, and the controller refuses a new ARN on
            # an existing binding, so the new group gets a new binding. The old binding is deleted with its own
            # manifest (kubectl does not prune TargetGroupBindings: k8s_charts/manifests.py).
            metadata=self._metadata(f"{self.service.name}-{port}"),
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
            # Spring Boot can take a minute to start on a small node: the startup probe allows 5. One check for all
            # three: the services have no separate liveness endpoint (and none depends on a data store).
            startup_probe=health_probe(service.health, period=5, failures=60),
            readiness_probe=health_probe(service.health, period=10, failures=3),
            liveness_probe=health_probe(service.health, period=20, failures=3),
            security_context=restricted_container_security(),
            volume_mounts=[k8s.VolumeMount(name="tmp", mount_path="/tmp")],
        )
        init_containers = None
        if "mongodb" in service.uses:
            init_containers = [
                k8s.Container(
                    name="check-mongodb-uri",
                    # The service's own image (alpine, has sh): no extra image to pull, pin or scan.
                    image=pinned_image(self.values.images[service.name]),
                    image_pull_policy="IfNotPresent",
                    command=["sh", "-c", MONGODB_CHECK.format(secret=names.mongodb_secret_name(env))],
                    env=[v for v in container.env if v.name == "MONGODB_URI"],
                    resources=resources(
                        cpu_request="10m", cpu_limit="100m", memory_request="16Mi", memory_limit="32Mi"
                    ),
                    security_context=restricted_container_security(),
                    termination_message_policy="FallbackToLogsOnError",
                )
            ]
        strategy = (
            # One pod ever: the old one stops before the new one consumes (two would split the in-memory queue).
            k8s.DeploymentStrategy(type="Recreate")
            if service.singleton
            else k8s.DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=k8s.RollingUpdateDeployment(
                    max_surge=int_or_string(1), max_unavailable=int_or_string(0)
                ),
            )
        )
        DrainingDeployment(
            self,
            "Deployment",
            metadata=meta(service.name, env.namespace, labels=self.labels),
            spec=k8s.DeploymentSpec(
                # The HPA owns the count of an autoscaled service: a `replicas` here would reset it on every
                # deploy (kubectl apply). A new Deployment starts at 1 and the HPA raises it to min_replicas.
                replicas=None if service.autoscaled else service.replicas,
                selector=k8s.LabelSelector(match_labels=self.selector),
                strategy=strategy,
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=self.labels),
                    spec=k8s.PodSpec(
                        service_account_name=names.service_account(service.name),
                        automount_service_account_token=False,
                        # Service links would inject KAFKA_* variables that Spring and Kafka tooling misread.
                        enable_service_links=False,
                        security_context=restricted_pod_security(uid=APP_UID),
                        node_selector=service_node_selector(env, service),
                        topology_spread_constraints=zone_and_host_spread(
                            self.selector, match_label_keys=["pod-template-hash"]
                        ),
                        termination_grace_period_seconds=60,
                        init_containers=init_containers,
                        containers=[container],
                        volumes=[scratch_volume("tmp")],
                    ),
                ),
            ),
        )

    def _autoscaling(self) -> None:
        service = self.service
        if not service.autoscaled:
            # Fixed size (a singleton, or min == max): an HPA could only fight the replica count.
            self._disruption_budget()
            return
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
        self._disruption_budget()

    def _disruption_budget(self) -> None:
        """maxUnavailable 1 for services that run more than one pod; none for a one-pod service, whose only
        pod may always be evicted (a budget of 0 would block node drains forever)."""
        service = self.service
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

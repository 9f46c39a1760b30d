"""`employee-service` inside the cluster: a SigV4-signing proxy to the employee Lambda's function URL.

approval-request-service calls {EMPLOYEE_SERVICE_URL}/employees/{id} and .../deduct-leave without any
token. The Lambda's function URL accepts only SigV4-signed calls (auth AWS_IAM) and, for callers arriving
that way, only those two routes. This proxy holds the one IAM identity allowed to call it (Pod Identity),
signs each request and forwards it with its path unchanged; the NetworkPolicies let only
approval-request-service reach it, and let it reach nothing but HTTPS and the Pod Identity agent.
"""

from __future__ import annotations

from cdk8s import ApiObjectMetadata
from cdk8s_plus_27 import Pods, Service, ServiceAccount, ServicePort, k8s
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import common, names
from k8s_charts.images import SIGV4_PROXY, image_uri
from k8s_charts.values import PlatformValues

PROXY_UID = 65532  # the image is FROM scratch with no USER: any non-root uid runs the static binary
PROXY_COMPONENT = "employee-proxy"


def proxy_args(env: EnvironmentConfig, values: PlatformValues) -> list[str]:
    """Sign as the `lambda` service in the stack's region for the function URL's host; path and query unchanged.

    Only flags of aws-sigv4-proxy 1.11 (kingpin, cmd/aws-sigv4-proxy/main.go at tag v1.11; recorded in
    k8s_charts/contracts/aws-sigv4-proxy.yaml and checked by tests/contracts): kingpin exits on an unknown
    flag, so one wrong name is a crash-looping pod. With both --name and --region set the proxy signs with
    them instead of guessing the service from the host."""
    return [
        "--name",
        "lambda",
        "--region",
        values.region,
        "--host",
        values.employee_function_url_host,
        "--port",
        f":{names.EMPLOYEE_PROXY_PORT}",
        # Nothing the caller sends may change how the proxy authenticates: drop any Authorization header
        # (`--strip`/`-s`, repeatable; there is no `--strip-header`).
        "--strip",
        "Authorization",
        "--log-failed-requests",
    ]


class EmployeeProxy(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        ns, name, port = env.namespace, names.EMPLOYEE_PROXY, names.EMPLOYEE_PROXY_PORT
        labels = common.pod_labels(name, PROXY_COMPONENT)
        selector = common.selector_labels(name)
        proxy = env.employee_proxy

        ServiceAccount(
            self,
            "ServiceAccount",
            metadata=ApiObjectMetadata(name=name, namespace=ns, labels=labels),
            # Pod Identity injects its own token volume; the proxy never calls the Kubernetes API.
            automount_token=False,
        )
        Service(
            self,
            "Service",
            metadata=ApiObjectMetadata(name=name, namespace=ns, labels=labels),
            selector=Pods.select(self, "Pods", labels=selector),
            ports=[ServicePort(name="http", port=port, target_port=port)],
        )
        probe = k8s.TcpSocketAction(port=common.int_or_string(port))
        k8s.KubeDeployment(
            self,
            "Deployment",
            metadata=common.meta(name, ns, labels=labels),
            spec=k8s.DeploymentSpec(
                replicas=proxy.replicas,
                selector=k8s.LabelSelector(match_labels=selector),
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=labels),
                    spec=k8s.PodSpec(
                        service_account_name=name,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=common.restricted_pod_security(uid=PROXY_UID),
                        # Multi-arch image: any apps node.
                        node_selector=common.apps_node_selector(env),
                        topology_spread_constraints=common.zone_and_host_spread(
                            selector, match_label_keys=["pod-template-hash"]
                        ),
                        containers=[
                            k8s.Container(
                                name="sigv4-proxy",
                                image=image_uri(SIGV4_PROXY, env, values.registry_host),
                                image_pull_policy="IfNotPresent",
                                args=proxy_args(env, values),
                                ports=[k8s.ContainerPort(name="http", container_port=port, protocol="TCP")],
                                resources=common.resources(
                                    cpu_request="25m", cpu_limit="250m", memory_request="32Mi", memory_limit="128Mi"
                                ),
                                readiness_probe=k8s.Probe(tcp_socket=probe, period_seconds=10, failure_threshold=3),
                                liveness_probe=k8s.Probe(tcp_socket=probe, period_seconds=20, failure_threshold=3),
                                security_context=common.restricted_container_security(),
                            )
                        ],
                    ),
                ),
            ),
        )
        if proxy.replicas > 1:
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

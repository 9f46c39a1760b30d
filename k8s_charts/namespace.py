"""The erp namespace: Pod Security `restricted`, default-deny NetworkPolicies, and only the flows the system uses.

Two charts, deployed by two stacks:

- `build_app_namespace_chart` (the Namespace object itself) is applied by the **Cluster** stack, before any
  Helm release that renders into it. Reloader runs in scoped mode (constructs_lib/cluster/reloader.py): its
  chart renders a Role and RoleBinding *inside* this namespace, so the namespace must exist when Helm installs
  Reloader, long before the Workloads stack runs (issue 18 item 1).
- `ErpNamespace` (the NetworkPolicies) stays in the Workloads stack's `namespace` chart, which no longer
  declares the Namespace: two CloudFormation resources owning one object would fight, and deleting or
  rolling back the Workloads chart would `kubectl delete` the namespace with everything in it (Reloader's
  Role, Kafka's volume claims). The Cluster stack deploys first, so on an existing environment its apply
  takes the object over (its last-applied configuration and prune label replace the Workloads chart's),
  and the Workloads chart's prune no longer selects it.
"""

from __future__ import annotations

from cdk8s import Chart
from cdk8s_plus_27 import k8s
from constructs import Construct

from config.hosting import isolated_subnet_cidrs
from config.models import EnvironmentConfig
from config.sections import ServiceConfig
from k8s_charts import names
from k8s_charts.common import (
    NAME_LABEL,
    PSA,
    int_or_string,
    meta,
    namespace,
    new_chart,
)
from k8s_charts.kafka import TOPICS_JOB
from k8s_charts.kafka_metrics import KUBELET_PORT
from k8s_charts.values import PlatformValues

ANYWHERE = "0.0.0.0/0"
# EKS Pod Identity Agent (hostNetwork, link-local): every pod using an AWS SDK fetches credentials here.
POD_IDENTITY_AGENT = "169.254.170.23/32"


def port(number: int, protocol: str = "TCP") -> k8s.NetworkPolicyPort:
    return k8s.NetworkPolicyPort(port=int_or_string(number), protocol=protocol)


def pods(labels: dict[str, str]) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=labels))


def cidr(block: str) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=block))


def aws_api_egress() -> list[k8s.NetworkPolicyEgressRule]:
    """HTTPS to AWS endpoints (public or VPC endpoints) plus the Pod Identity Agent for credentials."""
    return [
        k8s.NetworkPolicyEgressRule(to=[cidr(ANYWHERE)], ports=[port(443)]),
        k8s.NetworkPolicyEgressRule(to=[cidr(POD_IDENTITY_AGENT)], ports=[port(80)]),
    ]


def collector_ports() -> list[k8s.NetworkPolicyPort]:
    """What a tracing pod sends to the OTel collector: X-Ray segments (UDP 2000), the sampling proxy (TCP 2000),
    OTLP gRPC and HTTP (for OpenTelemetry SDKs; the Spring services use the X-Ray SDK)."""
    return [
        port(names.XRAY_PORT, "UDP"),
        port(names.XRAY_PORT),
        port(names.OTLP_GRPC_PORT),
        port(names.OTLP_HTTP_PORT),
    ]


def dns_egress() -> k8s.NetworkPolicyEgressRule:
    return k8s.NetworkPolicyEgressRule(
        to=[
            k8s.NetworkPolicyPeer(
                namespace_selector=k8s.LabelSelector(match_labels={"kubernetes.io/metadata.name": "kube-system"}),
                pod_selector=k8s.LabelSelector(match_labels={"k8s-app": "kube-dns"}),
            )
        ],
        ports=[port(53, "UDP"), port(53, "TCP")],
    )


def network_policy(
    scope: Construct,
    id: str,
    *,
    name: str,
    namespace: str,
    pod_selector: dict[str, str],
    ingress: list[k8s.NetworkPolicyIngressRule] | None = None,
    egress: list[k8s.NetworkPolicyEgressRule] | None = None,
) -> k8s.KubeNetworkPolicy:
    """An allow policy (or, with no rules, a deny) for the directions it names; the default deny covers the rest."""
    policy_types = [kind for kind, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    return k8s.KubeNetworkPolicy(
        scope,
        id,
        metadata=meta(name, namespace),
        spec=k8s.NetworkPolicySpec(
            pod_selector=k8s.LabelSelector(match_labels=pod_selector),
            policy_types=policy_types,
            ingress=ingress,
            egress=egress,
        ),
    )


def service_egress(
    env: EnvironmentConfig, service: ServiceConfig, values: PlatformValues
) -> list[k8s.NetworkPolicyEgressRule]:
    """Egress from `uses` alone: each dependency opens exactly its port to exactly its peers."""
    rules = []
    for dependency in service.uses:
        if dependency == "kafka":
            rules.append(
                k8s.NetworkPolicyEgressRule(to=[pods({NAME_LABEL: names.KAFKA})], ports=[port(names.KAFKA_PORT)])
            )
        elif dependency == "xray":
            # The collector behind the `xray-daemon` Service (k8s_charts/tracing.py).
            rules.append(
                k8s.NetworkPolicyEgressRule(to=[pods({NAME_LABEL: names.OTEL_COLLECTOR})], ports=collector_ports())
            )
        elif dependency == "cache":
            # The cache's own subnets (its subnet group is the isolated subnets), not the whole VPC (issue 18 item 19).
            rules.append(
                k8s.NetworkPolicyEgressRule(
                    to=[cidr(block) for block in isolated_subnet_cidrs(env.network)], ports=[port(names.REDIS_PORT)]
                )
            )
        elif dependency == "mysql":
            # The database's subnet group is the isolated subnets too: those, not the whole VPC.
            rules.append(
                k8s.NetworkPolicyEgressRule(
                    to=[cidr(block) for block in isolated_subnet_cidrs(env.network)], ports=[port(names.MYSQL_PORT)]
                )
            )
        elif dependency == "mongodb":
            rules.append(
                k8s.NetworkPolicyEgressRule(
                    to=[cidr(block) for block in env.mongodb.egress_cidrs], ports=[port(env.mongodb.port)]
                )
            )
        elif dependency == "employee-api":
            rules.append(
                k8s.NetworkPolicyEgressRule(
                    to=[pods({NAME_LABEL: names.EMPLOYEE_PROXY})], ports=[port(names.EMPLOYEE_PROXY_PORT)]
                )
            )
        else:
            callee = next(s for s in env.services if s.name == dependency)
            rules.append(k8s.NetworkPolicyEgressRule(to=[pods({NAME_LABEL: callee.name})], ports=[port(callee.port)]))
    # No AWS API egress: the services call no AWS API (their X-Ray SDK talks to the collector) and have no
    # Pod Identity. Add aws_api_egress() here together with an identity if that changes.
    return rules


APP_NAMESPACE_CHART = "app-namespace"


def app_namespace_labels(env: EnvironmentConfig) -> dict[str, str]:
    psa_version = f"v{env.cluster.kubernetes_version}"
    return {
        f"{PSA}/enforce": "restricted",
        f"{PSA}/enforce-version": psa_version,
        f"{PSA}/warn": "restricted",
        f"{PSA}/warn-version": psa_version,
        # The LB controller gates rollouts on NLB target health (no 5xx while pods roll).
        "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
    }


class AppNamespace(Construct):
    """The erp-{env} Namespace object alone: cluster-level, owned by the Cluster stack (module docstring)."""

    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig) -> None:
        super().__init__(scope, id)
        namespace(self, env.namespace, app_namespace_labels(env))


def build_app_namespace_chart(env: EnvironmentConfig) -> Chart:
    """Deployed by the Cluster stack before the Helm releases that render into the namespace (Reloader)."""
    chart = new_chart(env, APP_NAMESPACE_CHART)
    AppNamespace(chart, "AppNamespace", env=env)
    return chart


class ErpNamespace(Construct):
    """The namespace's NetworkPolicies (Workloads stack); the Namespace itself is `AppNamespace`'s."""

    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        ns = env.namespace

        network_policy(
            self, "DefaultDeny", name="default-deny-all", namespace=ns, pod_selector={}, ingress=[], egress=[]
        )
        network_policy(self, "Dns", name="allow-dns-egress", namespace=ns, pod_selector={}, egress=[dns_egress()])

        kafka = {NAME_LABEL: names.KAFKA}
        collector = {NAME_LABEL: names.OTEL_COLLECTOR}
        topics_job = {NAME_LABEL: TOPICS_JOB}
        proxy = {NAME_LABEL: names.EMPLOYEE_PROXY}

        def users_of(dependency: str) -> list[k8s.NetworkPolicyPeer]:
            return [pods({NAME_LABEL: s.name}) for s in env.services if dependency in s.uses]

        def service_policy(id_prefix: str, service, name: str, **rules) -> None:
            """A policy over one service's pods; its construct id is `<id_prefix>-<service>`."""
            network_policy(
                self,
                f"{id_prefix}-{service.name}",
                name=name,
                namespace=ns,
                pod_selector={NAME_LABEL: service.name},
                **rules,
            )

        for service in env.services:
            # NLB with IP targets: traffic and health checks come from its fixed private addresses, and only
            # from them (not the VPC CIDR: a pod or Lambda ENI in the VPC would skip the gateway's authorizer).
            nlb = [cidr(f"{ip}/32") for ip in values.nlb_private_ips]
            service_policy(
                "Nlb",
                service,
                f"allow-nlb-to-{service.name}",
                ingress=[k8s.NetworkPolicyIngressRule(from_=nlb, ports=[port(service.port)])],
            )
            callers = users_of(service.name)
            if callers:
                service_policy(
                    "Callers",
                    service,
                    f"allow-callers-to-{service.name}",
                    ingress=[k8s.NetworkPolicyIngressRule(from_=callers, ports=[port(service.port)])],
                )
            egress = service_egress(env, service, values)
            if egress:
                service_policy("Egress", service, f"allow-{service.name}-egress", egress=egress)

        if env.uses_employee_api:
            network_policy(
                self,
                "EmployeeProxy",
                name=f"allow-{names.EMPLOYEE_PROXY}",
                namespace=ns,
                pod_selector=proxy,
                ingress=[
                    k8s.NetworkPolicyIngressRule(
                        from_=users_of("employee-api"), ports=[port(names.EMPLOYEE_PROXY_PORT)]
                    )
                ],
                # The function URL (public Lambda endpoint, HTTPS) and the Pod Identity agent for credentials.
                egress=aws_api_egress(),
            )

        kafka_ports = [port(names.KAFKA_PORT), port(names.KAFKA_CONTROLLER_PORT)]
        network_policy(
            self,
            "Kafka",
            name="allow-kafka",
            namespace=ns,
            pod_selector=kafka,
            ingress=[
                k8s.NetworkPolicyIngressRule(
                    from_=[*users_of("kafka"), pods(topics_job)], ports=[port(names.KAFKA_PORT)]
                ),
                k8s.NetworkPolicyIngressRule(from_=[pods(kafka)], ports=kafka_ports),
            ],
            egress=[k8s.NetworkPolicyEgressRule(to=[pods(kafka)], ports=kafka_ports)],
        )
        # kafka-metrics: the exporter reads the brokers' metadata and the groups' offsets on the client port (the
        # brokers admit it with a policy of its own); the collector reads the brokers' nodes' kubelets (node
        # addresses in the VPC) and the API server (pod discovery), and writes to CloudWatch Logs.
        kafka_metrics = {NAME_LABEL: names.KAFKA_METRICS}
        network_policy(
            self,
            "KafkaMetrics",
            name=f"allow-{names.KAFKA_METRICS}-egress",
            namespace=ns,
            pod_selector=kafka_metrics,
            egress=[
                k8s.NetworkPolicyEgressRule(to=[pods(kafka)], ports=[port(names.KAFKA_PORT)]),
                k8s.NetworkPolicyEgressRule(to=[cidr(values.vpc_cidr)], ports=[port(KUBELET_PORT)]),
                *aws_api_egress(),
            ],
        )
        network_policy(
            self,
            "KafkaFromMetrics",
            name=f"allow-{names.KAFKA_METRICS}-to-kafka",
            namespace=ns,
            pod_selector=kafka,
            ingress=[k8s.NetworkPolicyIngressRule(from_=[pods(kafka_metrics)], ports=[port(names.KAFKA_PORT)])],
        )
        network_policy(
            self,
            "KafkaTopics",
            name="allow-kafka-topics-job-egress",
            namespace=ns,
            pod_selector=topics_job,
            egress=[k8s.NetworkPolicyEgressRule(to=[pods(kafka)], ports=[port(names.KAFKA_PORT)])],
        )
        network_policy(
            self,
            "OtelCollector",
            name=f"allow-{names.OTEL_COLLECTOR}",
            namespace=ns,
            pod_selector=collector,
            # An empty `from` would admit everyone: no tracing service, no ingress rule at all.
            ingress=[k8s.NetworkPolicyIngressRule(from_=users_of("xray"), ports=collector_ports())]
            if users_of("xray")
            else [],
            # X-Ray (HTTPS) and the Pod Identity agent for credentials.
            egress=aws_api_egress(),
        )

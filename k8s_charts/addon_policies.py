"""NetworkPolicies of the Helm add-ons' pods: a default deny and exactly what each controller needs (issue 18 item 19).

The add-ons (constructs_lib/cluster/: External Secrets, Reloader, the AWS Load Balancer Controller) are installed by
the Cluster stack; the Workloads stack applies these policies after them (their namespaces exist by then) and before
any object that goes through their webhooks. Enforced by the VPC CNI's network policy agent (managed_addons.py).

What each pod needs, read from the pinned charts' templates (the tags and commits of k8s_charts/contracts/):

- the API server: the client dials the `default/kubernetes` Service's ClusterIP (read from the cluster at deploy
  time) and reaches the control plane's ENIs in the cluster's subnets (the VPC CIDR), both on 443;
- admission webhooks are called by the control plane from those ENIs, straight to the pod's port: allowed from
  the VPC CIDR on that port only (the ENIs' addresses are not fixed; aws/aws-network-policy-agent#281);
- AWS APIs (Secrets Manager; ELB and EC2) on 443 through the NAT or the VPC endpoints, with credentials from the
  EKS Pod Identity Agent (169.254.170.23:80), and DNS to resolve their endpoints: only the two controllers that
  have a Pod Identity role.

Nothing else: no metrics scraping is configured, and health probes come from the kubelet. kube-system itself gets
no namespace-wide deny: it runs EKS's managed add-ons (CoreDNS answers every pod; kube-proxy, the VPC CNI and the
Pod Identity Agent run on the host network, where NetworkPolicies do not apply; the EBS CSI controller and
metrics-server follow EKS's add-on versions, not a contract read here). The deny there selects the platform's own
Helm release, the Load Balancer Controller.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_27 import k8s
from constructs import Construct

from k8s_charts import names
from k8s_charts.common import NAME_LABEL
from k8s_charts.namespace import ANYWHERE, POD_IDENTITY_AGENT, cidr, dns_egress, network_policy, port
from k8s_charts.values import PlatformValues

INSTANCE_LABEL = "app.kubernetes.io/instance"
API_SERVER_PORT = 443


@dataclass(frozen=True)
class AddonPod:
    """One Deployment of a Helm add-on: where it runs, the labels its pods carry, what it needs."""

    namespace: str
    release: str
    name: str  # app.kubernetes.io/name of its pods
    deployment: str  # the Deployment's name
    source: str  # where the labels, names and ports were read
    webhook_port: int | None = None  # the container port its admission webhook listens on
    aws_apis: bool = False  # has a Pod Identity role and calls AWS APIs

    @property
    def labels(self) -> dict[str, str]:
        return {NAME_LABEL: self.name, INSTANCE_LABEL: self.release}


ESO_SOURCE = "external-secrets helm-chart-2.9.0 (cc5bfbc2) deploy/charts/external-secrets"
EXTERNAL_SECRETS_PODS = (
    AddonPod(
        names.EXTERNAL_SECRETS_NAMESPACE,
        "external-secrets",
        "external-secrets",
        "external-secrets",
        f"{ESO_SOURCE}: _helpers.tpl external-secrets.selectorLabels; deployment.yaml (fullname = release name)",
        aws_apis=True,
    ),
    AddonPod(
        names.EXTERNAL_SECRETS_NAMESPACE,
        "external-secrets",
        "external-secrets-webhook",
        "external-secrets-webhook",
        f"{ESO_SOURCE}: external-secrets-webhook.selectorLabels; webhook-deployment.yaml; webhook.port 10250 "
        "(values.yaml, --port and containerPort)",
        webhook_port=10250,
    ),
    AddonPod(
        names.EXTERNAL_SECRETS_NAMESPACE,
        "external-secrets",
        "external-secrets-cert-controller",
        "external-secrets-cert-controller",
        f"{ESO_SOURCE}: external-secrets-cert-controller.selectorLabels; cert-controller-deployment.yaml",
    ),
)
RELOADER_NAMESPACE = "reloader"
RELOADER_PODS = (
    AddonPod(
        RELOADER_NAMESPACE,
        "reloader",
        "reloader",
        "reloader-reloader",
        "stakater/Reloader chart-v2.2.16 (655a2b38) deployments/kubernetes/chart/reloader: reloader-labels.chart "
        "(app.kubernetes.io/name = reloader-name); deployment.yaml names it reloader-fullname = <release>-<chart>",
    ),
)
LOAD_BALANCER_CONTROLLER_NAMESPACE = "kube-system"
LOAD_BALANCER_CONTROLLER_PODS = (
    AddonPod(
        LOAD_BALANCER_CONTROLLER_NAMESPACE,
        "aws-load-balancer-controller",
        "aws-load-balancer-controller",
        "aws-load-balancer-controller",
        "kubernetes-sigs/aws-load-balancer-controller v3.5.0 (11eb202c) helm/aws-load-balancer-controller: "
        "_helpers.tpl selectorLabels and fullname (the release name when it contains the chart name); "
        "webhook-server containerPort `webhookBindPort | default 9443` (templates/deployment.yaml)",
        webhook_port=9443,
        aws_apis=True,
    ),
)
ADDON_PODS = (*EXTERNAL_SECRETS_PODS, *RELOADER_PODS, *LOAD_BALANCER_CONTROLLER_PODS)
# Namespaces the add-ons own outright (created by their Helm release): denied by default as a whole.
ADDON_NAMESPACES = (names.EXTERNAL_SECRETS_NAMESPACE, RELOADER_NAMESPACE)


def api_server_egress(values: PlatformValues) -> k8s.NetworkPolicyEgressRule:
    return k8s.NetworkPolicyEgressRule(
        to=[cidr(f"{values.api_server_service_ip}/32"), cidr(values.vpc_cidr)], ports=[port(API_SERVER_PORT)]
    )


class AddonPolicies(Construct):
    def __init__(self, scope: Construct, id: str, *, values: PlatformValues) -> None:
        super().__init__(scope, id)
        for namespace in ADDON_NAMESPACES:
            network_policy(
                self,
                f"DefaultDeny-{namespace}",
                name="default-deny-all",
                namespace=namespace,
                pod_selector={},
                ingress=[],
                egress=[],
            )
        for pod in ADDON_PODS:
            if pod.namespace not in ADDON_NAMESPACES:
                # A shared namespace (kube-system): the deny selects this release's pods only.
                network_policy(
                    self,
                    f"Deny-{pod.name}",
                    name=f"default-deny-{pod.name}",
                    namespace=pod.namespace,
                    pod_selector=pod.labels,
                    ingress=[],
                    egress=[],
                )
            egress = [api_server_egress(values)]
            if pod.aws_apis:
                egress += [
                    dns_egress(),
                    # Secrets Manager / ELB / EC2 through the NAT or the VPC endpoints (the API server is 443 too).
                    k8s.NetworkPolicyEgressRule(to=[cidr(ANYWHERE)], ports=[port(443)]),
                    k8s.NetworkPolicyEgressRule(to=[cidr(POD_IDENTITY_AGENT)], ports=[port(80)]),
                ]
            ingress = None
            if pod.webhook_port is not None:
                # The control plane's ENIs in the cluster's subnets call the webhook on the pod's port.
                ingress = [k8s.NetworkPolicyIngressRule(from_=[cidr(values.vpc_cidr)], ports=[port(pod.webhook_port)])]
            network_policy(
                self,
                f"Allow-{pod.name}",
                name=f"allow-{pod.name}",
                namespace=pod.namespace,
                pod_selector=pod.labels,
                ingress=ingress,
                egress=egress,
            )

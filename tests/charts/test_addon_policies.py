"""Issue 18 item 19: the add-ons' namespaces deny by default, and each controller keeps exactly what it needs.

`allowed` evaluates the rendered NetworkPolicies the way the API defines them (a pod no policy selects for a
direction is open; a selected pod admits a peer only through some rule of a selecting policy), so each test
asks the question a broken policy would answer wrongly: can the control plane still call the webhook, can the
controller still reach the API server, and can nothing else get in or out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from constructs_lib.cluster import external_secrets, load_balancer_controller, reloader
from constructs_lib.delivery.workload_inventory import HELM_WORKLOADS
from k8s_charts.addon_policies import ADDON_NAMESPACES, ADDON_PODS, AddonPod
from tests.charts.test_namespace import POD_IDENTITY_AGENT_IPV4
from tests.support.charts import Manifest, find, selector_matches

KUBE_DNS = ("kube-system", {"k8s-app": "kube-dns"})
AWS_API = "52.95.195.109"  # a public AWS endpoint address (Secrets Manager, ELB, EC2 answer on 443)


@dataclass(frozen=True)
class Peer:
    ip: str | None = None
    namespace: str | None = None
    labels: dict | None = None


def _peer_matches(peer_spec: Manifest, policy_namespace: str, peer: Peer) -> bool:
    if "ipBlock" in peer_spec:
        block = peer_spec["ipBlock"]
        if peer.ip is None or ipaddress.ip_address(peer.ip) not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ipaddress.ip_address(peer.ip) in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.namespace is None:
        return False
    namespace_selector = peer_spec.get("namespaceSelector")
    if namespace_selector is None:
        in_namespace = peer.namespace == policy_namespace
    else:
        in_namespace = selector_matches(namespace_selector, {"kubernetes.io/metadata.name": peer.namespace})
    pod_selector = peer_spec.get("podSelector", {})
    return in_namespace and selector_matches(pod_selector, peer.labels or {})


def allowed(policies: list[Manifest], pod: AddonPod, direction: str, peer: Peer, port: int, protocol="TCP") -> bool:
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"].get("policyTypes", [])
        and selector_matches(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []) or []:
            ports = rule.get("ports")
            if ports and not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers or any(_peer_matches(s, policy["metadata"]["namespace"], peer) for s in peers):
                return True
    return False


def addon_policies(built) -> list[Manifest]:
    return find(built.chart("addon-policies"), "NetworkPolicy")


def control_plane_eni(built) -> str:
    """An address in the cluster's subnets, where EKS places the control plane's ENIs."""
    return str(next(ipaddress.ip_network(built.env.network.vpc_cidr).hosts()) + 200)


WEBHOOKS = [pod for pod in ADDON_PODS if pod.webhook_port is not None]


def test_each_add_on_namespace_denies_everything_by_default(built):
    policies = addon_policies(built)
    assert set(ADDON_NAMESPACES) == {external_secrets.ADDON.namespace, reloader.ADDON.namespace}
    for namespace in ADDON_NAMESPACES:
        (deny,) = [
            p
            for p in policies
            if p["metadata"]["namespace"] == namespace and p["metadata"]["name"] == "default-deny-all"
        ]
        assert deny["spec"]["podSelector"] == {"matchLabels": {}}
        assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        assert not deny["spec"].get("ingress") and not deny["spec"].get("egress")
    # kube-system is EKS's too: there the deny selects the platform's own release, the Load Balancer Controller.
    shared = [pod for pod in ADDON_PODS if pod.namespace not in ADDON_NAMESPACES]
    assert [pod.deployment for pod in shared] == ["aws-load-balancer-controller"]
    for pod in shared:
        (deny,) = [p for p in policies if p["metadata"]["name"] == f"default-deny-{pod.name}"]
        assert deny["metadata"]["namespace"] == "kube-system"
        assert selector_matches(deny["spec"]["podSelector"], pod.labels)
        assert not selector_matches(deny["spec"]["podSelector"], {"k8s-app": "kube-dns"})  # CoreDNS untouched


@pytest.mark.parametrize("pod", WEBHOOKS, ids=lambda pod: pod.deployment)
def test_the_control_plane_still_reaches_each_webhook_and_nobody_else_gets_in(built, pod):
    policies, eni = addon_policies(built), control_plane_eni(built)
    assert allowed(policies, pod, "Ingress", Peer(ip=eni), pod.webhook_port)
    assert not allowed(policies, pod, "Ingress", Peer(ip=eni), 8080)  # metrics: not scraped
    assert not allowed(policies, pod, "Ingress", Peer(ip="203.0.113.7"), pod.webhook_port)  # outside the VPC


@pytest.mark.parametrize("pod", ADDON_PODS, ids=lambda pod: pod.deployment)
def test_each_controller_reaches_the_api_server_and_only_what_it_needs(built, pod):
    policies, eni = addon_policies(built), control_plane_eni(built)
    cluster_ip = built.values.api_server_service_ip
    assert allowed(policies, pod, "Egress", Peer(ip=cluster_ip), 443)  # the `kubernetes` Service
    assert allowed(policies, pod, "Egress", Peer(ip=eni), 443)  # the control plane's ENIs behind it
    # AWS APIs, their DNS names and Pod Identity credentials: only the two controllers with an AWS role.
    aws = pod.aws_apis
    assert allowed(policies, pod, "Egress", Peer(ip=AWS_API), 443) is aws
    assert allowed(policies, pod, "Egress", Peer(ip=POD_IDENTITY_AGENT_IPV4.split("/")[0]), 80) is aws
    dns = Peer(namespace=KUBE_DNS[0], labels=KUBE_DNS[1])
    assert allowed(policies, pod, "Egress", dns, 53, "UDP") is aws
    # Never the data stores, the nodes' kubelets or IMDS.
    for ip, port in ((eni, 3306), (eni, 6379), (eni, 10250), ("169.254.169.254", 80)):
        assert not allowed(policies, pod, "Egress", Peer(ip=ip), port), (ip, port)
    if pod.webhook_port is None:
        assert not allowed(policies, pod, "Ingress", Peer(ip=eni), 443)


def test_the_api_server_address_is_the_value_read_from_the_cluster(tokenized):
    """The ClusterIP comes from the cluster at deploy time (CloudFormation has no attribute for the service
    range EKS picked), so the rule carries that token, not a guessed range."""
    token = tokenized.values.api_server_service_ip
    for policy in find(tokenized.chart("addon-policies"), "NetworkPolicy"):
        cidrs = [
            p["ipBlock"]["cidr"] for r in policy["spec"].get("egress", []) for p in r.get("to", []) if "ipBlock" in p
        ]
        if policy["metadata"]["name"].startswith("allow-"):
            assert f"{token}/32" in cidrs, policy["metadata"]["name"]


def test_the_pods_are_the_ones_the_add_ons_install():
    """Namespaces and release names from the add-on definitions; Deployment names from the smoke test's inventory
    (read from the same pinned charts)."""
    addons = {a.namespace: a for a in (external_secrets.ADDON, reloader.ADDON, load_balancer_controller.ADDON)}
    for pod in ADDON_PODS:
        addon = addons[pod.namespace]
        assert pod.release == addon.release_name, pod.deployment
        assert ("Deployment", pod.deployment) in HELM_WORKLOADS[addon.chart][0], pod.deployment
    rendered = {(a.chart, kind, name) for a in addons.values() for kind, name in HELM_WORKLOADS[a.chart][0]}
    assert {(c, k, n) for c, k, n in rendered if k == "Deployment"} == {
        (addons[pod.namespace].chart, "Deployment", pod.deployment) for pod in ADDON_PODS
    }


def test_the_evaluator_sees_a_missing_allow():
    pod = WEBHOOKS[0]
    deny = {
        "metadata": {"namespace": pod.namespace, "name": "d"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    assert allowed([], pod, "Ingress", Peer(ip="10.0.0.9"), pod.webhook_port)  # no policy: open
    assert not allowed([deny], pod, "Ingress", Peer(ip="10.0.0.9"), pod.webhook_port)

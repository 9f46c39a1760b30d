"""The erp namespace: restricted Pod Security, default deny, and allows that match the real ports and pods."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from config.hosting import isolated_subnet_cidrs, nlb_private_ips
from k8s_charts import build_charts, names
from k8s_charts.namespace import APP_NAMESPACE_CHART
from tests.charts.conftest import ENVIRONMENTS, build, fake_values
from tests.support.charts import find, selector_matches, workloads

# The EKS Pod Identity Agent's addresses, as AWS documents them (not the product's constant): "The agent uses the
# loopback (localhost) IP address 169.254.170.23 for IPv4 and the localhost IP address [fd00:ec2::23] for IPv6"
# (Amazon EKS User Guide, "Set up the Amazon EKS Pod Identity Agent", Considerations:
# https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html). Pods reach it over plain HTTP, port 80
# (AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials).
POD_IDENTITY_AGENT_IPV4 = "169.254.170.23/32"
POD_IDENTITY_AGENT_IPV6 = "fd00:ec2::23/128"
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


def policies(built) -> dict[str, dict]:
    return {p["metadata"]["name"]: p["spec"] for p in find(built.chart("namespace"), "NetworkPolicy")}


def pods(built) -> list:
    return [w for w in workloads(built.everything) if w.namespace == built.env.namespace]


def ports(rules: list[dict]) -> set[tuple[int, str]]:
    return {(p["port"], p.get("protocol", "TCP")) for rule in rules for p in rule.get("ports", [])}


def selected(built, spec: dict) -> set[str]:
    return {w.manifest["metadata"]["name"] for w in pods(built) if selector_matches(spec["podSelector"], w.pod_labels)}


def test_namespace_is_restricted(built):
    (namespace,) = find(built.chart(APP_NAMESPACE_CHART), "Namespace")  # the Cluster stack's chart
    assert find(built.chart("namespace"), "Namespace") == []  # the Workloads chart never owns it
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == built.env.namespace == f"erp-{built.env.name}"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{built.env.cluster.kubernetes_version}"


def test_default_deny_both_ways(built):
    deny = policies(built)["default-deny-all"]
    assert deny["podSelector"] == {"matchLabels": {}}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert not deny.get("ingress") and not deny.get("egress")
    assert selected(built, deny) == {w.manifest["metadata"]["name"] for w in pods(built)}


def test_dns_egress_for_every_pod(built):
    dns = policies(built)["allow-dns-egress"]
    assert dns["podSelector"] == {"matchLabels": {}}
    assert ports(dns["egress"]) == {(53, "UDP"), (53, "TCP")}


def test_nlb_ingress_matches_each_services_port_and_pods(built):
    nlb = {name: spec for name, spec in policies(built).items() if name.startswith("allow-nlb-to-")}
    assert len(nlb) == len(built.env.services)
    for service in built.env.services:
        spec = nlb[f"allow-nlb-to-{service.name}"]
        assert selected(built, spec) == {service.name}
        assert ports(spec["ingress"]) == {(service.port, "TCP")}
        # The NLB's own fixed addresses only: never the VPC CIDR (every pod and Lambda ENI in the VPC).
        sources = [peer["ipBlock"]["cidr"] for peer in spec["ingress"][0]["from"]]
        assert (
            sources
            == [f"{ip}/32" for ip in nlb_private_ips(built.env.network)]
            == [f"{ip}/32" for ip in built.values.nlb_private_ips]
        )
        assert len(sources) == built.env.network.az_count
    allowed = set().union(*(ports(spec["ingress"]) for spec in nlb.values()))
    assert allowed == {(s.port, "TCP") for s in built.env.services}


def egress_of(built, service_name: str) -> list[dict]:
    spec = policies(built).get(f"allow-{service_name}-egress")
    if spec is None:
        return []
    assert selected(built, spec) == {service_name}
    return spec["egress"]


def peers_selected(built, rule: dict) -> set[str]:
    found = set()
    for peer in rule["to"]:
        if "podSelector" in peer:
            found |= selected(built, {"podSelector": peer["podSelector"]})
    return found


def test_each_service_reaches_only_what_it_uses(built):
    request, processing, notification = (
        egress_of(built, s) for s in ("approval-request-service", "approval-processing-service", "notification-service")
    )
    collector = {(2000, "UDP"), (2000, "TCP"), (4317, "TCP"), (4318, "TCP")}  # X-Ray and OTLP, `xray`
    assert ports(request) == {(9092, "TCP"), (27017, "TCP"), (8081, "TCP"), (8084, "TCP")} | collector
    assert ports(processing) == {(9092, "TCP")}
    assert ports(notification) == {(names.REDIS_PORT, "TCP")} | collector
    mongo = next(r for r in request if ports([r]) == {(27017, "TCP")})
    assert [p["ipBlock"]["cidr"] for p in mongo["to"]] == built.env.mongodb.egress_cidrs
    assert peers_selected(built, next(r for r in request if ports([r]) == {(8084, "TCP")})) == {"notification-service"}
    assert peers_selected(built, next(r for r in request if ports([r]) == {(8081, "TCP")})) == {names.EMPLOYEE_PROXY}
    cache = next(r for r in notification if ports([r]) == {(names.REDIS_PORT, "TCP")})
    # Only the cache's subnets (issue 18 item 19: it was the whole VPC on 6379).
    assert cache["to"] == [{"ipBlock": {"cidr": block}} for block in isolated_subnet_cidrs(built.env.network)]
    assert built.values.vpc_cidr not in str(cache)
    # Nobody but approval-request-service may reach MongoDB, and no service reaches MySQL (none declares it).
    for spec in policies(built).values():
        for rule in spec.get("egress", []):
            if (27017, "TCP") in ports([rule]):
                assert selected(built, spec) == {"approval-request-service"}
            assert (names.MYSQL_PORT, "TCP") not in ports([rule])


def test_notification_admits_its_caller_on_8084(built):
    spec = policies(built)["allow-callers-to-notification-service"]
    assert selected(built, spec) == {"notification-service"}
    (rule,) = spec["ingress"]
    assert ports([rule]) == {(8084, "TCP")}
    assert peers_selected(built, {"to": rule["from"]}) == {"approval-request-service"}


def test_employee_proxy_admits_only_the_approval_service_and_reaches_only_aws(built):
    spec = policies(built)[f"allow-{names.EMPLOYEE_PROXY}"]
    assert selected(built, spec) == {names.EMPLOYEE_PROXY}
    (rule,) = spec["ingress"]
    assert ports([rule]) == {(names.EMPLOYEE_PROXY_PORT, "TCP")}
    assert peers_selected(built, {"to": rule["from"]}) == {"approval-request-service"}
    assert ports(spec["egress"]) == {(443, "TCP"), (80, "TCP")}


def test_kafka_reachable_by_services_and_its_job_and_talks_to_itself(built):
    spec = policies(built)["allow-kafka"]
    assert selected(built, spec) == {names.KAFKA}
    client_rule, peer_rule = spec["ingress"]
    client_sources = set()
    for peer in client_rule["from"]:
        client_sources |= selected(built, {"podSelector": peer["podSelector"]})
    assert client_sources - {n for n in client_sources if n.startswith("kafka-topics-")} == {
        s.name for s in built.env.services if "kafka" in s.uses
    }
    assert any(name.startswith("kafka-topics-") for name in client_sources)
    assert ports([client_rule]) == {(names.KAFKA_PORT, "TCP")}
    assert ports([peer_rule]) == ports(spec["egress"]) == {(9092, "TCP"), (9093, "TCP")}
    job = policies(built)["allow-kafka-topics-job-egress"]
    assert ports(job["egress"]) == {(9092, "TCP")}


def test_collector_takes_xray_and_otlp_from_tracing_services_and_reaches_aws(built):
    spec = policies(built)[f"allow-{names.OTEL_COLLECTOR}"]
    assert selected(built, spec) == {names.OTEL_COLLECTOR}
    collector = {(2000, "UDP"), (2000, "TCP"), (4317, "TCP"), (4318, "TCP")}
    assert ports(spec["ingress"]) == collector
    tracing = {s.name for s in built.env.services if "xray" in s.uses}
    (rule,) = spec["ingress"]
    assert tracing and {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]} == tracing
    collector_pods = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": names.OTEL_COLLECTOR}}}]
    for name in tracing:  # and each of them may send there (egress is default-deny too)
        egress = policies(built)[f"allow-{name}-egress"]["egress"]
        assert ports([r for r in egress if r["to"] == collector_pods]) == collector, name
    assert ports(spec["egress"]) == {(443, "TCP"), (80, "TCP")}
    identity_rule = next(r for r in spec["egress"] if ports([r]) == {(80, "TCP")})
    assert identity_rule["to"] == [{"ipBlock": {"cidr": POD_IDENTITY_AGENT_IPV4}}]


def test_link_local_egress_is_the_pod_identity_agent_alone(built):
    """Every policy of every chart: an ipBlock that touches link-local space (IMDS at 169.254.169.254 lives there)
    or the agent's IPv6 address is exactly one of the agent's documented addresses, on port 80 only."""
    agent = {POD_IDENTITY_AGENT_IPV4, POD_IDENTITY_AGENT_IPV6}
    seen = set()
    for policy in find(built.everything, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                block = peer.get("ipBlock", {}).get("cidr")
                if block is None:
                    continue
                network = ipaddress.ip_network(block)
                touches = any(network.overlaps(space) for space in LINK_LOCAL if space.version == network.version)
                if not touches and not any(network.overlaps(ipaddress.ip_network(a)) for a in agent):
                    continue
                name = policy["metadata"]["name"]
                # 0.0.0.0/0 overlaps everything; it is 443 only (test_only_pods_with_an_aws_identity_may_leave_the_vpc).
                if network.prefixlen == 0:
                    assert ports([rule]) == {(443, "TCP")}, name
                    continue
                assert block in agent, f"{name}: egress to {block}, wider than the Pod Identity Agent"
                assert ports([rule]) == {(80, "TCP")}, name
                seen.add(name)
    assert seen  # the collector at least


def test_only_pods_with_an_aws_identity_may_leave_the_vpc(built):
    """Egress beyond the VPC (443 anywhere) is granted to the OTel collector and the employee proxy alone."""
    leaving = set()
    for spec in policies(built).values():
        for rule in spec.get("egress", []):
            if any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for peer in rule.get("to", [])):
                leaving |= selected(built, spec)
    assert leaving == {names.OTEL_COLLECTOR, names.EMPLOYEE_PROXY, names.KAFKA_METRICS}
    for workload in leaving:
        assert names.pod_identity_service_accounts(built.env)[workload].namespace == built.env.namespace


def test_every_pod_port_in_the_namespace_is_opened_somewhere(built):
    """No container listens on a port that no policy admits (a forgotten allow = a silent outage)."""
    admitted = set().union(*(ports(spec.get("ingress", [])) for spec in policies(built).values()))
    for w in pods(built):
        for container in w.pod_spec["containers"]:
            for port in container.get("ports", []):
                assert (port["containerPort"], port.get("protocol", "TCP")) in admitted, (w.key, port)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_a_service_that_declares_mysql_reaches_only_the_database_on_3306(env_name):
    """No committed config declares `mysql`, so this branch of the egress policy is built here: the service that
    declares it gets one rule, to the isolated subnets the database's subnet group is made of (checked against the
    synthesized VPC in tests/infra/test_network.py), on 3306; nobody else gets 3306, nothing wider than a subnet."""
    env = build(env_name).env
    first = env.services[0].model_copy(update={"uses": [*env.services[0].uses, "mysql"]})
    with_mysql = env.model_copy(update={"services": [first, *env.services[1:]]})
    arn = f"arn:aws:secretsmanager:{env.region}:{env.account}:secret:erp/{env.name}/mysql/{first.name}-AbCdEf"
    values = dataclasses.replace(fake_values(env), mysql_secret_arns={first.name: arn})
    specs = {
        p["metadata"]["name"]: p["spec"]
        for p in find(build_charts(with_mysql, values)["namespace"].to_json(), "NetworkPolicy")
    }
    mysql = [
        (name, rule)
        for name, spec in specs.items()
        for rule in spec.get("egress", [])
        if (3306, "TCP") in ports([rule])
    ]
    assert mysql == [
        (
            f"allow-{first.name}-egress",
            {
                "to": [{"ipBlock": {"cidr": block}} for block in isolated_subnet_cidrs(env.network)],
                "ports": [{"port": 3306, "protocol": "TCP"}],
            },
        )
    ]
    vpc = ipaddress.ip_network(env.network.vpc_cidr)
    blocks = [ipaddress.ip_network(peer["ipBlock"]["cidr"]) for peer in mysql[0][1]["to"]]
    assert len(blocks) >= 2 and all(b.subnet_of(vpc) and b.prefixlen > vpc.prefixlen for b in blocks)

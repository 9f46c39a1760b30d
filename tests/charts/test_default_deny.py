"""Every namespace the charts create denies all traffic by default, the privileged logging namespace included.

The erp namespace's own test (test_namespace.py) checks its policy in detail; this one walks every
Namespace object of every chart, so a namespace added later, or one whose default-deny is removed
(as happened unnoticed for `logging` in a scratch copy), fails here.
"""

from __future__ import annotations

from k8s_charts import names
from tests.support.charts import find, selector_matches, workloads


def is_default_deny(policy: dict) -> bool:
    """Selects every pod, governs both directions, and allows nothing."""
    spec = policy["spec"]
    selects_all = spec.get("podSelector") is not None and selector_matches(spec["podSelector"], {})
    return (
        selects_all
        and sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"]
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def test_every_namespace_has_a_default_deny_policy_covering_its_pods(built):
    namespaces = {n["metadata"]["name"] for n in find(built.everything, "Namespace")}
    assert {names.LOGGING_NAMESPACE, built.env.namespace} <= namespaces  # never vacuous
    policies = find(built.everything, "NetworkPolicy")
    for namespace in sorted(namespaces):
        denies = [p for p in policies if p["metadata"].get("namespace") == namespace and is_default_deny(p)]
        assert denies, f"namespace {namespace} has no default-deny NetworkPolicy"
        pods = [w for w in workloads(built.everything) if w.namespace == namespace]
        for workload in pods:
            assert any(selector_matches(p["spec"]["podSelector"], workload.pod_labels) for p in denies), workload.key


def test_the_privileged_logging_namespace_keeps_its_default_deny(built):
    ns = names.LOGGING_NAMESPACE
    policies = [p for p in find(built.everything, "NetworkPolicy") if p["metadata"].get("namespace") == ns]
    (deny,) = [p for p in policies if is_default_deny(p)]
    assert deny["metadata"]["name"] == "default-deny-all"
    (fluent_bit,) = [w for w in workloads(built.everything) if w.key == f"{ns}/{names.FLUENT_BIT}"]
    assert selector_matches(deny["spec"]["podSelector"], fluent_bit.pod_labels)


def test_a_policy_with_any_allow_is_not_a_default_deny():
    base = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert is_default_deny({"spec": base})
    assert not is_default_deny({"spec": {**base, "egress": [{"ports": [{"port": 53}]}]}})
    assert not is_default_deny({"spec": {**base, "policyTypes": ["Ingress"]}})
    assert not is_default_deny({"spec": {**base, "podSelector": {"matchLabels": {"app": "x"}}}})

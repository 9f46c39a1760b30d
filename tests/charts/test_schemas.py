"""Every manifest is valid for the cluster's Kubernetes version, and every custom resource for its CRD."""

from __future__ import annotations

import copy

import pytest

from tests.support.charts import (
    CRD_DIR,
    KUBECTL_PAYLOAD_LIMIT,
    all_schema_violations,
    crd_version,
    find,
    is_custom_resource,
    manifest_bytes,
    schema_violations,
)

from .conftest import build


def test_every_manifest_validates(built):
    assert all_schema_violations(built.everything, built.env.cluster.kubernetes_version) == []


def test_token_values_still_validate(tokenized):
    assert all_schema_violations(tokenized.everything, tokenized.env.cluster.kubernetes_version) == []


def test_custom_resources_are_checked_against_the_vendored_crds(built):
    custom = [m for m in built.everything if is_custom_resource(m)]
    assert {(m["apiVersion"], m["kind"]) for m in custom} == {
        ("external-secrets.io/v1", "ClusterSecretStore"),
        ("external-secrets.io/v1", "ExternalSecret"),
        ("elbv2.k8s.aws/v1beta1", "TargetGroupBinding"),
    }
    assert all(crd_version(m["apiVersion"], m["kind"]) is not None for m in custom)


def test_target_group_binding_uses_the_version_the_crd_stores():
    import yaml

    crd = yaml.safe_load((CRD_DIR / "elbv2.k8s.aws_targetgroupbindings.yaml").read_text())
    stored = next(v["name"] for v in crd["spec"]["versions"] if v["storage"])
    tgbs = find(build("dev").everything, "TargetGroupBinding")
    assert tgbs and {m["apiVersion"] for m in tgbs} == {f"elbv2.k8s.aws/{stored}"}


@pytest.mark.parametrize("chart_id", ["namespace", "secrets", "kafka", "services", "logging", "tracing", "storage"])
def test_each_chart_is_well_under_the_kubectl_payload_limit(built, chart_id):
    # Half the limit: tokens resolve to longer ARNs and the handler's event adds an envelope.
    assert 0 < manifest_bytes(built.chart(chart_id)) < KUBECTL_PAYLOAD_LIMIT // 2


# --- the checks can fail -------------------------------------------------------------------------------


def _one(kind: str, name: str | None = None) -> dict:
    return copy.deepcopy(find(build("prod").everything, kind, name)[0])


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def _set(mapping: dict, key: str, value) -> None:
    mapping[key] = value


# kind, how one of its manifests is broken, a word some violation must name (None: any violation will do)
BROKEN = [
    pytest.param(
        "Deployment",
        lambda m: _set(m["spec"]["template"]["spec"]["containers"][0], "imagePullPolicyy", "Always"),
        "imagePullPolicyy",
        id="unknown-field-in-a-builtin-kind",
    ),
    pytest.param(
        "StatefulSet", lambda m: _set(m["spec"], "replicas", "three"), None, id="wrong-type-in-a-builtin-kind"
    ),
    # The API server would prune the unknown field silently and bind nothing.
    pytest.param(
        "TargetGroupBinding",
        lambda m: _rename(m["spec"], "targetGroupARN", "targetGroupArn"),
        "targetGroupArn",
        id="typo-in-a-custom-resource",
    ),
    pytest.param(
        "TargetGroupBinding", lambda m: _set(m["spec"], "targetType", "pod"), None, id="bad-enum-in-a-custom-resource"
    ),
]


@pytest.mark.parametrize(("kind", "break_it", "named"), BROKEN)
def test_a_broken_manifest_is_rejected(kind, break_it, named):
    manifest = _one(kind)
    break_it(manifest)
    violations = schema_violations(manifest, "1.35")
    assert violations != []
    assert named is None or any(named in v for v in violations)


def test_custom_resource_version_the_crd_does_not_serve_is_rejected():
    secret = _one("ExternalSecret")
    secret["apiVersion"] = "external-secrets.io/v1beta1"  # no longer served by v2.9.0
    assert schema_violations(secret, "1.35") == [
        f"ExternalSecret/{secret['metadata']['namespace']}/{secret['metadata']['name']}: "
        "no vendored CRD serves external-secrets.io/v1beta1 ExternalSecret"
    ]


@pytest.mark.parametrize("api_version", ["external-secrets.io/v1", "widgets.example.com/v1"])
def test_unknown_custom_resource_kind_is_rejected(api_version):
    widget = {"apiVersion": api_version, "kind": "Widget", "metadata": {"name": "w", "namespace": "erp-dev"}}
    assert schema_violations(widget, "1.35") != []


def test_cluster_scoped_custom_resource_with_a_namespace_is_rejected():
    store = _one("ClusterSecretStore")
    store["metadata"]["namespace"] = "erp-prod"
    assert any("takes no namespace" in v for v in schema_violations(store, "1.35"))

"""Rotation without outage on the manifests: every workload that reads a Secret is annotated for Reloader,
rolls without losing capacity, and the rollout fits well inside ElastiCache's two-token window."""

from __future__ import annotations

import math
import re

import pytest

from k8s_charts import names
from k8s_charts.reload import RELOAD_ANNOTATION, secrets_read_by
from tests.charts.conftest import build
from tests.support.charts import find

# Kubernetes' default progressDeadlineSeconds (a Deployment that sets none gets it): a rollout step that makes no
# progress for that long fails, it does not hang.
DEFAULT_PROGRESS_DEADLINE_S = 600


def _seconds(duration: str) -> int:
    """A Go duration as External Secrets' refreshInterval takes it: "15m", "1h30m", "90s"."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"not a duration: {duration!r}"
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_durations_read_as_external_secrets_reads_them():
    assert [_seconds(d) for d in ("15m", "1h", "1h30m", "90s")] == [900, 3600, 5400, 90]


def test_secret_references_are_found_everywhere_a_pod_can_read_one():
    pod = {
        "containers": [
            {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "one", "key": "k"}}}, {"name": "B"}]},
            {"envFrom": [{"secretRef": {"name": "two"}}, {"configMapRef": {"name": "not-a-secret"}}]},
        ],
        "initContainers": [{"env": [{"name": "C", "valueFrom": {"secretKeyRef": {"name": "three", "key": "k"}}}]}],
        "volumes": [
            {"name": "v", "secret": {"secretName": "four"}},  # pragma: allowlist secret (a name)
            {"name": "p", "projected": {"sources": [{"secret": {"name": "five"}}, {"configMap": {"name": "x"}}]}},
        ],
    }
    assert secrets_read_by(pod) == {"one", "two", "three", "four", "five"}


def test_every_service_deployment_reloads_on_its_secrets(built):
    """On the shipped manifests (build_charts annotates): each Deployment names exactly the Secrets it reads."""
    env = built.env
    deployments = find(built.chart("services"), "Deployment")
    assert len(deployments) >= len(env.services)
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        read = secrets_read_by(pod)
        annotation = deployment["metadata"].get("annotations", {}).get(RELOAD_ANNOTATION)
        assert (annotation.split(",") if annotation else []) == sorted(read), deployment["metadata"]["name"]
    every_secret = {s for d in deployments for s in secrets_read_by(d["spec"]["template"]["spec"])}
    # Each service reads only its own ExternalSecret-made Secret (hosting: one per service).
    assert every_secret and every_secret <= {names.service_secret(s.name) for s in env.services}


def test_reload_rollouts_keep_full_capacity(built):
    """Reloader's change is an ordinary rolling update: no pod goes before its replacement is ready."""
    for deployment in find(built.chart("services"), "Deployment"):
        if RELOAD_ANNOTATION not in deployment["metadata"].get("annotations", {}):
            continue
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container


@pytest.mark.parametrize("env_name", ["prod"])  # the environment that rotates (prod rule, tests/config)
def test_two_token_window_outlasts_sync_and_rollout(env_name):
    """The old AUTH token stays valid until the NEXT rotation; pods must have moved long before. Read from the
    shipped manifests: each ExternalSecret that syncs the cache token (its refreshInterval), and each Deployment
    that reads the Secret it makes (its most replicas, from its HPA, in surge-sized steps of at most its
    progressDeadlineSeconds)."""
    built = build(env_name)
    window_s = built.env.cache.auth_token_rotation_days * 86400
    manifests = built.everything
    refresh_by_secret = {
        external["spec"]["target"]["name"]: _seconds(external["spec"]["refreshInterval"])
        for external in find(manifests, "ExternalSecret")
        if any(item["remoteRef"]["key"] == built.values.cache_secret_arn for item in external["spec"]["data"])
    }
    assert refresh_by_secret, "no ExternalSecret syncs the cache token"
    most = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa["spec"]["maxReplicas"]
        for hpa in find(manifests, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    }
    readers = 0
    for deployment in find(manifests, "Deployment"):
        read = secrets_read_by(deployment["spec"]["template"]["spec"]) & set(refresh_by_secret)
        if not read:
            continue
        readers += 1
        name = deployment["metadata"]["name"]
        replicas = most.get(name, deployment["spec"].get("replicas", 1))
        strategy = deployment["spec"]["strategy"]
        surge = strategy["rollingUpdate"]["maxSurge"] if strategy["type"] == "RollingUpdate" else replicas
        if isinstance(surge, str):  # "25%": rounded up, as the Deployment controller does
            surge = math.ceil(replicas * int(surge.rstrip("%")) / 100)
        steps = math.ceil(replicas / surge)
        deadline = deployment["spec"].get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S)
        worst_case_s = max(refresh_by_secret[s] for s in read) + steps * deadline
        assert worst_case_s * 10 < window_s, f"{name}: {worst_case_s} s against a {window_s} s window"
    assert readers, "no Deployment reads the cache token: nothing to check"

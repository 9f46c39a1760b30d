"""Rotation without outage on the manifests: every workload that reads a Secret is annotated for Reloader,
rolls without losing capacity, and the rollout fits well inside ElastiCache's two-token window."""

from __future__ import annotations

import pytest

from config import load_environment
from k8s_charts import names
from k8s_charts.reload import RELOAD_ANNOTATION, secrets_read_by
from k8s_charts.secrets import REFRESH_INTERVAL
from tests.support.charts import find

# Kubernetes' default progressDeadlineSeconds: a rollout step that takes longer fails, it does not hang.
PROGRESS_DEADLINE_S = 600


def _seconds(interval: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(interval[:-1]) * units[interval[-1]]


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
    """The old AUTH token stays valid until the NEXT rotation; pods must have moved long before."""
    env = load_environment(env_name)
    assert env.cache.auth_token_rotation_days is not None
    window_s = env.cache.auth_token_rotation_days * 86400
    max_replicas = max(s.max_replicas for s in env.services)
    worst_case_s = _seconds(REFRESH_INTERVAL) + max_replicas * PROGRESS_DEADLINE_S
    assert worst_case_s * 10 < window_s

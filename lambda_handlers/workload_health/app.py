"""Reports, every minute, whether every workload the platform ships is rolled out and available (issue 18,
build item 4).

The pipeline's smoke test must prove the pods users depend on - the services, the employee-service SigV4
proxy, Kafka, the collectors, the controllers - and fail the stage on a crash loop. It runs in the toolchain
account with the stage's read-only CDK lookup role, outside the VPC, and prod's Kubernetes API is private.
So the reading happens here, inside the VPC: this function reads each workload through the Kubernetes API
(as its own role, mapped to AmazonEKSViewPolicy by an EKS access entry; kube_api.py, a link to
lambda_handlers/kube_api.py, makes the token and the calls) and writes one JSON report to an SSM parameter, which
the smoke test reads through the lookup role and requires to be newer than its own start (tools/smoke_check.py).

A workload is available when its controller has seen the latest spec, every replica (every scheduled node, for
a DaemonSet) runs the updated spec and is available/ready, the rollout is not stuck, and none of its pods is
crash-looping or failing to pull its image or find its configuration.

Environment:
    CLUSTER_NAME, ENDPOINT, CA_DATA   the cluster, its API endpoint and base64 CA bundle
    WORKLOADS                         JSON ["namespace/Kind/name", ...]
    PARAMETER                         the SSM parameter the report goes to
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import boto3
from kube_api import Fetch, KubeApi, KubeError, eks_token, http_fetch

# Waiting reasons of a container that will not become ready by waiting.
FAILING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
API_PATHS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
# SSM standard parameters hold 4 KB: messages are cut to fit.
MAX_REPORT = 4000
AVAILABLE = "available"
# What lets this function's role in (named when the API server refuses it).
ACCESS = "its EKS access entry (AmazonEKSViewPolicy, constructs_lib/delivery/workload_health.py)"


def workload_path(ref: str) -> tuple[str, str, str, str]:
    namespace, kind, name = ref.split("/")
    return namespace, kind, name, f"/apis/apps/v1/namespaces/{namespace}/{API_PATHS[kind]}/{name}"


def rollout_problems(kind: str, obj: dict) -> list[str]:
    """What keeps this workload from being fully rolled out and available (empty: it is)."""
    spec, status = obj.get("spec", {}), obj.get("status", {})
    generation = obj.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return ["its controller has not seen the latest spec yet"]
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        if desired == 0:
            return ["scheduled on no node"]
        counts = {"updated": status.get("updatedNumberScheduled", 0), "available": status.get("numberAvailable", 0)}
    else:
        desired = spec.get("replicas", 1)
        ready_key = "availableReplicas" if kind == "Deployment" else "readyReplicas"
        counts = {"updated": status.get("updatedReplicas", 0), "available": status.get(ready_key, 0)}
    problems = [f"{value}/{desired} {name}" for name, value in counts.items() if value < desired]
    if kind == "Deployment":
        for condition in status.get("conditions", []):
            if condition.get("reason") == "ProgressDeadlineExceeded":
                problems.append(f"rollout stuck: {condition.get('message', 'ProgressDeadlineExceeded')}")
    if kind == "StatefulSet" and status.get("currentRevision") != status.get("updateRevision"):
        problems.append(f"revision {status.get('currentRevision')} is not the update {status.get('updateRevision')}")
    return problems


def failing_pods(api: KubeApi, namespace: str, selector: dict[str, str]) -> list[str]:
    if not selector:
        return []
    query = urllib.parse.urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))})
    pods = api.get(f"/api/v1/namespaces/{namespace}/pods?{query}") or {}
    found = []
    for pod in pods.get("items", []):
        status = pod.get("status", {})
        for container in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
            waiting = container.get("state", {}).get("waiting") or {}
            if waiting.get("reason") in FAILING:
                message = (waiting.get("message") or "").splitlines()[0][:120] if waiting.get("message") else ""
                found.append(
                    f"pod {pod['metadata']['name']} container {container.get('name')}: {waiting['reason']} "
                    f"(restarts {container.get('restartCount', 0)})" + (f": {message}" if message else "")
                )
    return found


def check_workload(api: KubeApi, ref: str) -> str:
    """AVAILABLE, or what is wrong with it."""
    namespace, kind, _name, path = workload_path(ref)
    obj = api.get(path)
    if obj is None:
        return "not found (was it deployed?)"
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
    problems = rollout_problems(kind, obj) + failing_pods(api, namespace, selector)
    return "; ".join(problems) if problems else AVAILABLE


def build_report(api: KubeApi, workloads: list[str], cluster: str, now: datetime) -> dict:
    report: dict[str, Any] = {"checked_at": now.isoformat(timespec="seconds"), "cluster": cluster}
    try:
        report["workloads"] = {ref: check_workload(api, ref) for ref in workloads}
    except KubeError as error:
        report["error"] = str(error)
    return report


def fit(report: dict, limit: int = MAX_REPORT) -> str:
    """The report as JSON within SSM's limit: long messages are cut first."""
    text = json.dumps(report, separators=(",", ":"))
    cut = 300
    while len(text) > limit and cut > 20:
        workloads = {
            ref: (s if len(s) <= cut else s[: cut - 1] + "…") for ref, s in report.get("workloads", {}).items()
        }
        text = json.dumps({**report, "workloads": workloads}, separators=(",", ":"))
        cut //= 2
    return text


def handler(event, context, *, sts=None, ssm=None, fetch: Fetch = http_fetch, now=None) -> dict:  # noqa: ARG001
    cluster = os.environ["CLUSTER_NAME"]
    region = os.environ["AWS_REGION"]
    # The regional STS endpoint, as `aws eks get-token` uses: the API server calls it with the token.
    sts = sts or boto3.client("sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com")
    ssm = ssm or boto3.client("ssm")
    ca_pem = base64.b64decode(os.environ["CA_DATA"]).decode()
    api = KubeApi(os.environ["ENDPOINT"], ca_pem, lambda: eks_token(sts, cluster), fetch, access=ACCESS)
    report = build_report(api, json.loads(os.environ["WORKLOADS"]), cluster, now or datetime.now(UTC))
    ssm.put_parameter(Name=os.environ["PARAMETER"], Value=fit(report), Type="String", Overwrite=True)
    return report

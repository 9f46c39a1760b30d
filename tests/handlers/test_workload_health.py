"""The workload health reporter (issue 18, build item 4) against a stubbed Kubernetes API and botocore's Stubber.

It reads every workload through the Kubernetes API with a token made like `aws eks get-token`'s, judges it
available or says why not, and writes one JSON report to SSM for the pipeline's smoke test.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import urllib.error
import urllib.parse
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tests.handlers.conftest import load_function
from tests.support.fake_kube import FakeKube, ca_data, kube_object

APP = Path(__file__).resolve().parents[2] / "lambda_handlers" / "workload_health" / "app.py"
ENDPOINT = "https://0123456789ABCDEF.gr7.ap-northeast-2.eks.amazonaws.com"
PARAMETER = "/erp/dev/smoke/workloads"
NOW = datetime.datetime(2026, 12, 4, 9, 0, 30, tzinfo=datetime.UTC)
WORKLOADS = [
    "erp-dev/Deployment/employee-service",
    "erp-dev/StatefulSet/kafka",
    "logging/DaemonSet/fluent-bit",
    "kube-system/Deployment/aws-load-balancer-controller",
]


app = load_function(APP.parent).app  # imported as Lambda would (tests/handlers/conftest.py)


def deployment(
    namespace: str, name: str, replicas: int = 1, available: int | None = None, updated: int | None = None, **status
) -> dict:
    return kube_object(
        "Deployment",
        namespace,
        name,
        metadata={"generation": 2},
        spec={"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        status={
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas if updated is None else updated,
            "availableReplicas": replicas if available is None else available,
            **status,
        },
    )


def statefulset(namespace: str, name: str, replicas: int = 3, ready: int | None = None) -> dict:
    return kube_object(
        "StatefulSet",
        namespace,
        name,
        metadata={"generation": 1},
        spec={"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        status={
            "observedGeneration": 1,
            "readyReplicas": replicas if ready is None else ready,
            "updatedReplicas": replicas,
            "currentRevision": f"{name}-1",
            "updateRevision": f"{name}-1",
        },
    )


def daemonset(namespace: str, name: str, desired: int = 3, available: int | None = None) -> dict:
    return kube_object(
        "DaemonSet",
        namespace,
        name,
        metadata={"generation": 1},
        spec={"selector": {"matchLabels": {"app": name}}},
        status={
            "observedGeneration": 1,
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": desired,
            "numberAvailable": desired if available is None else available,
        },
    )


def pods(namespace: str, app_label: str, *containers: tuple[str, str, int]) -> list[dict]:
    """Pods of a workload (labelled app=<app_label>); each (pod name, waiting reason or '' for running, restarts)."""
    found = []
    for name, reason, restarts in containers:
        state = (
            {"waiting": {"reason": reason, "message": "back-off 5m0s restarting failed container"}}
            if reason
            else {"running": {}}
        )
        status = {"containerStatuses": [{"name": "main", "restartCount": restarts, "state": state}]}
        found.append(kube_object("Pod", namespace, name, labels={"app": app_label}, status=status))
    return found


def healthy_cluster() -> FakeKube:
    """Every workload rolled out, with running pods of its own and a crash-looping pod of someone else's."""
    return FakeKube(
        ENDPOINT,
        [
            deployment("erp-dev", "employee-service"),
            *pods("erp-dev", "employee-service", ("employee-service-7d9f-aaaaa", "", 0)),
            statefulset("erp-dev", "kafka"),
            daemonset("logging", "fluent-bit"),
            deployment("kube-system", "aws-load-balancer-controller"),
            *pods("kube-system", "not-ours", ("not-ours-1", "CrashLoopBackOff", 9)),
        ],
    )


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("CLUSTER_NAME", "erp-dev")
    monkeypatch.setenv("ENDPOINT", ENDPOINT)
    monkeypatch.setenv("CA_DATA", ca_data())
    monkeypatch.setenv("WORKLOADS", json.dumps(WORKLOADS))
    monkeypatch.setenv("PARAMETER", PARAMETER)
    monkeypatch.setenv("AWS_REGION", "ap-northeast-2")


def run(fetch) -> tuple[dict, dict]:
    """(the report returned, the report written to SSM)."""
    sts = boto3.client(
        "sts",
        region_name="ap-northeast-2",
        endpoint_url="https://sts.ap-northeast-2.amazonaws.com",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",  # noqa: S106 (fake)
    )
    ssm = boto3.client("ssm", region_name="ap-northeast-2", aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106
    written = {}
    stub = Stubber(ssm)

    def capture(**params):
        written.update(json.loads(params["Value"]))

    stub.add_response(
        "put_parameter",
        {"Version": 7},
        {"Name": PARAMETER, "Value": _any(capture), "Type": "String", "Overwrite": True},
    )
    with stub:
        result = app.handler({}, None, sts=sts, ssm=ssm, fetch=fetch, now=NOW)
    stub.assert_no_pending_responses()
    return result, written


class _any:
    """A Stubber parameter matcher that hands the value to a callback."""

    def __init__(self, callback) -> None:
        self.callback = callback

    def __eq__(self, other) -> bool:
        self.callback(Value=other)
        return True


def test_every_workload_available_is_reported_and_read_as_this_role_with_an_eks_token():
    kube = healthy_cluster()
    result, written = run(kube)
    assert written == result
    assert written["checked_at"] == "2026-12-04T09:00:30+00:00"
    assert written["workloads"] == {w: "available" for w in WORKLOADS}
    assert {r.method for r in kube.requests} == {"GET"}
    first = kube.requests[0]
    assert isinstance(first.context, ssl.SSLContext) and first.context.verify_mode == ssl.CERT_REQUIRED
    token = first.headers["Authorization"].removeprefix("Bearer ")
    assert token.startswith("k8s-aws-v1.")
    presigned = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(presigned).query)
    assert urllib.parse.urlparse(presigned).hostname == "sts.ap-northeast-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")


def test_a_crash_looping_pod_is_reported():
    kube = healthy_cluster()
    kube.put(deployment("erp-dev", "employee-service", available=0))
    kube.remove("Pod", "erp-dev", "employee-service-7d9f-aaaaa")
    for pod in pods("erp-dev", "employee-service", ("employee-service-7d9f-abcde", "CrashLoopBackOff", 6)):
        kube.put(pod)
    _, written = run(kube)
    state = written["workloads"]["erp-dev/Deployment/employee-service"]
    assert state.startswith(
        "0/1 available; pod employee-service-7d9f-abcde container main: CrashLoopBackOff (restarts 6)"
    )


def test_a_pod_that_cannot_pull_its_image_is_reported_while_the_old_pods_serve():
    kube = healthy_cluster()
    kube.put(deployment("kube-system", "aws-load-balancer-controller", replicas=2, available=2, updated=1))
    for pod in pods("kube-system", "aws-load-balancer-controller", ("old-1", "", 0), ("old-2", "", 0), ("new-1", "ImagePullBackOff", 0)):  # fmt: skip
        kube.put(pod)
    _, written = run(kube)
    state = written["workloads"]["kube-system/Deployment/aws-load-balancer-controller"]
    assert "1/2 updated" in state and "pod new-1 container main: ImagePullBackOff" in state


@pytest.mark.parametrize(
    ("workload", "obj", "expected"),
    [
        ("erp-dev/StatefulSet/kafka", statefulset("erp-dev", "kafka", ready=2), "2/3 available"),
        ("logging/DaemonSet/fluent-bit", daemonset("logging", "fluent-bit", desired=0), "scheduled on no node"),
        ("erp-dev/Deployment/employee-service", None, "not found (was it deployed?)"),
        (
            "erp-dev/Deployment/employee-service",
            deployment("erp-dev", "employee-service", available=0, conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing."}]),
            "0/1 available; rollout stuck: ReplicaSet has timed out progressing.",
        ),
        (
            "erp-dev/Deployment/employee-service",
            {**deployment("erp-dev", "employee-service"), "metadata": {"name": "employee-service", "namespace": "erp-dev", "generation": 3}},
            "its controller has not seen the latest spec yet",
        ),
    ],
)  # fmt: skip
def test_a_workload_not_rolled_out_is_reported(workload, obj, expected):
    kube = healthy_cluster()
    namespace, kind, name = workload.split("/")
    if obj is None:
        kube.remove(kind, namespace, name)
    else:
        kube.put(obj)
    _, written = run(kube)
    assert written["workloads"][workload] == expected
    assert [w for w, s in written["workloads"].items() if s != "available"] == [workload]


def test_no_access_entry_is_reported_as_an_error_naming_it():
    kube = healthy_cluster()
    kube.refuse = {"*": 403}
    _, written = run(kube)
    assert "workloads" not in written
    assert written["error"] == (
        "the Kubernetes API refused this function's role (403) on GET "
        "/apis/apps/v1/namespaces/erp-dev/deployments/employee-service: its EKS access entry "
        "(AmazonEKSViewPolicy, constructs_lib/delivery/workload_health.py) must exist"
    )


def test_an_unreachable_endpoint_is_reported_as_an_error():
    kube = healthy_cluster()
    kube.refuse = {"*": urllib.error.URLError(TimeoutError("timed out"))}
    _, written = run(kube)
    assert written["error"].startswith(f"cannot reach the cluster API at {ENDPOINT}")


def test_the_report_fits_an_ssm_standard_parameter():
    report = {
        "checked_at": "x",
        "workloads": {f"ns/Deployment/w{i}": "pod p: CrashLoopBackOff " * 40 for i in range(20)},
    }
    text = app.fit(report)
    assert len(text) <= app.MAX_REPORT
    assert set(json.loads(text)["workloads"]) == set(report["workloads"])

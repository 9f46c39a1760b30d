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


def ca_pem() -> str:
    """A self-signed certificate standing in for the cluster's CA (the TLS context must load it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def deployment(
    name: str, replicas: int = 1, available: int | None = None, updated: int | None = None, **status
) -> dict:
    return {
        "metadata": {"name": name, "generation": 2},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas if updated is None else updated,
            "availableReplicas": replicas if available is None else available,
            **status,
        },
    }


def statefulset(name: str, replicas: int = 3, ready: int | None = None) -> dict:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": replicas if ready is None else ready,
            "updatedReplicas": replicas,
            "currentRevision": f"{name}-1",
            "updateRevision": f"{name}-1",
        },
    }


def daemonset(name: str, desired: int = 3, available: int | None = None) -> dict:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": name}}},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": desired,
            "numberAvailable": desired if available is None else available,
        },
    }


def pods(*containers: tuple[str, str, int]) -> dict:
    """Pods of a workload; each (pod name, waiting reason or '' for running, restarts)."""
    items = []
    for name, reason, restarts in containers:
        state = (
            {"waiting": {"reason": reason, "message": "back-off 5m0s restarting failed container"}}
            if reason
            else {"running": {}}
        )
        items.append(
            {
                "metadata": {"name": name},
                "status": {"containerStatuses": [{"name": "main", "restartCount": restarts, "state": state}]},
            }
        )
    return {"items": items}  # fmt: skip


def healthy_cluster() -> dict[str, dict]:
    return {
        "/apis/apps/v1/namespaces/erp-dev/deployments/employee-service": deployment("employee-service"),
        "/apis/apps/v1/namespaces/erp-dev/statefulsets/kafka": statefulset("kafka"),
        "/apis/apps/v1/namespaces/logging/daemonsets/fluent-bit": daemonset("fluent-bit"),
        "/apis/apps/v1/namespaces/kube-system/deployments/aws-load-balancer-controller": deployment(
            "aws-load-balancer-controller"
        ),
    }


class FakeKube:
    """The API server: path -> object; pods are running unless `pods:<ns>:<selector>` says otherwise."""

    def __init__(self, objects: dict[str, dict], status: int = 200) -> None:
        self.objects, self.status = objects, status
        self.requests: list[tuple[str, dict, object]] = []

    def __call__(self, url: str, headers: dict, context) -> tuple[int, bytes]:
        self.requests.append((url, headers, context))
        assert url.startswith(ENDPOINT)
        path = url.removeprefix(ENDPOINT)
        if self.status != 200:
            return self.status, b'{"kind":"Status","reason":"Forbidden"}'
        if "/pods?" in path:
            namespace = path.split("/namespaces/")[1].split("/")[0]
            selector = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)["labelSelector"][0]
            return 200, json.dumps(self.objects.get(f"pods:{namespace}:{selector}", pods())).encode()
        if path not in self.objects:
            return 404, b'{"kind":"Status","reason":"NotFound"}'
        return 200, json.dumps(self.objects[path]).encode()


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("CLUSTER_NAME", "erp-dev")
    monkeypatch.setenv("ENDPOINT", ENDPOINT)
    monkeypatch.setenv("CA_DATA", base64.b64encode(ca_pem().encode()).decode())
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
    kube = FakeKube(healthy_cluster())
    result, written = run(kube)
    assert written == result
    assert written["checked_at"] == "2026-12-04T09:00:30+00:00"
    assert written["workloads"] == {w: "available" for w in WORKLOADS}
    url, headers, context = kube.requests[0]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    token = headers["Authorization"].removeprefix("Bearer ")
    assert token.startswith("k8s-aws-v1.")
    presigned = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(presigned).query)
    assert urllib.parse.urlparse(presigned).hostname == "sts.ap-northeast-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")


def test_a_crash_looping_pod_is_reported():
    broken = healthy_cluster()
    broken["/apis/apps/v1/namespaces/erp-dev/deployments/employee-service"] = deployment(
        "employee-service", available=0
    )
    broken["pods:erp-dev:app=employee-service"] = pods(("employee-service-7d9f-abcde", "CrashLoopBackOff", 6))
    _, written = run(FakeKube(broken))
    state = written["workloads"]["erp-dev/Deployment/employee-service"]
    assert state.startswith(
        "0/1 available; pod employee-service-7d9f-abcde container main: CrashLoopBackOff (restarts 6)"
    )


def test_a_pod_that_cannot_pull_its_image_is_reported_while_the_old_pods_serve():
    rolling = healthy_cluster()
    path = "/apis/apps/v1/namespaces/kube-system/deployments/aws-load-balancer-controller"
    rolling[path] = deployment("aws-load-balancer-controller", replicas=2, available=2, updated=1)
    rolling["pods:kube-system:app=aws-load-balancer-controller"] = pods(("old-1", "", 0), ("old-2", "", 0), ("new-1", "ImagePullBackOff", 0))  # fmt: skip
    _, written = run(FakeKube(rolling))
    state = written["workloads"]["kube-system/Deployment/aws-load-balancer-controller"]
    assert "1/2 updated" in state and "pod new-1 container main: ImagePullBackOff" in state


@pytest.mark.parametrize(
    ("path", "obj", "workload", "expected"),
    [
        ("/apis/apps/v1/namespaces/erp-dev/statefulsets/kafka", statefulset("kafka", ready=2), "erp-dev/StatefulSet/kafka", "2/3 available"),
        ("/apis/apps/v1/namespaces/logging/daemonsets/fluent-bit", daemonset("fluent-bit", desired=0), "logging/DaemonSet/fluent-bit", "scheduled on no node"),
        ("/apis/apps/v1/namespaces/erp-dev/deployments/employee-service", None, "erp-dev/Deployment/employee-service", "not found (was it deployed?)"),
        (
            "/apis/apps/v1/namespaces/erp-dev/deployments/employee-service",
            deployment("employee-service", available=0, conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing."}]),
            "erp-dev/Deployment/employee-service",
            "0/1 available; rollout stuck: ReplicaSet has timed out progressing.",
        ),
        (
            "/apis/apps/v1/namespaces/erp-dev/deployments/employee-service",
            {**deployment("employee-service"), "metadata": {"name": "employee-service", "generation": 3}},
            "erp-dev/Deployment/employee-service",
            "its controller has not seen the latest spec yet",
        ),
    ],
)  # fmt: skip
def test_a_workload_not_rolled_out_is_reported(path, obj, workload, expected):
    cluster = healthy_cluster()
    if obj is None:
        del cluster[path]
    else:
        cluster[path] = obj
    _, written = run(FakeKube(cluster))
    assert written["workloads"][workload] == expected
    assert [w for w, s in written["workloads"].items() if s != "available"] == [workload]


def test_no_access_entry_is_reported_as_an_error():
    _, written = run(FakeKube(healthy_cluster(), status=403))
    assert "workloads" not in written
    assert written["error"].startswith("the Kubernetes API refused this function's role (403)")
    assert "AmazonEKSViewPolicy" in written["error"]


def test_an_unreachable_endpoint_is_reported_as_an_error():
    def unreachable(url, headers, context):
        raise urllib.error.URLError(TimeoutError("timed out"))

    _, written = run(unreachable)
    assert written["error"].startswith(f"cannot reach the cluster API at {ENDPOINT}")


def test_the_report_fits_an_ssm_standard_parameter():
    report = {
        "checked_at": "x",
        "workloads": {f"ns/Deployment/w{i}": "pod p: CrashLoopBackOff " * 40 for i in range(20)},
    }
    text = app.fit(report)
    assert len(text) <= app.MAX_REPORT
    assert set(json.loads(text)["workloads"]) == set(report["workloads"])

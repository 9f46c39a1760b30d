"""The Kubernetes version guard (issue 24 item 3): the inline handler, as synthesized, against moto's EKS.

A downgrade or a jump of more than one minor answers FAILED with one line before the control plane is touched;
the same minor, the next one, or no cluster yet answers SUCCESS; Delete always succeeds.
"""

from __future__ import annotations

import sys
import types

import boto3
import pytest
from moto import mock_aws

from constructs_lib.cluster.version_guard import GUARD_CODE
from tests.support.aws import use_fake_credentials

REGION = "ap-northeast-2"
CLUSTER = "erp-dev"


@pytest.fixture
def guard(monkeypatch):
    """The inline code, run as Lambda would, with a `cfnresponse` that records what CloudFormation would get."""
    use_fake_credentials(monkeypatch, REGION)
    sent: list[dict] = []
    fake = types.ModuleType("cfnresponse")
    fake.SUCCESS, fake.FAILED = "SUCCESS", "FAILED"

    def send(event, context, status, data, physical_id, reason=None):
        sent.append({"status": status, "data": data, "physical": physical_id, "reason": reason})

    fake.send = send
    monkeypatch.setitem(sys.modules, "cfnresponse", fake)
    namespace: dict = {}
    with mock_aws():
        exec(compile(GUARD_CODE, "index.py", "exec"), namespace)  # noqa: S102 (the synthesized inline code)
        yield namespace, sent


def running(version: str) -> None:
    eks = boto3.client("eks", region_name=REGION)
    eks.create_cluster(
        name=CLUSTER,
        version=version,
        roleArn="arn:aws:iam::111111111111:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]},
    )


def event(request: str, version: str) -> dict:
    return {"RequestType": request, "ResourceProperties": {"ClusterName": CLUSTER, "Version": version}}


@pytest.mark.parametrize(
    ("live", "target", "status", "reason"),
    [
        (None, "1.36", "SUCCESS", None),  # first deploy: no cluster yet
        ("1.36", "1.36", "SUCCESS", None),
        ("1.35", "1.36", "SUCCESS", None),  # the one-minor step
        (
            "1.36",
            "1.35",
            "FAILED",
            "kubernetes_version 1.35 is older than the running cluster's 1.36: EKS cannot downgrade a cluster",
        ),
        (
            "1.35",
            "1.37",
            "FAILED",
            "kubernetes_version 1.37 is 2 minors past the running cluster's 1.35: EKS upgrades one minor at a time "
            "(set 1.36 first)",
        ),
    ],
)
def test_the_guard_lets_one_minor_forward_and_refuses_the_rest(guard, live, target, status, reason):
    namespace, sent = guard
    if live:
        running(live)
    namespace["handler"](event("Update", target), None)
    (answer,) = sent
    assert answer["status"] == status
    if reason:
        assert answer["reason"].startswith(reason) and "\n" not in answer["reason"]
    assert answer["physical"] == f"kubernetes-version-guard-{CLUSTER}"


def test_delete_always_succeeds_without_reading_the_cluster(guard):
    namespace, sent = guard
    namespace["handler"](event("Delete", "1.20"), None)
    assert [a["status"] for a in sent] == ["SUCCESS"]

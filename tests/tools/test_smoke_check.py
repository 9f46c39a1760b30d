"""The post-deploy smoke check against botocore's Stubber: real request/response shapes, no AWS."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from tools import smoke_check

STACK = "erp-dev-api"
ARN = "arn:aws:elasticloadbalancing:ap-northeast-2:111111111111:targetgroup/{}/0123456789abcdef"


def tg(logical_id: str) -> dict:
    return {
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": ARN.format(logical_id[:20]),
        "ResourceType": "AWS::ElasticLoadBalancingV2::TargetGroup",
        "LastUpdatedTimestamp": "2026-11-29T00:00:00Z",
        "ResourceStatus": "CREATE_COMPLETE",
    }


def other(logical_id: str, kind: str) -> dict:
    return {**tg(logical_id), "ResourceType": kind, "PhysicalResourceId": logical_id}


def target(ip: str, state: str, reason: str | None = None) -> dict:
    health = {"State": state, **({"Reason": reason} if reason else {})}
    return {"Target": {"Id": ip, "Port": 8082}, "TargetHealth": health}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def run(capsys, resources: list[dict], health_rounds: list[dict[str, list[dict]]], max_wait: int = 60):
    """health_rounds: per poll, target group logical id -> its targets."""
    cloudformation = boto3.client("cloudformation", region_name="ap-northeast-2")
    elbv2 = boto3.client("elbv2", region_name="ap-northeast-2")
    cfn_stub, elb_stub = Stubber(cloudformation), Stubber(elbv2)
    cfn_stub.add_response("list_stack_resources", {"StackResourceSummaries": resources}, {"StackName": STACK})
    groups = sorted(
        (r["LogicalResourceId"], r["PhysicalResourceId"]) for r in resources if "TargetGroup" in r["ResourceType"]
    )
    for round_ in health_rounds:
        for logical_id, arn in groups:
            elb_stub.add_response(
                "describe_target_health",
                {"TargetHealthDescriptions": round_[logical_id]},
                {"TargetGroupArn": arn},
            )
    clock = Clock()
    with cfn_stub, elb_stub:
        code = smoke_check.main(
            ["--stack", STACK, "--max-wait", str(max_wait), "--poll", "15"],
            cloudformation=cloudformation,
            elbv2=elbv2,
            now=clock.now,
            sleep=clock.sleep,
        )
        elb_stub.assert_no_pending_responses()
    return code, capsys.readouterr().out.splitlines()


RESOURCES = [
    tg("ApprovalRequestTargets"),
    tg("NotificationTargets"),
    other("Nlb", "AWS::ElasticLoadBalancingV2::LoadBalancer"),
]


def test_passes_when_every_service_has_a_healthy_target(capsys):
    healthy = {
        "ApprovalRequestTargets": [target("10.10.1.5", "healthy")],
        "NotificationTargets": [target("10.10.2.7", "healthy")],
    }
    code, out = run(capsys, RESOURCES, [healthy])
    assert code == 0
    assert out[-1].startswith("smoke check: PASS")


def test_fails_when_no_pod_runs(capsys):
    """ImagePullBackOff / Pending pods are never Ready, so the binding registers no target: the stage fails."""
    empty = {"ApprovalRequestTargets": [], "NotificationTargets": []}
    # 60 s budget, 15 s polls: the first read and four more before giving up.
    code, out = run(capsys, RESOURCES, [empty] * 5)
    assert code == 1
    assert out[-1] == "smoke check: FAIL"
    assert "ApprovalRequestTargets: no targets registered (no pod of this service is Ready)" in out


def test_fails_when_one_service_stays_unhealthy(capsys):
    round_ = {
        "ApprovalRequestTargets": [target("10.10.1.5", "healthy")],
        "NotificationTargets": [target("10.10.2.7", "unhealthy", "Target.FailedHealthChecks")],
    }
    code, out = run(capsys, RESOURCES, [round_] * 5)
    assert code == 1
    assert "NotificationTargets: 0/1 healthy (10.10.2.7:8082 unhealthy (Target.FailedHealthChecks))" in out


def test_waits_for_pods_that_are_still_starting(capsys):
    starting = {
        "ApprovalRequestTargets": [target("10.10.1.5", "initial", "Elb.RegistrationInProgress")],
        "NotificationTargets": [],
    }
    ready = {
        "ApprovalRequestTargets": [target("10.10.1.5", "healthy")],
        "NotificationTargets": [target("10.10.2.7", "healthy")],
    }
    code, out = run(capsys, RESOURCES, [starting, starting, ready])
    assert code == 0


def test_a_stack_without_target_groups_fails(capsys):
    code, out = run(capsys, [other("Nlb", "AWS::ElasticLoadBalancingV2::LoadBalancer")], [])
    assert code == 1
    assert "no target groups found" in out[0]


@pytest.mark.parametrize("error", ["AccessDenied", "ValidationError"])
def test_aws_errors_fail_closed(capsys, error):
    cloudformation = boto3.client("cloudformation", region_name="ap-northeast-2")
    stub = Stubber(cloudformation)
    stub.add_client_error("list_stack_resources", service_error_code=error, expected_params={"StackName": STACK})
    with stub:
        code = smoke_check.main(["--stack", STACK], cloudformation=cloudformation, elbv2=object())
    assert code == 1
    assert capsys.readouterr().out.startswith(f"smoke check: FAIL (AWS error: An error occurred ({error})")

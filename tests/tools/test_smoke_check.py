"""The post-deploy smoke check against botocore's Stubber: real request/response shapes, no AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

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


# --- the workloads: the report the stage's reporter writes from inside the VPC (issue 18, build item 4) ----

PARAMETER = "/erp/dev/smoke/workloads"
WORKLOADS = ["erp-dev/Deployment/employee-service", "erp-dev/StatefulSet/kafka", "logging/DaemonSet/fluent-bit"]
HEALTHY = {"ApprovalRequestTargets": [target("10.10.1.5", "healthy")], "NotificationTargets": [target("10.10.2.7", "healthy")]}  # fmt: skip
STARTED = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)


def report(at: datetime | None, **states: str) -> dict:
    """A report checked at `at`; every workload available unless a state is given (by its name)."""
    workloads = {w: states.get(w.rsplit("/", 1)[1].replace("-", "_"), "available") for w in WORKLOADS}
    return {"checked_at": at.isoformat() if at else None, "cluster": "erp-dev", "workloads": workloads}


def run_with_reports(capsys, reports: list, max_wait: int = 60):
    """reports: what the parameter holds at each poll (a dict, or a raw string)."""
    cloudformation = boto3.client("cloudformation", region_name="ap-northeast-2")
    elbv2 = boto3.client("elbv2", region_name="ap-northeast-2")
    ssm = boto3.client("ssm", region_name="ap-northeast-2")
    cfn_stub, elb_stub, ssm_stub = Stubber(cloudformation), Stubber(elbv2), Stubber(ssm)
    cfn_stub.add_response("list_stack_resources", {"StackResourceSummaries": RESOURCES}, {"StackName": STACK})
    groups = sorted(
        (r["LogicalResourceId"], r["PhysicalResourceId"]) for r in RESOURCES if "TargetGroup" in r["ResourceType"]
    )
    for value in reports:
        for logical_id, arn in groups:
            elb_stub.add_response(
                "describe_target_health", {"TargetHealthDescriptions": HEALTHY[logical_id]}, {"TargetGroupArn": arn}
            )
        text = value if isinstance(value, str) else json.dumps(value)
        ssm_stub.add_response(
            "get_parameter", {"Parameter": {"Name": PARAMETER, "Value": text, "Type": "String"}}, {"Name": PARAMETER}
        )
    clock = Clock()
    argv = ["--stack", STACK, "--max-wait", str(max_wait), "--poll", "15", "--health-parameter", PARAMETER]
    for workload in WORKLOADS:
        argv += ["--workload", workload]
    with cfn_stub, elb_stub, ssm_stub:
        code = smoke_check.main(
            argv,
            cloudformation=cloudformation,
            elbv2=elbv2,
            ssm=ssm,
            now=clock.now,
            sleep=clock.sleep,
            utcnow=lambda: STARTED,
        )
        ssm_stub.assert_no_pending_responses()
    return code, capsys.readouterr().out.splitlines()


def test_passes_when_a_fresh_report_shows_every_workload_available(capsys):
    code, out = run_with_reports(capsys, [report(STARTED + timedelta(seconds=20))])
    assert code == 0, out
    assert out[-1] == "smoke check: PASS (every service has a healthy target, every workload is available)"
    assert "erp-dev/Deployment/employee-service: available" in out


def test_a_crash_looping_pod_fails_the_stage_though_every_target_group_is_healthy(capsys):
    """The employee-service proxy (item 12) has no target group: before, the smoke test stayed green."""
    crash = "0/1 available; pod employee-service-7d9f-abcde container proxy: CrashLoopBackOff (restarts 6)"
    broken = report(STARTED + timedelta(seconds=30), employee_service=crash)
    code, out = run_with_reports(capsys, [broken] * 5)
    assert code == 1
    assert out[-1] == "smoke check: FAIL"
    assert f"erp-dev/Deployment/employee-service: {crash}" in out


def test_a_report_from_before_the_deploy_does_not_count(capsys):
    """A report written before this check started describes the old pods: wait for a newer one."""
    code, out = run_with_reports(capsys, [report(STARTED - timedelta(seconds=5))] * 5)
    assert code == 1
    assert any(line.startswith("workloads: no report newer than 2026-12-04T09:00:00+00:00 yet") for line in out)


def test_waits_for_a_fresh_report_and_for_workloads_still_rolling_out(capsys):
    rolling = report(STARTED + timedelta(seconds=40), kafka="1/3 available")
    reports = [report(None), rolling, report(STARTED + timedelta(seconds=100))]
    code, out = run_with_reports(capsys, reports)
    assert code == 0, out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"checked_at": "2026-12-04T09:00:30+00:00", "error": "the Kubernetes API refused this function's role (403)"}, "workloads: the reporter could not read the cluster: the Kubernetes API refused"),
        ({"checked_at": "2026-12-04T09:00:30+00:00", "workloads": {}}, "erp-dev/Deployment/employee-service: not in the report"),
        ("not json", "workloads: /erp/dev/smoke/workloads does not hold a report"),
    ],
)  # fmt: skip
def test_a_report_that_cannot_prove_the_workloads_fails(capsys, value, expected):
    code, out = run_with_reports(capsys, [value] * 5)
    assert code == 1
    assert any(line.startswith(expected) for line in out), out


def test_a_missing_parameter_fails_closed(capsys):
    cloudformation = boto3.client("cloudformation", region_name="ap-northeast-2")
    ssm = boto3.client("ssm", region_name="ap-northeast-2")
    cfn_stub, ssm_stub = Stubber(cloudformation), Stubber(ssm)
    cfn_stub.add_response("list_stack_resources", {"StackResourceSummaries": RESOURCES}, {"StackName": STACK})
    ssm_stub.add_client_error("get_parameter", service_error_code="ParameterNotFound")

    class Healthy:
        def describe_target_health(self, TargetGroupArn):  # noqa: N803 (boto3's name)
            return {"TargetHealthDescriptions": [target("10.10.1.5", "healthy")]}

    with cfn_stub, ssm_stub:
        code = smoke_check.main(
            ["--stack", STACK, "--health-parameter", PARAMETER, "--workload", WORKLOADS[0]],
            cloudformation=cloudformation,
            elbv2=Healthy(),
            ssm=ssm,
        )
    assert code == 1
    assert "ParameterNotFound" in capsys.readouterr().out


def test_a_workload_needs_the_report_parameter(capsys):
    with pytest.raises(SystemExit):
        smoke_check.main(["--stack", STACK, "--workload", "erp-dev/Deployment/x"])
    assert "--workload needs --health-parameter" in capsys.readouterr().err

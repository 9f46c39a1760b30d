"""The pre-deploy awake check of a sleeping stage, against botocore's Stubber (no AWS)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from config import load_environment
from constructs_lib.cluster.addon_readiness import GATE_TIMEOUT
from constructs_lib.cluster.helm_addon import HELM_TIMEOUT
from tests.conftest import REPO, resources_of
from tools import awake_check

ARGS = ["--cluster", "erp-dev", "--scheduler-stack", "erp-dev-cluster"]
# 2026-12-07 is a Monday; Asia/Seoul is UTC+9.
MONDAY_10_00 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
MONDAY_19_30 = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
SATURDAY_19_30 = datetime(2026, 12, 12, 10, 30, tzinfo=UTC)


def group(name: str, desired: int) -> dict:
    return {"nodegroup": {"nodegroupName": name, "scalingConfig": {"minSize": 0, "maxSize": 3, "desiredSize": desired}}}


def schedule(action: str, expression: str, state: str = "ENABLED") -> dict:
    return {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": "Asia/Seoul",
            "State": state,
            "Target": {"Arn": {"Fn::GetAtt": ["Scaler", "Arn"]}, "Input": json.dumps({"action": action})},
        },
    }


NIGHT = {
    "Resources": {
        "NightScheduleStart": schedule("start", "cron(0 8 ? * MON-FRI *)"),
        "NightScheduleStop": schedule("stop", "cron(0 20 ? * MON-FRI *)"),
    }
}


def awake(stub: Stubber) -> None:
    stub.add_response("list_nodegroups", {"nodegroups": ["apps-abc"]}, {"clusterName": "erp-dev"})
    stub.add_response(
        "describe_nodegroup", group("apps-abc", 2), {"clusterName": "erp-dev", "nodegroupName": "apps-abc"}
    )


def run(capsys, setup, *, template: dict | None = NIGHT, now=MONDAY_10_00, argv=ARGS) -> tuple[int, str]:
    eks = boto3.client("eks", region_name="ap-northeast-2")
    cloudformation = boto3.client("cloudformation", region_name="ap-northeast-2")
    stub, cfn_stub = Stubber(eks), Stubber(cloudformation)
    setup(stub)
    if template is not None:
        cfn_stub.add_response(
            "get_template",
            {"TemplateBody": json.dumps(template)},
            {"StackName": "erp-dev-cluster", "TemplateStage": "Original"},
        )
    with stub, cfn_stub:
        code = awake_check.main(argv, eks=eks, cloudformation=cloudformation, now=now)
        stub.assert_no_pending_responses()
        cfn_stub.assert_no_pending_responses()
    return code, capsys.readouterr().out.strip()


def test_a_sleeping_stage_is_not_deployed(capsys):
    def setup(stub):
        stub.add_response("list_nodegroups", {"nodegroups": ["apps-abc"]}, {"clusterName": "erp-dev"})
        stub.add_response(
            "describe_nodegroup", group("apps-abc", 0), {"clusterName": "erp-dev", "nodegroupName": "apps-abc"}
        )

    code, out = run(capsys, setup, template=None)
    assert code == 1
    assert out.startswith("awake check: FAIL (erp-dev is asleep: node group(s) apps-abc at 0 nodes)")
    assert '{"action": "start"}' in out and "erp-dev-cluster" in out


def test_an_awake_stage_deploys_when_a_whole_deploy_fits_before_the_night(capsys):
    assert run(capsys, awake) == (
        0,
        "awake check: PASS (erp-dev has nodes; next night stop 2026-12-07 20:00 Asia/Seoul, in 10h 00m)",
    )


def test_a_deploy_that_would_run_into_the_night_stop_does_not_start(capsys):
    """Issue 18 item 15: the check looked once; at 19:30 the stage is awake, but the stop at 20:00 would scale
    the nodes to zero while the deploy still applies manifests and waits for Helm releases."""
    code, out = run(capsys, awake, now=MONDAY_19_30)
    assert code == 1
    assert out.startswith("awake check: FAIL (erp-dev goes to sleep at 2026-12-07 20:00 Asia/Seoul, in 30 min;")
    assert f"up to {awake_check.DEPLOY_MINUTES} min" in out


def test_a_stage_woken_at_the_weekend_has_until_monday_night(capsys):
    code, out = run(capsys, awake, now=SATURDAY_19_30)
    assert code == 0 and "next night stop 2026-12-14 20:00 Asia/Seoul, in 48h 30m" in out


def test_a_disabled_or_missing_stop_does_not_bound_the_deploy(capsys):
    paused = {"Resources": {"Stop": schedule("stop", "cron(0 20 ? * MON-FRI *)", state="DISABLED")}}
    assert run(capsys, awake, template=paused, now=MONDAY_19_30) == (
        0,
        "awake check: PASS (erp-dev has nodes; no night stop)",
    )


def test_a_stop_schedule_it_cannot_read_fails_closed(capsys):
    odd = {"Resources": {"Stop": schedule("stop", "rate(12 hours)")}}
    code, out = run(capsys, awake, template=odd)
    assert code == 1 and "cannot read the schedule 'rate(12 hours)'" in out


def test_a_first_deploy_has_no_cluster_to_wake(capsys):
    def setup(stub):
        stub.add_client_error(
            "list_nodegroups",
            service_error_code="ResourceNotFoundException",
            expected_params={"clusterName": "erp-dev"},
        )

    code, out = run(capsys, setup, template=None)
    assert code == 0 and "first deploy" in out


def test_by_hand_the_window_comes_from_config_even_before_the_first_deploy(capsys):
    dev = load_environment("dev")
    assert dev.schedule is not None and dev.schedule.stop == "20:00"

    def setup(stub):
        stub.add_client_error(
            "list_nodegroups",
            service_error_code="ResourceNotFoundException",
            expected_params={"clusterName": "erp-dev"},
        )

    code, out = run(capsys, setup, template=None, now=MONDAY_19_30, argv=["--env", "dev"])
    assert code == 1 and "goes to sleep at 2026-12-07 20:00 Asia/Seoul" in out


def test_other_errors_fail_closed(capsys):
    def setup(stub):
        stub.add_client_error(
            "list_nodegroups", service_error_code="AccessDeniedException", expected_params={"clusterName": "erp-dev"}
        )

    code, out = run(capsys, setup, template=None)
    assert code == 1 and out.startswith("awake check: FAIL (AWS error:")


class _Deployed:
    """cloudformation.get_template over a synthesized template (what CloudFormation holds after a deploy)."""

    def __init__(self, template: dict) -> None:
        self.template = template

    def get_template(self, **_) -> dict:
        return {"TemplateBody": json.dumps(self.template)}


@pytest.mark.parametrize("env", ["dev"])
def test_it_reads_the_stop_the_cluster_stack_really_deploys(stack_templates, configs, env):
    config = configs[env]
    template = stack_templates[f"{config.resource_prefix}-cluster"]
    assert resources_of(template, "AWS::Scheduler::Schedule")
    (stop,) = awake_check.deployed_stops(_Deployed(template), f"{config.resource_prefix}-cluster")
    expected = awake_check.config_stop(config.schedule, "config")
    assert (stop.minutes, stop.hours, stop.weekdays, stop.timezone) == (
        expected.minutes,
        expected.hours,
        expected.weekdays,
        expected.timezone,
    )


def test_the_deploy_bound_covers_the_waits_a_deploy_can_spend():
    waits = HELM_TIMEOUT.to_minutes() + GATE_TIMEOUT.to_minutes()
    assert waits + 30 <= awake_check.DEPLOY_MINUTES  # + manifests, a node group roll, the smoke test


def test_cron_days_match_eventbridges_numbering():
    assert awake_check.parse_cron("cron(0 20 ? * 2-6 *)", "UTC", "t").weekdays == frozenset(awake_check.WEEKDAYS[:5])
    assert awake_check.parse_cron("cron(30 7,19 ? * SAT,SUN *)", "UTC", "t").hours == (7, 19)
    with pytest.raises(ValueError):
        awake_check.parse_cron("cron(0 20 1 * ? *)", "UTC", "t")  # a day of month: not a night schedule


def test_the_runbook_runs_the_check_before_hand_deploys_and_destroys():
    """Issue 18 item 9b: a deleted TargetGroupBinding waits for the Load Balancer Controller to remove its
    finalizer; with the controller asleep (dev at night) the delete hangs until the kubectl handler times out.
    The pipeline runs this check before every Dev deploy; by hand it is a step of the runbook."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    by_hand = readme.split("### By hand", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"python -m tools\.awake_check --env \w+", by_hand), "README: By hand runs the awake check"
    assert "destroy" in by_hand and "TargetGroupBinding" in by_hand

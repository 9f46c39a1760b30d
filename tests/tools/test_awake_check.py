"""The pre-deploy awake check of a sleeping stage, against botocore's Stubber (no AWS)."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from tools import awake_check

ARGS = ["--cluster", "erp-dev", "--scheduler-stack", "erp-dev-cluster"]


def group(name: str, desired: int) -> dict:
    return {"nodegroup": {"nodegroupName": name, "scalingConfig": {"minSize": 0, "maxSize": 3, "desiredSize": desired}}}


def run(capsys, setup) -> tuple[int, str]:
    eks = boto3.client("eks", region_name="ap-northeast-2")
    stub = Stubber(eks)
    setup(stub)
    with stub:
        code = awake_check.main(ARGS, eks=eks)
        stub.assert_no_pending_responses()
    return code, capsys.readouterr().out.strip()


def test_a_sleeping_stage_is_not_deployed(capsys):
    def setup(stub):
        stub.add_response("list_nodegroups", {"nodegroups": ["apps-abc"]}, {"clusterName": "erp-dev"})
        stub.add_response(
            "describe_nodegroup", group("apps-abc", 0), {"clusterName": "erp-dev", "nodegroupName": "apps-abc"}
        )

    code, out = run(capsys, setup)
    assert code == 1
    assert out.startswith("awake check: FAIL (erp-dev is asleep: node group(s) apps-abc at 0 nodes)")
    assert '{"action": "start"}' in out and "erp-dev-cluster" in out


def test_an_awake_stage_deploys(capsys):
    def setup(stub):
        stub.add_response("list_nodegroups", {"nodegroups": ["apps-abc"]}, {"clusterName": "erp-dev"})
        stub.add_response(
            "describe_nodegroup", group("apps-abc", 2), {"clusterName": "erp-dev", "nodegroupName": "apps-abc"}
        )

    assert run(capsys, setup) == (0, "awake check: PASS (erp-dev has nodes)")


def test_a_first_deploy_has_no_cluster_to_wake(capsys):
    def setup(stub):
        stub.add_client_error(
            "list_nodegroups",
            service_error_code="ResourceNotFoundException",
            expected_params={"clusterName": "erp-dev"},
        )

    code, out = run(capsys, setup)
    assert code == 0 and "first deploy" in out


def test_other_errors_fail_closed(capsys):
    def setup(stub):
        stub.add_client_error(
            "list_nodegroups", service_error_code="AccessDeniedException", expected_params={"clusterName": "erp-dev"}
        )

    code, out = run(capsys, setup)
    assert code == 1 and out.startswith("awake check: FAIL (AWS error:")

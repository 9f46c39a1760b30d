"""The night/weekend scheduler against moto's EKS and RDS (moto 5.2.5 implements
update_nodegroup_config, stop_db_instance and start_db_instance, so no Stubber is needed)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from tests.handlers.conftest import load_function
from tests.support.fake_kube import FakeKube, ca_data, kube_object

APP = Path(__file__).resolve().parents[2] / "lambda_handlers" / "scheduler" / "app.py"
CLUSTER = "erp-dev"
DB_ID = "erp-dev-db"
# Config sizes (what start restores) and the sizes the groups are created with.
SIZES = {"apps": {"min": 1, "desired": 2, "max": 3}, "kafka": {"min": 1, "desired": 1, "max": 2}}


scheduler = load_function(APP.parent).app  # imported as Lambda would (tests/handlers/conftest.py)


def context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="erp-dev-scheduler",
        memory_limit_in_mb=128,
        invoked_function_arn="arn:aws:lambda:ap-northeast-2:123456789012:function:erp-dev-scheduler",
        aws_request_id=str(uuid.uuid4()),
    )


@pytest.fixture
def aws(monkeypatch):
    """moto's EKS cluster with two node groups at their configured sizes, and an available MySQL instance."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto placeholder)
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "CLUSTER_NAME": CLUSTER,
        "NODEGROUP_SIZES": json.dumps(SIZES),
        "DB_INSTANCE_ID": DB_ID,
        "STOP_DATABASE": "false",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "NODEGROUPS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        eks, rds = boto3.client("eks"), boto3.client("rds")
        role = "arn:aws:iam::123456789012:role/erp-dev"
        eks.create_cluster(name=CLUSTER, roleArn=role, resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})
        for name, size in SIZES.items():
            eks.create_nodegroup(
                clusterName=CLUSTER,
                nodegroupName=name,
                nodeRole=role,
                subnets=["subnet-1", "subnet-2"],
                scalingConfig={"minSize": size["min"], "desiredSize": size["desired"], "maxSize": size["max"]},
            )
        rds.create_db_instance(
            DBInstanceIdentifier=DB_ID,
            DBInstanceClass="db.t4g.micro",
            Engine="mysql",
            MasterUsername="admin",
            MasterUserPassword="not-a-real-password",  # pragma: allowlist secret (moto placeholder)
            AllocatedStorage=20,
        )
        yield SimpleNamespace(eks=eks, rds=rds)


def scaling(aws, name: str) -> dict:
    return aws.eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]["scalingConfig"]


def db_status(aws) -> str:
    return aws.rds.describe_db_instances(DBInstanceIdentifier=DB_ID)["DBInstances"][0]["DBInstanceStatus"]


def run(action: str) -> dict:
    return scheduler.handler({"action": action}, context())


def test_stop_scales_every_node_group_to_zero_and_keeps_max(aws):
    summary = run("stop")

    assert scaling(aws, "apps") == {"minSize": 0, "desiredSize": 0, "maxSize": 3}
    assert scaling(aws, "kafka") == {"minSize": 0, "desiredSize": 0, "maxSize": 2}
    assert {name: g["result"] for name, g in summary["nodegroups"].items()} == {"apps": "updated", "kafka": "updated"}
    assert summary["database"] == {"result": "not managed"}
    assert db_status(aws) == "available"


def test_start_restores_the_configured_sizes_not_the_previous_ones(aws):
    # Someone resized apps by hand during the day; config is the source of truth.
    aws.eks.update_nodegroup_config(
        clusterName=CLUSTER, nodegroupName="apps", scalingConfig={"minSize": 2, "desiredSize": 3, "maxSize": 3}
    )
    run("stop")
    summary = run("start")

    assert scaling(aws, "apps") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert scaling(aws, "kafka") == {"minSize": 1, "desiredSize": 1, "maxSize": 2}
    assert summary["nodegroups"]["apps"] == {
        "result": "updated",
        "before": {"minSize": 0, "desiredSize": 0, "maxSize": 3},
        "after": {"minSize": 1, "desiredSize": 2, "maxSize": 3},
    }


def test_runs_are_idempotent_and_skip_groups_at_target(aws):
    run("stop")
    again = run("stop")

    assert {g["result"] for g in again["nodegroups"].values()} == {"unchanged"}
    run("start")
    assert run("start")["nodegroups"]["kafka"] == {
        "result": "unchanged",
        "scaling": {"minSize": 1, "desiredSize": 1, "maxSize": 2},
    }


def test_database_is_stopped_and_started_when_asked_and_skipped_in_the_wrong_state(aws, monkeypatch):
    monkeypatch.setenv("STOP_DATABASE", "true")

    assert run("stop")["database"] == {"id": DB_ID, "result": "stop requested", "status": "available"}
    assert db_status(aws) == "stopped"
    # Already stopped: skipped, and the run still succeeds.
    assert run("stop")["database"] == {"id": DB_ID, "result": "skipped", "status": "stopped"}
    assert run("start")["database"]["result"] == "start requested"
    assert db_status(aws) == "available"
    assert run("start")["database"] == {"id": DB_ID, "result": "skipped", "status": "available"}


def test_only_the_node_groups_named_in_nodegroups(aws, monkeypatch):
    monkeypatch.setenv("NODEGROUPS", json.dumps(["kafka"]))

    assert list(run("stop")["nodegroups"]) == ["kafka"]
    assert scaling(aws, "kafka")["desiredSize"] == 0
    assert scaling(aws, "apps")["desiredSize"] == 2


def test_a_failed_group_does_not_stop_the_others_but_fails_the_run(aws, monkeypatch):
    monkeypatch.setenv("NODEGROUPS", json.dumps(["missing", "apps", "kafka"]))
    monkeypatch.setenv("STOP_DATABASE", "true")

    with pytest.raises(RuntimeError, match=r"stop failed for \['missing'\]"):
        run("stop")
    assert scaling(aws, "apps")["desiredSize"] == 0
    assert scaling(aws, "kafka")["desiredSize"] == 0
    assert db_status(aws) == "stopped"


def test_start_without_a_configured_size_fails_after_starting_the_rest(aws, monkeypatch):
    run("stop")
    monkeypatch.setenv("NODEGROUP_SIZES", json.dumps({"apps": SIZES["apps"]}))

    with pytest.raises(RuntimeError, match="kafka"):
        run("start")
    assert scaling(aws, "apps") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert scaling(aws, "kafka")["desiredSize"] == 0


@pytest.mark.parametrize("event", [{}, {"action": "pause"}])
def test_unknown_action_is_rejected(aws, event):
    with pytest.raises(ValueError, match="action must be"):
        scheduler.handler(event, context())
    assert scaling(aws, "apps")["desiredSize"] == 2


def test_malformed_sizes_fail_before_touching_anything(aws, monkeypatch):
    monkeypatch.setenv("NODEGROUP_SIZES", json.dumps({"apps": {"min": 1, "max": 3}}))

    with pytest.raises(ValueError, match="NODEGROUP_SIZES"):
        run("stop")
    assert scaling(aws, "apps")["desiredSize"] == 2


def test_stop_database_needs_an_instance_id(aws, monkeypatch):
    monkeypatch.setenv("STOP_DATABASE", "true")
    monkeypatch.delenv("DB_INSTANCE_ID")

    with pytest.raises(ValueError, match="DB_INSTANCE_ID"):
        run("stop")


# --- the Cluster Autoscaler (issue 22 item 1): paused at night, resumed in the morning -------------------------

AUTOSCALER = {"namespace": "kube-system", "name": "cluster-autoscaler", "replicas": 1}
ENDPOINT = "https://0123456789ABCDEF.gr7.ap-northeast-2.eks.amazonaws.com"
SCALE_URL = f"{ENDPOINT}/apis/apps/v1/namespaces/kube-system/deployments/cluster-autoscaler/scale"


class AutoscalerCluster(FakeKube):
    """The API server with the autoscaler Deployment (unless `absent`). `seen` records the node groups' sizes at
    each patch, so a test can tell what happened first."""

    def __init__(self, aws, *, absent: bool = False) -> None:
        deployment = kube_object(
            "Deployment", AUTOSCALER["namespace"], AUTOSCALER["name"], spec={"replicas": AUTOSCALER["replicas"]}
        )
        super().__init__(ENDPOINT, [] if absent else [deployment], on_patch=self.record_sizes)
        self.aws, self.seen = aws, []

    def record_sizes(self, path: str, patch: dict) -> None:
        self.seen.append({name: scaling(self.aws, name)["desiredSize"] for name in SIZES})


def replicas(kube: FakeKube) -> int:
    return kube.find("Deployment", AUTOSCALER["namespace"], AUTOSCALER["name"])["spec"]["replicas"]


@pytest.fixture
def paused(aws, monkeypatch):
    """The scheduler as dev deploys it: it also pauses the Cluster Autoscaler."""
    monkeypatch.setenv("AUTOSCALER", json.dumps(AUTOSCALER))
    monkeypatch.setenv("ENDPOINT", ENDPOINT)
    monkeypatch.setenv("CA_DATA", ca_data())
    return aws


def run_with(kube: AutoscalerCluster, action: str) -> dict:
    return scheduler.handler({"action": action}, context(), fetch=kube)


def test_night_pauses_the_autoscaler_before_any_group_goes_to_zero(paused):
    kube = AutoscalerCluster(paused)

    summary = run_with(kube, "stop")

    assert replicas(kube) == 0
    assert kube.seen == [{"apps": 2, "kafka": 1}], "paused while the groups still ran"
    assert scaling(paused, "apps") == {"minSize": 0, "desiredSize": 0, "maxSize": 3}
    assert scaling(paused, "kafka") == {"minSize": 0, "desiredSize": 0, "maxSize": 2}
    assert summary["autoscaler"] == {"pause": {"result": "paused", "before": 1, "after": 0}}


def test_morning_restores_the_configured_sizes_then_resumes_the_autoscaler(paused):
    kube = AutoscalerCluster(paused)
    run_with(kube, "stop")

    summary = run_with(kube, "start")

    assert scaling(paused, "apps") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert scaling(paused, "kafka") == {"minSize": 1, "desiredSize": 1, "maxSize": 2}
    assert replicas(kube) == 1
    assert kube.seen[-1] == {"apps": 2, "kafka": 1}, "resumed only once the groups were back"
    assert summary["autoscaler"] == {"resume": {"result": "resumed", "before": 0, "after": 1}}
    # Twice is harmless.
    assert run_with(kube, "start")["autoscaler"] == {"resume": {"result": "unchanged", "replicas": 1}}


def test_the_call_is_a_merge_patch_of_the_scale_as_the_functions_role(paused):
    kube = AutoscalerCluster(paused)
    run_with(kube, "stop")

    (get, patch) = kube.requests
    assert [get.method, get.url, patch.method, patch.url] == ["GET", SCALE_URL, "PATCH", SCALE_URL]
    assert json.loads(patch.body) == {"spec": {"replicas": 0}}
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.headers["Authorization"].startswith("Bearer k8s-aws-v1.")  # `aws eks get-token`'s format


def test_a_failed_group_in_the_morning_still_resumes_the_autoscaler(paused, monkeypatch):
    kube = AutoscalerCluster(paused)
    run_with(kube, "stop")
    monkeypatch.setenv("NODEGROUP_SIZES", json.dumps({"apps": SIZES["apps"]}))  # kafka's size went missing

    with pytest.raises(RuntimeError, match=r"start failed for \['kafka'\]"):
        run_with(kube, "start")
    assert replicas(kube) == 1, "never paused beside running nodes"
    assert scaling(paused, "apps")["desiredSize"] == 2


def test_a_night_where_no_group_sleeps_resumes_the_autoscaler(paused, monkeypatch):
    kube = AutoscalerCluster(paused)
    monkeypatch.setenv("NODEGROUPS", json.dumps(["missing"]))

    with pytest.raises(RuntimeError, match=r"stop failed for \['missing'\]"):
        run_with(kube, "stop")
    assert replicas(kube) == 1, "the day goes on with its autoscaling"
    assert scaling(paused, "apps")["desiredSize"] == 2


def test_a_night_where_one_group_failed_keeps_the_others_asleep(paused, monkeypatch):
    """Resuming would wake the groups that went to zero: the autoscaler stays paused, the run fails (alarm)."""
    kube = AutoscalerCluster(paused)
    monkeypatch.setenv("NODEGROUPS", json.dumps(["missing", "apps", "kafka"]))

    with pytest.raises(RuntimeError, match=r"stop failed for \['missing'\]"):
        run_with(kube, "stop")
    assert replicas(kube) == 0
    assert scaling(paused, "apps")["desiredSize"] == scaling(paused, "kafka")["desiredSize"] == 0


def test_a_pause_that_failed_still_puts_the_groups_to_sleep_and_fails_the_run(paused):
    import urllib.error

    kube = AutoscalerCluster(paused)
    kube.refuse = {"GET": urllib.error.URLError("timed out")}

    with pytest.raises(RuntimeError, match=r"stop failed for \['autoscaler pause'\].*cannot reach the cluster API"):
        run_with(kube, "stop")
    assert scaling(paused, "apps")["desiredSize"] == scaling(paused, "kafka")["desiredSize"] == 0


def test_a_refused_resume_fails_the_run_after_the_groups_are_back(paused):
    kube = AutoscalerCluster(paused)
    run_with(kube, "stop")
    kube.refuse = {"PATCH": 403}

    with pytest.raises(RuntimeError, match=r"start failed for \['autoscaler resume'\]") as failed:
        run_with(kube, "start")
    assert (
        "the Kubernetes API refused this function's role (403) on PATCH "
        "/apis/apps/v1/namespaces/kube-system/deployments/cluster-autoscaler/scale: its access entry and Role "
        "(constructs_lib/cluster/cluster_autoscaler.py PauseAccess) must exist"
    ) in str(failed.value)
    assert scaling(paused, "apps") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}


def test_a_missing_autoscaler_deployment_is_reported_not_fatal(paused):
    summary = run_with(AutoscalerCluster(paused, absent=True), "stop")

    assert summary["autoscaler"] == {"pause": {"result": "absent"}}
    assert scaling(paused, "apps")["desiredSize"] == 0


def test_autoscaler_without_the_cluster_endpoint_fails_before_touching_anything(paused, monkeypatch):
    monkeypatch.delenv("ENDPOINT")

    with pytest.raises(ValueError, match="ENDPOINT"):
        run_with(AutoscalerCluster(paused), "stop")
    assert scaling(paused, "apps")["desiredSize"] == 2

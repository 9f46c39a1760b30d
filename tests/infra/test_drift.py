"""The drift check as deployed (issue 20, item 4): scheduled per environment from config, allowed to detect drift
on its own environment's stacks only, and watched by an alarm on the alarm topic.

The per-environment tests read the session synth; the small stage below builds the construct alone for what
config or the stage must change (a disabled schedule, a stack added after it).
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_secretsmanager as secretsmanager

from config import load_environment
from config.sections import EDGE_REGION, DriftConfig
from constructs_lib.observability.drift import METRIC_NAMES, DriftCheck, drift_metric
from k8s_charts import build_charts
from k8s_charts.values import token_values
from tests.conftest import resources_of
from tests.support.cloudformation import Stacks

ENVS = ["dev", "prod"]


def drift_function(template: dict) -> tuple[str, dict]:
    (found,) = [
        (logical_id, r)
        for logical_id, r in resources_of(template, "AWS::Lambda::Function").items()
        if logical_id.startswith("Drift")
    ]
    return found


def role_statements(template: dict, role_logical_id: str) -> list[dict]:
    return [
        statement
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def stage_stacks(stack_artifacts, env: str) -> set[tuple[str, str]]:
    """(name, region) of every stack the assembly holds for this environment."""
    found = set()
    for name, (directory, _props) in stack_artifacts.items():
        if not name.startswith(f"erp-{env}-"):
            continue
        manifest = json.loads((directory / "manifest.json").read_text())
        (artifact,) = [a for a in manifest["artifacts"].values() if a.get("properties", {}).get("stackName") == name]
        found.add((name, artifact["environment"].rsplit("/", 1)[1]))
    return found


@pytest.mark.parametrize("env", ENVS)
def test_every_stack_of_the_environment_is_checked_in_its_region_and_no_other(
    stack_templates, stack_artifacts, configs, env
):
    config = configs[env]
    workloads = f"erp-{env}-workloads"
    template = stack_templates[workloads]
    _, function = drift_function(template)
    checked = {tuple(s) for s in json.loads(function["Properties"]["Environment"]["Variables"]["STACKS"])}
    expected = stage_stacks(stack_artifacts, env)
    assert checked == expected
    assert (f"erp-{env}-edge", EDGE_REGION) in checked and len(checked) >= 10

    stacks = Stacks(stack_templates, region=config.region, account=config.account)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = {s.get("Sid"): s for s in role_statements(template, role)}
    arns = {f"arn:aws:cloudformation:{region}:{config.account}:stack/{name}/*" for name, region in expected}
    detect = statements["DetectDriftOfThisEnvironment"]
    assert detect["Effect"] == "Allow"
    assert set(stacks.resolve(workloads, detect["Resource"])) == arns
    # No other statement of the role may start drift detection anywhere.
    others = [s for s in statements.values() if s is not detect and "cloudformation:Detect" in json.dumps(s)]
    assert others == []

    # What it reads for drift detection: configuration of the stage's resource types (the edge's too), no data.
    reads = read_policy_actions(template, role)
    assert {"ec2:DescribeSecurityGroups", "eks:DescribeCluster", "cloudfront:GetDistribution"} <= reads
    assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) or a == "apigateway:GET" for a in reads)
    assert not {"s3:getObject", "secretsmanager:GetSecretValue", "kms:Decrypt", "iam:PassRole"} & reads


def read_policy_actions(template: dict, role_logical_id: str) -> set[str]:
    (document,) = [
        p["Properties"]["PolicyDocument"]
        for p in resources_of(template, "AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_logical_id} in p["Properties"].get("Roles", [])
    ]
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow" and statement["Resource"] == "*"
    return set(statement["Action"])


@pytest.mark.parametrize("env", ENVS)
def test_the_schedule_comes_from_config(stack_templates, configs, env):
    drift = configs[env].observability.drift
    template = stack_templates[f"erp-{env}-workloads"]
    function_id, _ = drift_function(template)
    schedules = [
        s["Properties"]
        for s in resources_of(template, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert drift.enabled
    assert [(s["ScheduleExpression"], s["ScheduleExpressionTimezone"], s["State"]) for s in schedules] == [
        (drift.schedule, drift.timezone, "ENABLED")
    ]
    # One run a day: a failed run is not retried (it would start every detection again), the alarm says so.
    assert schedules[0]["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    (invoke_config,) = resources_of(template, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0


@pytest.mark.parametrize("env", ENVS)
def test_reports_and_failures_reach_the_alarm_topic(stack_templates, configs, env):
    config = configs[env]
    workloads = f"erp-{env}-workloads"
    template = stack_templates[workloads]
    stacks = Stacks(stack_templates, region=config.region, account=config.account)
    (topic,) = resources_of(stack_templates[f"erp-{env}-observability"], "AWS::SNS::Topic").values()
    topic_arn = f"arn:aws:sns:{config.region}:{config.account}:{topic['Properties']['TopicName']}"

    function_id, function = drift_function(template)
    variables = function["Properties"]["Environment"]["Variables"]
    assert stacks.resolve(workloads, variables["TOPIC_ARN"]) == topic_arn
    statements = {s.get("Sid"): s for s in role_statements(template, function["Properties"]["Role"]["Fn::GetAtt"][0])}
    assert stacks.resolve(workloads, statements["PublishReport"]["Resource"]) == topic_arn
    # The topic's key, through SNS and for this topic only.
    condition = statements["EncryptForTheTopic"]["Condition"]["StringEquals"]
    assert stacks.resolve(workloads, condition["kms:EncryptionContext:aws:sns:topicArn"]) == topic_arn

    # The failure alarm lives with every other alarm (Observability), on the function's fixed name.
    name = function["Properties"]["FunctionName"]
    assert name == f"erp-{env}-drift-check"
    observability = stack_templates[f"erp-{env}-observability"]
    (alarm,) = [
        a["Properties"]
        for a in resources_of(observability, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": name}]
    ]
    assert alarm["MetricName"] == "Errors" and alarm["Threshold"] == 1
    topic_ref = {"Ref": next(iter(resources_of(observability, "AWS::SNS::Topic")))}
    assert alarm["AlarmActions"] == [topic_ref] and alarm["OKActions"] == [topic_ref]

    # The metrics a dashboard reads are the ones the handler writes.
    metric = drift_metric(config, METRIC_NAMES[0])
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == metric.namespace
    assert {"service": variables["POWERTOOLS_SERVICE_NAME"]} == metric.dimensions


@pytest.mark.parametrize("env", ENVS)
def test_it_may_view_the_platforms_namespaces_only(stack_templates, env):
    template = stack_templates[f"erp-{env}-workloads"]
    function_id, function = drift_function(template)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (entry,) = [
        e["Properties"]
        for e in resources_of(template, "AWS::EKS::AccessEntry").values()
        if e["Properties"]["PrincipalArn"] == {"Fn::GetAtt": [role, "Arn"]}
    ]
    (policy,) = entry["AccessPolicies"]
    assert policy["PolicyArn"]["Fn::Join"][1][-1].endswith("/AmazonEKSViewPolicy")
    namespaces = json.loads(function["Properties"]["Environment"]["Variables"]["NAMESPACES"])
    assert policy["AccessScope"] == {"Type": "namespace", "Namespaces": namespaces}
    assert f"erp-{env}" in namespaces and "logging" in namespaces


# ---- the construct alone -----------------------------------------------------------------------------------------


def small_stage(config, *, late_stack: bool = False) -> cdk.Stage:
    app = cdk.App()
    stage = cdk.Stage(app, "Env", env=cdk.Environment(account=config.account, region=config.region))
    network = cdk.Stack(stage, "Network", stack_name=f"{config.resource_prefix}-network")
    secretsmanager.Secret(network, "Secret")
    stack = cdk.Stack(stage, "Workloads", stack_name=f"{config.resource_prefix}-workloads")
    cluster = eks.Cluster.from_cluster_attributes(
        stack,
        "Cluster",
        cluster_name=config.cluster_name,
        cluster_security_group_id="sg-0123456789abcdef0",
        cluster_endpoint="https://0123456789ABCDEF.gr7.ap-northeast-2.eks.amazonaws.com",
        cluster_certificate_authority_data="Q0E=",
    )
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["a", "b"], private_subnet_ids=["s-1", "s-2"]
    )
    charts = {key: chart.to_json() for key, chart in build_charts(config, token_values(config)).items()}
    DriftCheck(stack, "Drift", config=config, cluster=cluster, vpc=vpc, charts=charts)
    if late_stack:
        cdk.Stack(stage, "Late", stack_name=f"{config.resource_prefix}-late")
    return stage


def test_a_disabled_drift_check_is_not_scheduled():
    config = load_environment("dev")
    off = config.model_copy(
        update={"observability": config.observability.model_copy(update={"drift": DriftConfig(enabled=False)})}
    )
    template = small_stage(off).synth().get_stack_by_name("erp-dev-workloads").template
    assert resources_of(template, "AWS::Scheduler::Schedule") == {}
    # Still there to run by hand (its failure alarm is the Observability stack's, on this fixed name).
    (function,) = resources_of(template, "AWS::Lambda::Function").values()
    assert function["Properties"]["FunctionName"] == "erp-dev-drift-check"


def test_a_stack_added_after_the_drift_check_fails_synth_instead_of_going_unchecked():
    with pytest.raises(RuntimeError, match="drift check does not cover erp-dev-late"):
        small_stage(load_environment("dev"), late_stack=True).synth()


def test_it_reads_what_drift_detection_of_its_resource_types_needs_and_no_secret_values():
    """A secret in another stack: its read handler's DescribeSecret is granted, its GetSecretValue is not."""
    template = small_stage(load_environment("dev")).synth().get_stack_by_name("erp-dev-workloads").template
    _, function = drift_function(template)
    reads = read_policy_actions(template, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert {"secretsmanager:DescribeSecret", "lambda:GetFunction", "iam:GetRole"} <= reads
    assert "secretsmanager:GetSecretValue" not in reads

"""The restore drill as deployed (issue 21): the state machine's graph read from the template (every failure cleans
up, reports and fails; the success path in order), its schedule per environment, the function's least privilege,
its network paths, and its alarms on the alarm topic.

Everything is read from the session synth; names and values are followed from one template to the other (the
alarms' namespace is the function's, their state machine ARN the Backup stack's), not restated here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from config import environment_names
from tests.conftest import resources_of
from tests.support.cloudformation import Stacks

ENVS = environment_names()
LAMBDA_TOKEN = "<drill function>"


def backup_stack(config) -> str:
    return f"{config.resource_prefix}-backup"


def observability_stack(config) -> str:
    return f"{config.resource_prefix}-observability"


def state_machine(template: dict) -> tuple[str, dict]:
    ((logical_id, machine),) = resources_of(template, "AWS::StepFunctions::StateMachine").items()
    return logical_id, machine


def definition(machine: dict) -> tuple[dict, set[str]]:
    """The ASL with each token (the function's ARN) replaced by LAMBDA_TOKEN; the logical ids of those tokens."""
    body = machine["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    referenced = set()
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            (logical_id, attribute) = part["Fn::GetAtt"]
            assert attribute == "Arn", part
            referenced.add(logical_id)
            text += LAMBDA_TOKEN
    return json.loads(text), referenced


def successors(state: dict) -> list[str]:
    found = [state[key] for key in ("Next", "Default") if key in state]
    found += [choice["Next"] for choice in state.get("Choices", [])]
    found += [catch["Next"] for catch in state.get("Catch", [])]
    return found


def paths(states: dict, start: str, seen: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path from `start` to a terminal state, each loop entered once."""
    here = (*seen, start)
    state = states[start]
    if state["Type"] in ("Succeed", "Fail"):
        yield here
        return
    for name in successors(state):
        if name not in here:
            yield from paths(states, name, here)


def step(state: dict) -> str | None:
    return state.get("Parameters", {}).get("step") if state["Type"] == "Task" else None


@pytest.fixture(scope="module", params=ENVS)
def drill(request, stack_templates, configs):
    config = configs[request.param]
    template = stack_templates[backup_stack(config)]
    logical_id, machine = state_machine(template)
    asl, functions = definition(machine)
    return config, template, logical_id, machine, asl, functions


def test_every_task_invokes_the_drill_function_with_the_whole_state(drill):
    _, template, _, _, asl, functions = drill
    (function_id,) = functions
    assert template["Resources"][function_id]["Type"] == "AWS::Lambda::Function"
    tasks = [s for s in asl["States"].values() if s["Type"] == "Task"]
    assert tasks
    for task in tasks:
        assert task["Resource"] == LAMBDA_TOKEN
        assert task["Parameters"]["state.$"] == "$"
        assert task["Parameters"]["started.$"] == "$$.Execution.StartTime"


def test_every_failure_cleans_up_then_reports_failure_then_fails(drill):
    states = drill[4]["States"]
    targets = {catch["Next"] for s in states.values() for catch in s.get("Catch", [])}
    assert targets
    for target in targets:
        for path in paths(states, target):
            tasks = [states[name] for name in path if step(states[name])]
            assert states[path[-1]]["Type"] == "Fail", path
            assert [step(t) for t in tasks][-1] == "report", path
            assert all(t["Parameters"]["succeeded"] is False for t in tasks if step(t) == "report"), path
            # Only the cleanup's own Catch skips it (the report still runs; the next run deletes the leftovers).
            if step(states[target]) != "report":
                assert step(tasks[0]) == "cleanup", path
    # Every Task either catches into that path or is on it (its own failure then ends the run, failed).
    failure_path = {name for target in targets for path in paths(states, target) for name in path}
    for name, state in states.items():
        if state["Type"] == "Task" and name not in failure_path:
            assert [c["ErrorEquals"] for c in state.get("Catch", [])] == [["States.ALL"]], name
            assert step(states[state["Catch"][0]["Next"]]) == "cleanup", name
    # The cleanup is retried before it gives up.
    for name in failure_path:
        if step(states[name]) == "cleanup":
            assert any("States.ALL" in r["ErrorEquals"] for r in states[name]["Retry"]), name


def test_the_success_path_restores_waits_sets_the_password_waits_checks_cleans_up_and_reports(drill):
    asl = drill[4]
    states = asl["States"]
    name, steps, loops = asl["StartAt"], [], []
    while states[name]["Type"] not in ("Succeed", "Fail"):
        state = states[name]
        if state["Type"] == "Choice":
            (choice,) = state["Choices"]
            assert choice["BooleanEquals"] is True
            # Not yet: wait, then ask the same step again.
            wait = states[state["Default"]]
            assert wait["Type"] == "Wait"
            loops.append((steps[-1], step(states[wait["Next"]])))
            name = choice["Next"]
            continue
        if step(state):
            steps.append(step(state))
        name = state["Next"]
    assert states[name]["Type"] == "Succeed"
    assert steps == ["start", "status", "set_password", "status", "check", "cleanup", "report"]
    assert loops == [("status", "status"), ("status", "status"), ("cleanup", "cleanup")]


def test_the_run_is_bounded_by_config_and_gives_up_in_time_to_clean_up(drill):
    config, template, _, machine, _, functions = drill
    timeout = config.backup.drill.timeout_minutes
    assert drill[4]["TimeoutSeconds"] == timeout * 60
    (function_id,) = functions
    variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    assert 0 < float(variables["DEADLINE_MINUTES"]) < timeout
    assert machine["Properties"]["StateMachineType"] == "STANDARD"


def test_the_drill_is_scheduled_exactly_where_config_says(drill):
    config, template, logical_id, _, _, functions = drill
    schedules = resources_of(template, "AWS::Scheduler::Schedule").values()
    (function_id,) = functions
    starts = [s["Properties"] for s in schedules if s["Properties"]["Target"]["Arn"] == {"Ref": logical_id}]
    heartbeats = [
        s["Properties"] for s in schedules if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    drill_config = config.backup.drill
    if drill_config.schedule is None:
        assert starts == [] and heartbeats == []
        return
    (start,) = starts
    assert start["ScheduleExpression"] == drill_config.schedule
    assert start["ScheduleExpressionTimezone"] == drill_config.timezone
    (heartbeat,) = heartbeats
    assert json.loads(heartbeat["Target"]["Input"]) == {"step": "heartbeat"}


def test_prod_schedules_the_drill_and_dev_runs_it_on_demand(configs):
    assert configs["prod"].backup.drill.schedule is not None
    assert configs["dev"].backup.drill.schedule is None


def test_the_state_machine_arn_is_an_output_for_starting_it_by_hand(drill):
    _, template, logical_id, _, _, _ = drill
    outputs = [o for o in template.get("Outputs", {}).values() if o["Value"] == {"Ref": logical_id}]
    assert outputs and "start-execution" in outputs[0]["Description"]


def function_statements(template: dict, function_id: str) -> list[dict]:
    role = template["Resources"][function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_the_function_may_create_change_and_delete_only_tagged_drill_instances(drill):
    config, template, _, _, _, functions = drill
    (function_id,) = functions
    variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    tag = f"{variables['TAG_KEY']}"
    prefix = variables["PREFIX"]
    assert prefix == config.resource_prefix
    statements = function_statements(template, function_id)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
    writes = (
        "rds:RestoreDBInstanceFromDBSnapshot",
        "rds:ModifyDBInstance",
        "rds:DeleteDBInstance",
        "rds:AddTagsToResource",
    )
    db_grants = 0
    for statement in statements:
        actions = set(as_list(statement["Action"])) & set(writes)
        if not actions:
            continue
        for resource in as_list(statement["Resource"]):
            assert resource != "*", statement
            kind, _, name = resource.split(":", 5)[5].partition(":")
            if kind != "db":
                # A restore's inputs (snapshot, subnet group, parameter and option groups): the restore only.
                assert actions == {"rds:RestoreDBInstanceFromDBSnapshot"}, statement
                continue
            db_grants += 1
            assert name == f"{prefix}-drill-*", statement
            conditions = statement["Condition"]["StringEquals"]
            key = "aws:RequestTag" if "rds:RestoreDBInstanceFromDBSnapshot" in actions else "aws:ResourceTag"
            assert conditions == {f"{key}/{tag}": prefix}, statement
    assert db_grants == 2
    # The keys only through RDS, the recovery points of this vault only.
    for statement in statements:
        if any(a.startswith("kms:") for a in as_list(statement["Action"])):
            assert "kms:ViaService" in statement["Condition"]["StringEquals"], statement
        if any(a.startswith("backup:") for a in as_list(statement["Action"])):
            assert statement["Action"] == "backup:ListRecoveryPointsByBackupVault"
            assert statement["Resource"]["Fn::GetAtt"][1] == "BackupVaultArn"


def test_the_function_reads_the_drill_password_and_the_employee_services_user_only(drill, stack_templates):
    config, template, _, _, _, functions = drill
    (function_id,) = functions
    stacks = Stacks(stack_templates, region=config.region, account=config.account)
    stack = backup_stack(config)
    variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    (reads,) = [s for s in function_statements(template, function_id) if "secretsmanager:GetSecretValue" in s["Action"]]
    readable = {stacks.resolve(stack, r) for r in as_list(reads["Resource"])}
    assert readable == {
        stacks.resolve(stack, variables["DRILL_SECRET_ARN"]),
        stacks.resolve(stack, variables["LIVE_SECRET_ARN"]),
    }
    live = stacks.origin(stacks.resolve(stack, variables["LIVE_SECRET_ARN"]))
    assert live.stack == f"{config.resource_prefix}-data"
    secret = stacks.resource(live.stack, live.logical_id)
    target = stacks.origin(stacks.resolve(live.stack, secret["Properties"]["SecretId"]))
    assert stacks.resource(target.stack, target.logical_id)["Properties"]["Name"].endswith("/employee_app")


def test_mysql_reaches_the_live_database_and_the_restored_copy_from_the_drill_function_only(drill, stack_templates):
    config, template, _, _, _, functions = drill
    (function_id,) = functions
    stacks = Stacks(stack_templates, region=config.region, account=config.account)
    stack = backup_stack(config)
    function_groups = template["Resources"][function_id]["Properties"]["VpcConfig"]["SecurityGroupIds"]
    (function_group,) = [stacks.resolve(stack, g) for g in function_groups]
    variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    instance_group = stacks.resolve(stack, variables["DRILL_SECURITY_GROUP_ID"])
    rules = [
        stacks.resolve(stack, r["Properties"])
        for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
    ]
    into = {stacks.origin(r["GroupId"]).stack: r for r in rules if r["SourceSecurityGroupId"] == function_group}
    # Both rules live in this stack: the Data stack does not depend on the Backup stack.
    assert set(into) == {stack, f"{config.resource_prefix}-data"}
    for rule in into.values():
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 3306, 3306)
    assert into[stack]["GroupId"] == instance_group
    # The restored copy admits nothing else.
    group = stacks.resource(stack, stacks.origin(instance_group).logical_id)
    assert "SecurityGroupIngress" not in group["Properties"]
    assert [r for r in rules if r["GroupId"] == instance_group] == [into[stack]]


def observability_alarms(stack_templates, config) -> dict[str, dict]:
    template = stack_templates[observability_stack(config)]
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources_of(template, "AWS::CloudWatch::Alarm").values()
        if "restore-drill" in a["Properties"]["AlarmName"]
    }


def alarm_topic(stack_templates, config) -> dict:
    template = stack_templates[observability_stack(config)]
    (topic_id,) = [
        k
        for k, t in resources_of(template, "AWS::SNS::Topic").items()
        if t["Properties"]["TopicName"] == f"{config.resource_prefix}-alarms"
    ]
    return {"Ref": topic_id}


def metrics_of(alarm: dict) -> list[dict]:
    if "Metrics" in alarm:
        return [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    return [{"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"], "Dimensions": alarm["Dimensions"]}]


def test_the_drill_alarms_page_the_alarm_topic_and_watch_what_the_drill_writes(drill, stack_templates):
    config, template, logical_id, machine, _, functions = drill
    (function_id,) = functions
    variables = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    topic = alarm_topic(stack_templates, config)
    alarms = observability_alarms(stack_templates, config)
    drill_config = config.backup.drill
    prefix = config.resource_prefix
    expected = {f"{prefix}-restore-drill-{what}" for what in ("failed", "rto", "rpo")}
    if drill_config.schedule is not None:
        expected.add(f"{prefix}-restore-drill-overdue")
    assert set(alarms) == expected
    state_machine_arn = (
        f"arn:aws:states:{config.region}:{config.account}:stateMachine:{machine['Properties']['StateMachineName']}"
    )
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic], name
        for metric in metrics_of(alarm):
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            if metric["Namespace"] == "AWS/States":
                assert dimensions == {"StateMachineArn": state_machine_arn}, name
            else:
                assert metric["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"], name
                assert dimensions == {"service": variables["POWERTOOLS_SERVICE_NAME"]}, name
    assert alarms[f"{prefix}-restore-drill-rto"]["Threshold"] == drill_config.rto_target_minutes
    assert alarms[f"{prefix}-restore-drill-rpo"]["Threshold"] == drill_config.rpo_target_hours
    failed = {m["MetricName"] for m in metrics_of(alarms[f"{prefix}-restore-drill-failed"])}
    assert failed == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "DrillSucceeded"}
    if drill_config.schedule is not None:
        overdue = alarms[f"{prefix}-restore-drill-overdue"]
        # CloudWatch evaluates at most 7 days; a silent heartbeat pages too.
        assert overdue["Period"] * overdue["EvaluationPeriods"] <= 7 * 86400
        assert overdue["TreatMissingData"] == "breaching"


def test_failed_backup_jobs_reach_the_alarm_topic(stack_templates, configs):
    for config in configs.values():
        template = stack_templates[observability_stack(config)]
        rules = [
            r["Properties"]
            for r in resources_of(template, "AWS::Events::Rule").values()
            if r["Properties"].get("EventPattern", {}).get("source") == ["aws.backup"]
        ]
        (rule,) = rules
        assert [t["Arn"] for t in rule["Targets"]] == [alarm_topic(stack_templates, config)]
        assert {"Backup Job State Change", "Copy Job State Change", "Restore Job State Change"} <= set(
            rule["EventPattern"]["detail-type"]
        )
        (by_state, by_status) = rule["EventPattern"]["detail"]["$or"]
        assert "FAILED" in by_state["state"] and "FAILED" in by_status["status"]

"""Issue 20 item 5: signals reach people where they work. Alarms (and the drift job's reports, which go to the alarm
topic), a failed stage, a pending approval and a production deploy reach the configured Slack channel through Amazon Q
Developer in chat applications; the e-mail subscriptions stay. Without a chat channel nothing of it is synthesized.

Each event is followed from its source (an alarm's actions; a notification rule's event types; an EventBridge
rule's pattern) through its targets to where people read it: `email:<address>` of a topic's subscriptions and
`chat:<configuration name>` of every Slack configuration that subscribes to the topic (or is a direct target).

ONE extra synth: the pipeline with the prod stage alone, chat set in config/prod.yaml and config/toolchain.yaml.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml

from config import CONFIG_DIR, load_environment, load_toolchain
from config.sections import SlackChannelConfig
from constructs_lib.delivery.notifications import STAGE_CHANGE
from constructs_lib.observability.chat import GUARDRAIL, NOTIFICATION_ACTIONS, ChatChannel, chat_channel
from tests.conftest import resources_of, synth_app
from tools.cost.assembly import stack_artifacts
from tools.nag_report import violations

ALARMS_CHANNEL = {"workspace_id": "T0ABCDEF12", "channel_id": "C0ALARMS01"}
PIPELINE_CHANNEL = {"workspace_id": "T0ABCDEF12", "channel_id": "C0DELIVER1"}
CHATBOT = "AWS::Chatbot::SlackChannelConfiguration"
PIPELINE_STACK = "erp-pipeline"
FAILED_STAGE = "codepipeline-pipeline-stage-execution-failed"
APPROVAL_NEEDED = "codepipeline-pipeline-manual-approval-needed"


@pytest.fixture(scope="module")
def chat_out(tmp_path_factory) -> Path:
    config_dir = tmp_path_factory.mktemp("chat-config")
    for path in CONFIG_DIR.glob("*.yaml"):
        shutil.copy(path, config_dir / path.name)
    toolchain = yaml.safe_load((config_dir / "toolchain.yaml").read_text())
    toolchain.update(stages=["prod"], chat=PIPELINE_CHANNEL)
    (config_dir / "toolchain.yaml").write_text(yaml.safe_dump(toolchain))
    prod = yaml.safe_load((config_dir / "prod.yaml").read_text())
    prod["observability"]["chat"] = ALARMS_CHANNEL
    (config_dir / "prod.yaml").write_text(yaml.safe_dump(prod))
    return synth_app(tmp_path_factory.mktemp("chat-out"), config_dir=str(config_dir))


@pytest.fixture(scope="module")
def chat_templates(chat_out) -> dict[str, dict]:
    return {a.name: json.loads(a.template.read_text()) for a in stack_artifacts(chat_out)}


# --- following an event to the people ----------------------------------------------------------------------


def chat_configs(template: dict) -> dict[str, dict]:
    return {k: r["Properties"] for k, r in resources_of(template, CHATBOT).items()}


def resolve(templates: dict[str, dict], stack: str, target) -> tuple[str, str] | None:
    """(stack, logical id) a target names: a Ref in its own stack, or an SNS topic's ARN (by the topic's name; the
    drift job addresses the alarm topic so, from another stack)."""
    if isinstance(target, dict) and set(target) == {"Ref"}:
        return stack, target["Ref"]
    if isinstance(target, str) and target.startswith("arn:aws:sns:"):
        name = target.split(":")[5]
        for other, template in templates.items():
            for logical_id, topic in resources_of(template, "AWS::SNS::Topic").items():
                if topic["Properties"].get("TopicName") == name:
                    return other, logical_id
    return None


def readers(templates: dict[str, dict], stack: str, target) -> set[str]:
    """Where a message sent to `target` (an SNS topic, or a Slack configuration directly) is read."""
    resolved = resolve(templates, stack, target)
    if resolved is None:
        return set()
    stack, logical_id = resolved
    template, ref = templates[stack], {"Ref": logical_id}
    found = {
        f"chat:{config['ConfigurationName']}"
        for config_id, config in chat_configs(template).items()
        if config_id == logical_id or ref in config.get("SnsTopicArns", [])
    }
    for subscription in resources_of(template, "AWS::SNS::Subscription").values():
        props = subscription["Properties"]
        if props["TopicArn"] == ref:
            found.add(f"{props['Protocol']}:{props['Endpoint']}")
    return found


def alarm_readers(templates: dict[str, dict], stack: str, logical_id: str) -> tuple[set[str], set[str]]:
    """(on ALARM, on OK) readers of a metric or composite alarm; an alarm without actions of its own (a burn-rate
    window) speaks through the composite alarms whose rule reads it."""
    template = templates[stack]
    props = template["Resources"][logical_id]["Properties"]
    on_alarm = set().union(*(readers(templates, stack, t) for t in props.get("AlarmActions", [])))
    on_ok = set().union(*(readers(templates, stack, t) for t in props.get("OKActions", [])))
    for composite_id, composite in resources_of(template, "AWS::CloudWatch::CompositeAlarm").items():
        if json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}) in json.dumps(composite["Properties"]["AlarmRule"]):
            more_alarm, more_ok = alarm_readers(templates, stack, composite_id)
            on_alarm |= more_alarm
            on_ok |= more_ok
    return on_alarm, on_ok


def all_alarms(template: dict) -> list[str]:
    return [
        *resources_of(template, "AWS::CloudWatch::Alarm"),
        *resources_of(template, "AWS::CloudWatch::CompositeAlarm"),
    ]


def publish_grants(template: dict) -> list:
    """The topics a role of this stack may publish to (the drift job's report, the pipeline's broadening check)."""
    return [
        resource
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow" and "sns:Publish" in json.dumps(statement["Action"])
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
    ]


def matches(pattern, event) -> bool:
    """EventBridge's matching for what these rules use: exact values (lists of them) and nested objects."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and matches(v, event[k]) for k, v in pattern.items())
    values = event if isinstance(event, list) else [event]
    return any(v in pattern for v in values)


def pipeline_arn(template: dict) -> dict:
    (rule,) = resources_of(template, "AWS::CodeStarNotifications::NotificationRule").values()
    return rule["Properties"]["Resource"]


def stage_success(template: dict, stage: str) -> dict:
    return {
        "source": "aws.codepipeline",
        "detail-type": STAGE_CHANGE,
        "resources": [pipeline_arn(template)],
        "detail": {"pipeline": "erp-platform", "stage": stage, "state": "SUCCEEDED", "execution-id": "0f3c-11"},
    }


def event_rule_targets(template: dict, event: dict) -> list[dict]:
    return [
        target
        for rule in resources_of(template, "AWS::Events::Rule").values()
        if rule["Properties"].get("State", "ENABLED") == "ENABLED"
        and matches(rule["Properties"]["EventPattern"], event)
        for target in rule["Properties"]["Targets"]
    ]


def pipeline_event_readers(templates: dict[str, dict], event: str, stage: str) -> set[str]:
    """`event` is a notification rule's event type id, or "deployed" (the stage's success, an EventBridge event)."""
    template = templates[PIPELINE_STACK]
    if event == "deployed":
        targets = event_rule_targets(template, stage_success(template, stage))
        return set().union(*(readers(templates, PIPELINE_STACK, t["Arn"]) for t in targets))
    found = set()
    for rule in resources_of(template, "AWS::CodeStarNotifications::NotificationRule").values():
        if event in rule["Properties"]["EventTypeIds"] and rule["Properties"].get("Status") != "DISABLED":
            for target in rule["Properties"]["Targets"]:
                found |= readers(templates, PIPELINE_STACK, target["TargetAddress"])
    return found


def render(target: dict, event: dict) -> str:
    """What EventBridge's input transformer sends for `event`: inside a JSON string a value goes in as is, standing
    alone as a JSON value."""
    transformer = target["InputTransformer"]
    values = {}
    for key, path in transformer["InputPathsMap"].items():
        value = event
        for part in path.removeprefix("$.").split("."):
            value = value[part]
        values[key] = value
    out, in_string, template = [], False, transformer["InputTemplate"]
    for token in re.split(r'(<[A-Za-z0-9_-]+>|\\.|")', template):
        if token == '"':
            in_string = not in_string
        elif token[1:-1] in values and token.startswith("<"):
            value = values[token[1:-1]]
            token = str(value) if in_string else json.dumps(value)
        out.append(token)
    return "".join(out)


# --- with a chat channel ----------------------------------------------------------------------------------


def test_every_alarm_of_the_environment_reaches_chat_and_mail(chat_templates):
    prod = load_environment("prod")
    emails = {f"email:{address}" for address in prod.observability.alarm_emails}
    checked = 0
    for stack in [n for n in chat_templates if n.startswith("erp-prod-")]:
        # An alarm acts only on a topic of its region: the edge's (us-east-1) has a configuration of its own.
        channel = "chat:erp-prod-edge-alarms" if stack == "erp-prod-edge" else "chat:erp-prod-alarms"
        for logical_id in all_alarms(chat_templates[stack]):
            on_alarm, on_ok = alarm_readers(chat_templates, stack, logical_id)
            where = f"{stack}/{logical_id}"
            assert on_alarm >= {channel, *emails}, f"{where}: ALARM reaches {sorted(on_alarm)}"
            assert on_ok in (set(), on_alarm), f"{where}: OK reaches {sorted(on_ok)}, ALARM {sorted(on_alarm)}"
            checked += 1
    assert checked >= 20


def test_what_the_stacks_publish_reaches_chat(chat_templates):
    """The drift job's report goes to the alarm topic (a custom notification for chat, text for e-mail)."""
    grants = [
        (stack, topic)
        for stack, template in chat_templates.items()
        if stack.startswith("erp-prod-") or stack == PIPELINE_STACK
        for topic in publish_grants(template)
    ]
    assert any(stack.startswith("erp-prod-") for stack, _ in grants), "no job reports to the alarm topic"
    for stack, topic in grants:
        assert any(r.startswith("chat:") for r in readers(chat_templates, stack, topic)), f"{stack}: {topic}"


@pytest.mark.parametrize("event", [FAILED_STAGE, APPROVAL_NEEDED, "deployed"])
def test_pipeline_events_reach_chat_and_mail(chat_templates, event):
    toolchain = load_toolchain()
    found = pipeline_event_readers(chat_templates, event, stage="Prod")
    assert found >= {"chat:erp-platform-pipeline", *(f"email:{a}" for a in toolchain.notification_emails)}, found
    # Once each: a second path (the rule targeting the channel as well) would post everything twice.
    assert sum(r.startswith("chat:") for r in found) == 1


def test_only_the_production_stage_announces_a_deploy(chat_templates):
    template = chat_templates[PIPELINE_STACK]
    assert pipeline_event_readers(chat_templates, "deployed", stage="Build") == set()
    failed = stage_success(template, "Prod")
    failed["detail"]["state"] = "FAILED"
    assert event_rule_targets(template, failed) == []


def test_the_deploy_message_is_a_custom_notification_naming_the_stage(chat_templates):
    template = chat_templates[PIPELINE_STACK]
    event = stage_success(template, "Prod")
    (target,) = event_rule_targets(template, event)
    message = json.loads(render(target, event))
    # The chat service renders an input-transformed event only in this form (version 1.0, source custom).
    assert message["version"] == "1.0" and message["source"] == "custom"
    assert "Prod" in message["content"]["title"] and "erp-platform" in message["content"]["title"]
    assert "0f3c-11" in message["content"]["description"]


def test_eventbridge_may_publish_into_the_encrypted_pipeline_topic(chat_templates):
    template = chat_templates[PIPELINE_STACK]
    event = stage_success(template, "Prod")
    (target,) = event_rule_targets(template, event)
    topic = template["Resources"][target["Arn"]["Ref"]]["Properties"]
    key = template["Resources"][topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]

    def allows(statements, action):
        return any(
            s["Effect"] == "Allow"
            and "events.amazonaws.com" in json.dumps(s["Principal"].get("Service"))
            and action in json.dumps(s["Action"])
            and "Condition" not in s
            for s in statements
        )

    assert allows(key["KeyPolicy"]["Statement"], "kms:GenerateDataKey*")
    policies = [p["Properties"] for p in resources_of(template, "AWS::SNS::TopicPolicy").values()]
    assert any(
        allows(p["PolicyDocument"]["Statement"], "sns:Publish") for p in policies if target["Arn"] in p["Topics"]
    )


@pytest.mark.parametrize(
    ("stack", "channel"),
    [("erp-prod-observability", ALARMS_CHANNEL), ("erp-prod-edge", ALARMS_CHANNEL), (PIPELINE_STACK, PIPELINE_CHANNEL)],
)
def test_the_channel_can_only_read_cloudwatch(chat_templates, stack, channel):
    template = chat_templates[stack]
    ((logical_id, config),) = chat_configs(template).items()
    assert (config["SlackWorkspaceId"], config["SlackChannelId"]) == (channel["workspace_id"], channel["channel_id"])
    assert config["LoggingLevel"] == "ERROR"
    assert config["UserRoleRequired"] is False
    # Without a guardrail the service applies AdministratorAccess to whatever is run from the channel.
    (guardrail,) = config["GuardrailPolicies"]
    assert json.dumps(guardrail).endswith(f':iam::aws:policy/{GUARDRAIL}"]]}}')
    role_id = config["IamRoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "chatbot.amazonaws.com"}
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    statements = [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert [(s["Effect"], sorted(s["Action"])) for s in statements] == [("Allow", sorted(NOTIFICATION_ACTIONS))]


def test_configuration_names_are_unique_in_the_account(chat_templates):
    names = [c["ConfigurationName"] for t in chat_templates.values() for c in chat_configs(t).values()]
    assert sorted(names) == ["erp-platform-pipeline", "erp-prod-alarms", "erp-prod-edge-alarms"]


def test_cdk_nag_finds_nothing_in_the_chat_channels(chat_out):
    """The rest of the app is checked on the committed config (tests/infra/test_safety.py)."""
    found = [(rule, path) for rule, path, _ in violations(chat_out) if "/Chat/" in path]
    assert found == [], "\n".join(f"{rule} {path}" for rule, path in found)


# --- without one (the committed config) -------------------------------------------------------------------


def test_without_a_channel_nothing_of_chat_is_synthesized_and_mail_still_pages(stack_templates, configs):
    toolchain = load_toolchain()
    checked = 0
    for name, template in stack_templates.items():
        env = re.match(r"erp-([a-z0-9]+)-", name)
        config = configs.get(env.group(1)) if env else None  # the pipeline's stacks: erp-pipeline(-support-*)
        if (config.observability.chat if config else toolchain.chat) is not None:
            continue
        assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::Chatbot::")], name
        if config is None:
            continue
        emails = {f"email:{a}" for a in config.observability.alarm_emails}
        for logical_id in all_alarms(template):
            on_alarm, on_ok = alarm_readers(stack_templates, name, logical_id)
            assert on_alarm == emails and on_ok in (set(), emails), f"{name}/{logical_id}"
            checked += bool(emails)
    # The committed prod config pages by mail: the e-mail path is exercised, not vacuous.
    assert checked or all(c.observability.chat or not c.observability.alarm_emails for c in configs.values())
    if toolchain.chat is None:
        emails = {f"email:{a}" for a in toolchain.notification_emails}
        for event in (FAILED_STAGE, APPROVAL_NEEDED):
            assert pipeline_event_readers(stack_templates, event, stage="Prod") == emails, event
        production = [c.stage_id for c in configs.values() if c.production and c.name in toolchain.stages]
        for stage in production:
            assert pipeline_event_readers(stack_templates, "deployed", stage=stage) == emails, stage


def test_no_channel_creates_no_construct_and_a_bad_name_is_refused():
    stack = cdk.Stack()
    assert chat_channel(stack, "Chat", name="erp-dev-alarms", channel=None, topics=[]) is None
    assert stack.node.try_find_child("Chat") is None
    channel = SlackChannelConfig(**ALARMS_CHANNEL)
    with pytest.raises(ValueError, match="chat configuration name"):
        ChatChannel(stack, "Bad", name="erp dev alarms", channel=channel, topics=[])

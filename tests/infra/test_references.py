"""References that follow their producers: a producer that would be replaced changes its consumers' templates.

Cross-stack references are weak (Fn::GetStackOutput): a consumer whose template does not change is not
updated, so it would keep reading a replaced producer's old id. The consumers (the Workloads manifests and
the pods' security-group rules) carry a fingerprint of the create-only properties of what they read.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest

from app import build, new_app
from config.placeholders import CONTEXT_KEY as PLACEHOLDERS_KEY
from constructs_lib.common.reference_fingerprint import (
    FINGERPRINT_PROPERTY,
    create_only_properties,
    fingerprint,
    identity,
)
from stacks.stage import ErpStage
from tests.conftest import cdk_context
from tests.infra.test_template_identity import templates_by_stack_name

SERVICE = "notification-service"


def dev_stage(outdir) -> tuple[cdk.App, ErpStage]:
    # A review synth: the committed placeholders are fine here (tests/conftest.py synth_app does the same).
    app = new_app(outdir=str(outdir), context={**cdk_context(), PLACEHOLDERS_KEY: "warn", "env": "dev"})
    build(app)
    return app, next(c for c in app.node.find_all() if isinstance(c, ErpStage))


def synth(app: cdk.App) -> None:
    try:
        app.synth()
    except RuntimeError as exc:
        if "ValidationFailed" not in str(exc):
            raise


def fingerprinted(template: dict) -> dict[str, object]:
    found = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if FINGERPRINT_PROPERTY in props:
            found[logical_id] = props[FINGERPRINT_PROPERTY]
        elif resource["Type"] == "AWS::EC2::SecurityGroupIngress":
            found[logical_id] = props.get("Description")
    return found


@pytest.fixture(scope="module")
def replaced_target_group(tmp_path_factory) -> dict:
    """The dev stage with one target group's Port (create-only) changed in place of a config edit, so that
    nothing but the producer differs: the Workloads charts are not re-rendered."""
    app, stage = dev_stage(tmp_path_factory.mktemp("replaced"))
    stage.api.nlb.target_groups[SERVICE].node.default_child.port = 9999
    synth(app)
    return {name: json.loads(body) for name, body in templates_by_stack_name(Path(app.outdir)).items()}


def test_replacing_a_producer_changes_every_consumer_that_reads_it(replaced_target_group, stack_templates):
    before, after = stack_templates["erp-dev-workloads"], replaced_target_group["erp-dev-workloads"]
    manifests = {k for k, v in before["Resources"].items() if FINGERPRINT_PROPERTY in v.get("Properties", {})}
    assert len(manifests) >= 6  # at least one per chart: namespace, secrets, kafka, services, logging, tracing
    changed = {k for k in manifests if before["Resources"][k] != after["Resources"][k]}
    assert changed == manifests
    # ...and nothing else: only the fingerprint differs, so the change is exactly "re-read your references".
    for logical_id in changed:
        a, b = dict(before["Resources"][logical_id]["Properties"]), dict(after["Resources"][logical_id]["Properties"])
        assert a.pop(FINGERPRINT_PROPERTY) != b.pop(FINGERPRINT_PROPERTY)
        assert a == b
    # The target-group alarms (Observability stack) follow too; the others are left alone.
    obs_before, obs_after = stack_templates["erp-dev-observability"], replaced_target_group["erp-dev-observability"]
    alarms = {
        v["Properties"]["AlarmName"]: (
            v["Properties"]["AlarmDescription"],
            obs_after["Resources"][k]["Properties"]["AlarmDescription"],
        )
        for k, v in obs_before["Resources"].items()
        if v["Type"] == "AWS::CloudWatch::Alarm"
    }
    changed_alarms = {name for name, (a, b) in alarms.items() if a != b}
    assert changed_alarms == {f"erp-dev-{SERVICE}-unhealthy-hosts", f"erp-dev-{SERVICE}-no-healthy-hosts"}
    # The producer itself is replaced (its create-only Port changed).
    api_before, api_after = stack_templates["erp-dev-api"], replaced_target_group["erp-dev-api"]
    ports = {
        json.dumps(t["Resources"][k]["Properties"].get("Port"))
        for t in (api_before, api_after)
        for k, v in t["Resources"].items()
        if v["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup" and "notificationservice" in k
    }
    assert ports == {"8084", "9999"}


@pytest.fixture(scope="module")
def built_stage(tmp_path_factory) -> ErpStage:
    """Built, not synthesized: fingerprints resolve without a synth. Each test compares before/after its
    own mutation, so they may share it."""
    return dev_stage(tmp_path_factory.mktemp("built"))[1]


def test_security_group_rules_follow_the_groups_they_attach_to(built_stage):
    stage = built_stage
    workloads, group = stage.workloads, stage.data.database.security_group
    before = workloads.resolve(fingerprint([group]))
    group.node.default_child.group_description = "replaced"  # GroupDescription is create-only
    assert workloads.resolve(fingerprint([group])) != before


def test_in_place_updates_leave_consumers_alone_and_replacement_is_transitive(built_stage):
    stage = built_stage
    workloads = stage.workloads
    target_group = stage.api.nlb.target_groups[SERVICE]
    before = workloads.resolve(fingerprint([target_group]))
    target_group.node.default_child.health_check_interval_seconds = 30  # updatable in place
    assert workloads.resolve(fingerprint([target_group])) == before
    # A new VPC (its CIDR is create-only) replaces every target group in it: their consumers follow too.
    stage.network.vpc.node.default_child.cidr_block = "10.99.0.0/16"
    assert workloads.resolve(fingerprint([target_group])) != before
    assert "NetworkVpc" in "".join(identity(target_group)["references"])


def test_create_only_lists_come_from_the_provider_schemas():
    assert "Port" in create_only_properties("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert "HealthCheckIntervalSeconds" not in create_only_properties("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert "Name" in create_only_properties("AWS::SecretsManager::Secret")


# Producers a config change can replace in place of the same logical id (update_safety.yaml: services[].port),
# and the consumers that may lag behind: the dashboard only displays (it catches up on its next change).
REPLACEABLE_OUTPUT = "targets"
MAY_LAG = {"AWS::CloudWatch::Dashboard"}


def test_every_consumer_of_a_replaceable_producer_follows_it(stack_templates):
    lagging = []
    for stack, template in stack_templates.items():
        for logical_id, resource in template["Resources"].items():
            text = json.dumps(resource)
            outputs = [part.split('"')[0] for part in text.split('"OutputName": "')[1:]]
            if not any(REPLACEABLE_OUTPUT in name for name in outputs) or resource["Type"] in MAY_LAG:
                continue
            if FINGERPRINT_PROPERTY not in resource.get("Properties", {}) and "[targets " not in text:
                lagging.append(f"{stack}/{logical_id} ({resource['Type']})")
    assert lagging == []


# --- the employee function URL's host (issue 18 item 8) ----------------------------------------------------------


def _imports(value) -> list[str]:
    if isinstance(value, dict):
        found = [json.dumps(value["Fn::ImportValue"])] if "Fn::ImportValue" in value else []
        return found + [name for item in value.values() for name in _imports(item)]
    if isinstance(value, list):
        return [name for item in value for name in _imports(item)]
    return []


def test_no_stack_reads_the_employee_function_url_through_an_export(stack_templates):
    """An export (Fn::ImportValue) cannot change while imported: replacing the function URL failed the Api stack."""
    for name, template in stack_templates.items():
        assert not [i for i in _imports(template) if "employee" in i.lower()], name
        exports = [o["Export"] for o in template.get("Outputs", {}).values() if "Export" in o]
        assert not [e for e in exports if "employee" in json.dumps(e).lower()], name


@pytest.fixture(scope="module")
def replaced_function_url(tmp_path_factory) -> dict:
    """The dev stage with the employee function URL's Qualifier (create-only) changed: the URL is replaced and
    gets a new host, while nothing the Workloads charts render from config changes."""
    app, stage = dev_stage(tmp_path_factory.mktemp("replaced-url"))
    stage.api.employees.internal_url.node.default_child.qualifier = "live"
    synth(app)
    return {name: json.loads(body) for name, body in templates_by_stack_name(Path(app.outdir)).items()}


def test_replacing_the_function_url_changes_the_manifests_that_read_its_host(replaced_function_url, stack_templates):
    before, after = stack_templates["erp-dev-workloads"], replaced_function_url["erp-dev-workloads"]
    readers = {
        logical_id
        for logical_id, resource in before["Resources"].items()
        if '"OutputName": "EmployeeFunctionUrlHost"' in json.dumps(resource)
    }
    assert readers, "the employee proxy's manifest reads the host from the Api stack's output"
    for logical_id in readers:
        a, b = dict(before["Resources"][logical_id]["Properties"]), dict(after["Resources"][logical_id]["Properties"])
        assert a.pop(FINGERPRINT_PROPERTY) != b.pop(FINGERPRINT_PROPERTY), logical_id
        assert a == b  # only "re-read your references"
    urls = [
        v["Properties"].get("Qualifier")
        for t in (stack_templates["erp-dev-api"], replaced_function_url["erp-dev-api"])
        for v in t["Resources"].values()
        if v["Type"] == "AWS::Lambda::Url"
    ]
    assert urls == [None, "live"]

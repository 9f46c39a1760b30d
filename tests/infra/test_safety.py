"""Platform-wide safety nets: stateful resources survive prod stack deletion; cdk-nag and cfn-lint are clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import Stack

from constructs_lib.common.nag import acknowledge
from tests.conftest import REPO
from tools.nag_report import violations

STATEFUL_TYPES = {
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::SecretsManager::Secret",
    "AWS::Cognito::UserPool",
    "AWS::DynamoDB::Table",
    "AWS::EFS::FileSystem",
    "AWS::KMS::Key",
}


def test_every_stateful_prod_resource_is_retained_or_snapshotted(stack_templates):
    checked = 0
    for stack_name, template in stack_templates.items():
        if not stack_name.startswith("erp-prod-"):
            continue
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] in STATEFUL_TYPES:
                checked += 1
                assert resource.get("DeletionPolicy") in ("Retain", "Snapshot", "RetainExceptOnCreate"), (
                    f"{stack_name}/{logical_id} ({resource['Type']}) would be deleted with its stack"
                )
    assert checked >= 4


def test_termination_protection_on_stateful_prod_stacks_only_and_applied_by_the_pipeline(
    termination_protected, stack_templates
):
    """The manifest flag is what `cdk deploy` applies by hand; CDK Pipelines ignores it (aws/aws-cdk#17871,
    #30405), so the pipeline enables it itself right after each of these stacks deploys (issue 18 item 13;
    tests/infra/test_termination_protection.py runs the step)."""
    stateful = {"erp-prod-data", "erp-prod-auth", "erp-prod-backup", "erp-prod-backup-copy"}
    assert {name for name, on in termination_protected.items() if on} == stateful
    (pipeline,) = [
        r["Properties"]
        for r in stack_templates["erp-pipeline"]["Resources"].values()
        if r["Type"] == "AWS::CodePipeline::Pipeline"
    ]
    actions = {a["Name"]: a["RunOrder"] for s in pipeline["Stages"] for a in s["Actions"]}
    protecting = {name.split(".")[0] for name in actions if name.endswith("TerminationProtection")}
    assert protecting == stateful
    for stack in stateful:
        (step,) = [name for name in actions if name.startswith(f"{stack}.") and name.endswith("TerminationProtection")]
        assert actions[f"{stack}.Deploy"] < actions[step]


def test_cdk_nag_has_no_unacknowledged_findings(cdk_out):
    found = violations(cdk_out)
    assert found == [], "\n".join(f"{rule} {path}" for rule, path, _ in found)


def test_acknowledgements_go_through_one_helper_that_demands_a_reason():
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("constructs_lib", "stacks")
        for path in (REPO / folder).rglob("*.py")
        if "Validations.of(" in path.read_text() and path.name != "nag.py"
    ]
    assert offenders == []
    with pytest.raises(ValueError, match="reason"):
        acknowledge(Stack(), "AwsSolutions-IAM4", "ok")


def cfn_lint(templates: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", *templates],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_cfn_lint_reports_no_errors_and_refuses_a_planted_one(cdk_out, tmp_path):
    """One cfn-lint run over every synthesized template plus a canary: a copy of one with a schema error, which
    must be reported, so a run that checks nothing cannot pass."""
    templates = sorted(str(p) for p in cdk_out.rglob("*.template.json"))
    assert templates
    source = next(p for p in cdk_out.rglob("*Registry*.template.json"))
    template = json.loads(source.read_text())
    resource = next(r for r in template["Resources"].values() if r["Type"] == "AWS::ECR::Repository")
    resource["Properties"]["ImageTagMutability"] = "SOMETIMES"  # not in the resource schema's enum
    canary = tmp_path / source.name
    canary.write_text(json.dumps(template))
    result = cfn_lint([*templates, str(canary)])
    # cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational; parseable lines are
    # `file:line:col:line:col:RULE:message`, E... errors, W... warnings, I... informational.
    assert result.returncode in (2, 10), f"cfn-lint did not run cleanly:\n{result.stdout}{result.stderr}"
    findings = [line.split(":", 6) for line in result.stdout.splitlines() if line.strip()]
    ours = [":".join(f) for f in findings if f[0] != str(canary) and not f[5].startswith("I")]
    assert ours == [], "\n".join(ours)
    assert [(f[5], f[6]) for f in findings if f[0] == str(canary)] == [
        (
            "E3030",
            "'SOMETIMES' is not one of ['MUTABLE', 'IMMUTABLE', 'MUTABLE_WITH_EXCLUSION', 'IMMUTABLE_WITH_EXCLUSION']",
        )
    ]


def test_template_validation_is_left_to_cfn_lint(cdk_out):
    """The platform's App turns aws-cdk-lib's built-in validation (a port of cfn-lint's rules that only warns)
    off, which halves synth (app.new_app); cfn-lint above is the check, in `make test` and the pipeline's Test
    action. With it on, the session's report would carry a "CloudFormation Validate" plugin."""
    report = json.loads((cdk_out / "validation-report.json").read_text())
    assert [r["pluginName"] for r in report["pluginReports"] if "CloudFormation" in r["pluginName"]] == []

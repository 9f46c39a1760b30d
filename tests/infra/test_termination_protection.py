"""Termination protection of the stateful prod stacks, applied by the pipeline (issue 18 item 13).

CDK Pipelines never applies a stack's `termination_protection`. A CodeBuild step after each such stack's deploy
enables it through the stage's CDK deploy role, narrowed by a session policy to that one call on that one
stack. Here: the step's IAM, its session policy, and its commands run against a stand-in `aws`.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import resources_of

PIPELINE = "erp-pipeline"
STATEFUL = ("erp-prod-data", "erp-prod-auth", "erp-prod-backup", "erp-prod-backup-copy")


def stack_region(stack_artifacts, stack: str) -> str:
    """Where the assembly deploys the stack (the backup copy lives outside the environment's region)."""
    directory, _ = stack_artifacts[stack]
    artifacts = json.loads((directory / "manifest.json").read_text())["artifacts"].values()
    (environment,) = [a["environment"] for a in artifacts if a.get("properties", {}).get("stackName") == stack]
    return environment.rsplit("/", 1)[1]


def step_project(template: dict, stack: str) -> tuple[str, dict]:
    (pipeline,) = [r["Properties"] for r in resources_of(template, "AWS::CodePipeline::Pipeline").values()]
    (action,) = [
        a
        for s in pipeline["Stages"]
        for a in s["Actions"]
        if a["Name"].startswith(f"{stack}.") and a["Name"].endswith("TerminationProtection")
    ]
    logical_id = action["Configuration"]["ProjectName"]["Ref"]
    return logical_id, template["Resources"][logical_id]["Properties"]


@pytest.mark.parametrize("stack", STATEFUL)
def test_the_step_may_assume_only_the_prod_deploy_role(stack_templates, stack_artifacts, configs, stack):
    template = stack_templates[PIPELINE]
    prod = configs["prod"]
    region = stack_region(stack_artifacts, stack)
    _, project = step_project(template, stack)
    role = project["ServiceRole"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "sts:AssumeRole" in json.dumps(s["Action"])
    ]
    (assume,) = statements
    deploy_role = f":iam::{prod.account}:role/cdk-hnb659fds-deploy-role-{prod.account}-{region}"
    assert deploy_role in json.dumps(assume["Resource"])
    env = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert deploy_role in json.dumps(env["DEPLOY_ROLE_ARN"])


def run_step(template: dict, stack: str, tmp_path, describe_answer: str = "True") -> tuple[int, list[str], str]:
    _, project = step_project(template, stack)
    spec = json.loads(project["Source"]["BuildSpec"])
    (command,) = spec["phases"]["build"]["commands"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "aws.log"
    (bin_dir / "aws").write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$* | key=${AWS_ACCESS_KEY_ID:-none}" >> "$CALLS"\n'
        'case "$1 $2" in\n'
        '  "sts assume-role") echo "AKIDSESSION SECRET TOKEN";;\n'
        f'  "cloudformation describe-stacks") echo "{describe_answer}";;\n'
        "esac\n"
    )
    (bin_dir / "aws").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(log),
        "DEPLOY_ROLE_ARN": "arn:aws:iam::222222222222:role/cdk-hnb659fds-deploy-role-222222222222-ap-northeast-2",
    }
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    return result.returncode, log.read_text().splitlines(), result.stdout


@pytest.mark.parametrize("stack", STATEFUL)
def test_the_step_enables_protection_in_a_session_narrowed_to_that_stack(
    stack_templates, stack_artifacts, configs, tmp_path, stack
):
    prod = configs["prod"]
    region = stack_region(stack_artifacts, stack)
    code, calls, out = run_step(stack_templates[PIPELINE], stack, tmp_path)
    assert code == 0, out
    assert len(calls) == 3
    assume, update, describe = calls
    assert assume.startswith("sts assume-role --role-arn arn:aws:iam::222222222222:role/cdk-hnb659fds-deploy-role-")
    policy = json.loads(assume.split("--policy ")[1].split(" --query")[0])
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["cloudformation:UpdateTerminationProtection", "cloudformation:DescribeStacks"]
    assert statement["Resource"] == f"arn:aws:cloudformation:{region}:{prod.account}:stack/{stack}/*"
    # Both calls run as the narrowed session, not as the CodeBuild role.
    assert update == (
        f"cloudformation update-termination-protection --enable-termination-protection --stack-name {stack} "
        f"--region {region} | key=AKIDSESSION"
    )
    assert describe.startswith(f"cloudformation describe-stacks --stack-name {stack}") and "key=AKIDSESSION" in describe
    assert f"{stack}: termination protection True" in out


def test_the_step_fails_when_protection_did_not_take(stack_templates, tmp_path):
    code, _, out = run_step(stack_templates[PIPELINE], STATEFUL[0], tmp_path, describe_answer="False")
    assert code != 0
    assert f"{STATEFUL[0]}: termination protection False" in out

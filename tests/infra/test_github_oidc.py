"""The PR diff role: an existing GitHub OIDC provider can be reused (issue 13), only exact lookup roles, only the
protected `cdk-diff` environment, and lookup sessions narrowed to what `cdk diff` reads (issue 18 item 16)."""

from __future__ import annotations

import json
import os
import subprocess

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk.assertions import Template

from config.models import ToolchainConfig
from constructs_lib.delivery.github_oidc import (
    DIFF_ENVIRONMENT,
    DIFF_READ_ACTIONS,
    GitHubDiffRole,
    lookup_session_policy,
)
from tests.conftest import REPO, cdk_context

EXISTING = "arn:aws:iam::333333333333:oidc-provider/token.actions.githubusercontent.com"


def diff_role_template(provider_arn=None) -> dict:
    app = cdk.App(context=cdk_context())
    stack = cdk.Stack(app, "T", env=cdk.Environment(account="333333333333", region="ap-northeast-2"))
    GitHubDiffRole(
        stack,
        "Diff",
        repository="org/repo",
        lookup_accounts=[("333333333333", "ap-northeast-2"), ("111111111111", "ap-northeast-2")],
        provider_arn=provider_arn,
    )
    return Template.from_stack(stack).to_json()


def test_existing_provider_is_referenced_not_created():
    template = diff_role_template(EXISTING)
    types = [r["Type"] for r in template["Resources"].values()]
    assert "AWS::IAM::OIDCProvider" not in types
    (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Federated": EXISTING}


def test_without_an_arn_the_provider_is_created():
    types = [r["Type"] for r in diff_role_template()["Resources"].values()]
    assert types.count("AWS::IAM::OIDCProvider") == 1


def test_no_wildcard_account_in_assumable_roles():
    statements = [
        s
        for r in diff_role_template()["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sts:AssumeRole"
    ]
    text = str(statements)
    assert "iam::*" not in text and "lookup-role-*" not in text
    assert "iam::111111111111:role/cdk-hnb659fds-lookup-role-111111111111-ap-northeast-2" in text


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::333333333333:oidc-provider/example.com",
        "arn:aws:iam::3333:oidc-provider/token.actions.githubusercontent.com",
    ],
)
def test_toolchain_rejects_a_provider_arn_that_is_not_githubs(arn):
    with pytest.raises(ValueError, match="github_oidc_provider_arn"):
        ToolchainConfig(
            account="333333333333",
            connection_arn="arn:aws:codeconnections:ap-northeast-2:333333333333:connection/abc",
            repository="org/repo",
            stages=["dev"],
            github_oidc_provider_arn=arn,
        )


# --- issue 18 item 16: a protected environment, and lookup sessions narrowed to what `cdk diff` reads ------------

WORKFLOW = REPO / ".github" / "workflows" / "cdk-diff.yml"


def diff_job() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["diff"]


def diff_step() -> dict:
    return next(step for step in diff_job()["steps"] if step.get("id") == "diff")


def test_the_role_trusts_only_the_protected_environment_not_any_pull_request():
    """A `pull_request` job runs the PR's own copy of the workflow: `sub = repo:...:pull_request` let any
    collaborator's PR take the role. Only a job in the environment (required reviewers) gets this subject."""
    (role,) = [r for r in diff_role_template()["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        f"repo:org/repo:environment:{DIFF_ENVIRONMENT}"
    )
    assert "StringLike" not in trust["Condition"]  # no wildcard subject
    assert diff_job()["environment"] == DIFF_ENVIRONMENT
    assert "environment" not in yaml.safe_load(WORKFLOW.read_text())["jobs"]["synth"]


def test_lookup_sessions_may_only_read_templates_and_the_bootstrap_version():
    policy = lookup_session_policy()
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {*DIFF_READ_ACTIONS, "ssm:GetParameter"}
    assert all(
        a.startswith("cloudformation:Describe") or a.startswith(("cloudformation:Get", "cloudformation:List"))
        for a in DIFF_READ_ACTIONS
    )
    (ssm,) = [s for s in policy["Statement"] if s["Action"] == "ssm:GetParameter"]
    assert ssm["Resource"].endswith(":parameter/cdk-bootstrap/hnb659fds/version")
    assert all(s["Effect"] == "Allow" and "*" not in json.dumps(s["Action"]) for s in policy["Statement"])


def test_the_workflow_passes_that_session_policy_on_every_lookup_role_it_assumes():
    step = diff_step()
    assert json.loads(step["env"]["SESSION_POLICY"]) == lookup_session_policy()
    script = step["run"]
    assumes = [line for line in script.splitlines() if "aws sts assume-role" in line]
    assert assumes and all('--policy "$SESSION_POLICY"' in line for line in assumes)
    assert "cdk-hnb659fds-lookup-role-${account}-${region}" in script


def test_the_diff_step_diffs_each_account_with_its_narrowed_session(tmp_path):
    """Runs the step's script with stand-ins for `aws` and `npx` that record what they are called with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "aws").write_text(
        '#!/bin/bash\necho "aws $* | key=$AWS_ACCESS_KEY_ID" >> "$CALLS"\n'
        'case "$*" in *lookup-role-222222222222*) echo "AKIDPROD SECRETPROD TOKENPROD";; *) echo "AKIDDEV SECRETDEV TOKENDEV";; esac\n'
    )
    (bin_dir / "npx").write_text(
        '#!/bin/bash\necho "npx $* | key=$AWS_ACCESS_KEY_ID region=$AWS_REGION" >> "$CALLS"\necho "Stack erp-x"\n'
    )
    for tool in ("aws", "npx"):
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "targets.txt").write_text(
        "ErpPipeline/Dev/* 111111111111 ap-northeast-2\nErpPipeline/Prod/* 222222222222 ap-northeast-2\n"
    )
    output = tmp_path / "github_output"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(log),
        "GITHUB_OUTPUT": str(output),
        "SESSION_POLICY": diff_step()["env"]["SESSION_POLICY"],
        "SESSION_NAME": "cdk-diff-pr-7",
        "AWS_ACCESS_KEY_ID": "AKIDDIFFROLE",
    }
    subprocess.run(["bash", "-c", diff_step()["run"]], cwd=tmp_path, env=env, check=True, timeout=60)
    calls = log.read_text().splitlines()
    assert [c.split(" | ")[0].split()[0] for c in calls] == ["aws", "npx", "aws", "npx"]
    assert "lookup-role-111111111111-ap-northeast-2" in calls[0] and "key=AKIDDIFFROLE" in calls[0]
    assert "--policy" in calls[0] and "CdkDiffReads" in calls[0]
    assert (
        calls[1]
        == "npx cdk diff --app pr/cdk.out --method template ErpPipeline/Dev/* | key=AKIDDEV region=ap-northeast-2"
    )
    assert (
        calls[3]
        == "npx cdk diff --app pr/cdk.out --method template ErpPipeline/Prod/* | key=AKIDPROD region=ap-northeast-2"
    )
    assert output.read_text() == "status=0\n"
    assert (tmp_path / "diff.txt").read_text().count("Stack erp-x") == 2

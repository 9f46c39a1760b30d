"""The PR diff role: an existing GitHub OIDC provider can be reused (issue 13), and only exact lookup roles."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from config.models import ToolchainConfig
from constructs_lib.delivery.github_oidc import GitHubDiffRole
from tests.conftest import cdk_context

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

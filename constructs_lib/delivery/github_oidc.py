"""GitHub Actions' way into AWS for `cdk diff` on pull requests: an OIDC provider and a read-only role.

Trust (issue 18 item 16): a `pull_request` workflow runs the pull request's own copy of the workflow file, so
trusting `repo:<repo>:pull_request` let any collaborator's PR take the role with whatever steps it wrote. The
role trusts only jobs that run in the protected GitHub Environment DIFF_ENVIRONMENT
(`repo:<repo>:environment:<name>`): a job gets that token only after the environment's required reviewers
approve the run, i.e. after a maintainer has seen the PR's workflow.

What the lookup roles may do for it: `cdk diff` needs the CloudFormation reads below and the bootstrap
version parameter, nothing else. The lookup roles are CDK's (ReadOnlyAccess, shared with the pipeline's scan
gate, awake check and smoke test), so the workflow assumes each one with LOOKUP_SESSION_POLICY as an inline
session policy, which narrows that session to exactly these reads (.github/workflows/cdk-diff.yml; a test
checks the two agree).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, DefaultStackSynthesizer, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs_lib.common.nag import acknowledge

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
# The GitHub Environment the diff job runs in (create it with required reviewers: README, Pull requests).
DIFF_ENVIRONMENT = "cdk-diff"
# What `cdk diff --method template` reads in each account: the deployed templates (nested ones too), the stack
# resources, and the bootstrap stack's version.
DIFF_READ_ACTIONS = (
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:GetTemplateSummary",
    "cloudformation:ListStackResources",
    "cloudformation:DescribeStackResources",
)


def lookup_session_policy(qualifier: str = DefaultStackSynthesizer.DEFAULT_QUALIFIER) -> dict:
    """The inline session policy the diff job passes when it assumes a lookup role (any account: the role's
    own account bounds it)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "CdkDiffReads", "Effect": "Allow", "Action": list(DIFF_READ_ACTIONS), "Resource": "*"},
            {
                "Sid": "BootstrapVersion",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": f"arn:aws:ssm:*:*:parameter/cdk-bootstrap/{qualifier}/version",
            },
        ],
    }


class GitHubDiffRole(Construct):
    """Only jobs of one repository running in its protected `cdk-diff` environment may assume it; it can only read.

    `cdk diff` reads each stack's deployed template through the CDK bootstrap lookup role of the
    stack's account (those roles must trust this account: `cdk bootstrap --trust`), so the role needs
    little more than permission to assume them.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository: str,
        lookup_accounts: Sequence[tuple[str, str]],
        provider_arn: str | None = None,
    ) -> None:
        """lookup_accounts: (account, region) of the toolchain and every stage: the ONLY lookup roles it may
        assume. provider_arn: an existing GitHub OIDC provider (one per URL per account) instead of a new one."""
        super().__init__(scope, id)
        stack = Stack.of(self)
        if provider_arn is None:
            self.provider: iam.IOidcProvider = iam.OidcProviderNative(
                self, "Provider", url=f"https://{GITHUB_ISSUER}", client_ids=[AUDIENCE]
            )
        else:
            self.provider = iam.OidcProviderNative.from_oidc_provider_arn(self, "Provider", provider_arn)
        self.subject = f"repo:{repository}:environment:{DIFF_ENVIRONMENT}"
        self.role = iam.Role(
            self,
            "Role",
            description=f"cdk diff for pull requests of {repository}, environment {DIFF_ENVIRONMENT} (read-only)",
            max_session_duration=Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                self.provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_ISSUER}:aud": AUDIENCE,
                        f"{GITHUB_ISSUER}:sub": self.subject,
                    }
                },
            ),
        )
        qualifier = DefaultStackSynthesizer.DEFAULT_QUALIFIER
        lookup_roles = sorted(
            {
                f"arn:{stack.partition}:iam::{account}:role/cdk-{qualifier}-lookup-role-{account}-{region}"
                for account, region in lookup_accounts
            }
        )
        if not lookup_roles:
            raise ValueError("the diff role needs at least one lookup role")
        stacks = f"arn:{stack.partition}:cloudformation:{stack.region}:{stack.account}:stack/erp-*/*"
        self.role.add_to_policy(
            iam.PolicyStatement(sid="AssumeCdkLookupRoles", actions=["sts:AssumeRole"], resources=lookup_roles)
        )
        # Fallback when a lookup role cannot be assumed: read this account's erp stacks directly.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStacks",
                actions=list(DIFF_READ_ACTIONS),
                resources=[stacks],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadBootstrapVersion",
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:{stack.partition}:ssm:{stack.region}:{stack.account}:parameter/cdk-bootstrap/{qualifier}/version"
                ],
            )
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{stacks}]",
            "Read-only template access to this account's stacks, the fallback cdk diff uses without a lookup role.",
        )
        CfnOutput(
            self,
            "RoleArn",
            value=self.role.role_arn,
            description="Set as the repository variable CDK_DIFF_ROLE_ARN (used by .github/workflows/cdk-diff.yml)",
        )

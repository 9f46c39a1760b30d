"""GitHub Actions' way into AWS for `cdk diff` on pull requests: an OIDC provider and a read-only role."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, DefaultStackSynthesizer, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs_lib.common.nag import acknowledge

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"


class GitHubDiffRole(Construct):
    """Only pull-request workflows of one repository may assume it, and it can only read.

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
        self.subject = f"repo:{repository}:pull_request"
        self.role = iam.Role(
            self,
            "Role",
            description=f"cdk diff for pull requests of {repository} (read-only)",
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
                actions=[
                    "cloudformation:DescribeStacks",
                    "cloudformation:GetTemplate",
                    "cloudformation:ListStackResources",
                ],
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

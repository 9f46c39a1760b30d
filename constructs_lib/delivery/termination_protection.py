"""Termination protection for the stateful stacks a pipeline deploys (issue 18 item 13).

CDK Pipelines deploys a stage's stacks with CloudFormation actions and never applies a stack's
`termination_protection` (aws/aws-cdk#17871, #30405): only `cdk deploy` does, through the bootstrap deploy role
(its CliPermissions include cloudformation:UpdateTerminationProtection). So after each stack that asks for
it is deployed, a step does the same call:

- role: the stage account's CDK deploy role (`cdk-<qualifier>-deploy-role-<account>-<region>`), the role
  `cdk deploy` itself uses for this call and the one the toolchain account is trusted for by
  `cdk bootstrap --trust`. The lookup role is read-only and cannot.
- least privilege: the step's CodeBuild role may assume only that one role, and assumes it with an inline
  session policy that allows cloudformation:UpdateTerminationProtection and DescribeStacks on that one
  stack and nothing else (a session's permissions are the intersection of role and session policy).
- the step runs only the commands written here (no repository code) and then reads the flag back.
"""

from __future__ import annotations

import json
import shlex

from aws_cdk import DefaultStackSynthesizer, Duration, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam

from config.models import EnvironmentConfig
from constructs_lib.delivery.steps import BUILD_IMAGE, bootstrap_role_arn

ACTIONS = ("cloudformation:UpdateTerminationProtection", "cloudformation:DescribeStacks")


def deploy_role_arn(config: EnvironmentConfig, region: str) -> str:
    """The stage account's CDK bootstrap deploy role in the stack's region (the backup copy lives in another)."""
    return bootstrap_role_arn(DefaultStackSynthesizer.DEFAULT_DEPLOY_ROLE_ARN, config, region)


def session_policy(config: EnvironmentConfig, stack_name: str, region: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": list(ACTIONS),
                "Resource": f"arn:aws:cloudformation:{region}:{config.account}:stack/{stack_name}/*",
            }
        ],
    }


def protection_commands(config: EnvironmentConfig, stack_name: str, stack_region: str) -> list[str]:
    """POSIX sh (CodeBuild's default shell); one command, so the session's credentials reach every call."""
    region = shlex.quote(stack_region)
    name = shlex.quote(stack_name)
    policy = shlex.quote(json.dumps(session_policy(config, stack_name, stack_region), separators=(",", ":")))
    return [
        "set -eu; "
        f'set -- $(aws sts assume-role --role-arn "$DEPLOY_ROLE_ARN" --role-session-name termination-protection '
        f"--policy {policy} --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text); "
        'export AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_SESSION_TOKEN="$3"; '
        f"aws cloudformation update-termination-protection --enable-termination-protection --stack-name {name} "
        f"--region {region}; "
        f"enabled=$(aws cloudformation describe-stacks --stack-name {name} --region {region} "
        "--query 'Stacks[0].EnableTerminationProtection' --output text); "
        f'echo "{stack_name}: termination protection $enabled"; test "$enabled" = True'
    ]


def termination_protection_step(*, config: EnvironmentConfig, stack: Stack) -> pipelines.CodeBuildStep:
    role_arn = deploy_role_arn(config, stack.region)
    return pipelines.CodeBuildStep(
        f"{config.stage_id}{stack.node.id}TerminationProtection",
        build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
        timeout=Duration.minutes(10),
        env={"DEPLOY_ROLE_ARN": role_arn},
        commands=protection_commands(config, stack.stack_name, stack.region),
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
    )


def protected_stacks(stage_stacks: list[Stack]) -> list[Stack]:
    """The stacks that ask for termination protection (the stateful ones, in production)."""
    return [stack for stack in stage_stacks if stack.termination_protection]

"""Linter findings on what CDK Pipelines generates (roles, projects, actions), acknowledged one by one.

Everything here is created by `CodePipeline.build_pipeline()` with CDK's own grants; none of it takes
props that would narrow it, so each wildcard is explained where it sits instead of silenced globally.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_kms as kms
from constructs import IConstruct

from constructs_lib.common.nag import LAMBDA_BASIC_EXECUTION, acknowledge
from constructs_lib.delivery.storage import PipelineArtifactStore

_ARTIFACT_ACTIONS = {
    "s3:GetObject*": "read",
    "s3:GetBucket*": "read",
    "s3:List*": "read",
    "s3:DeleteObject*": "write",
    "s3:Abort*": "write",
    "kms:ReEncrypt*": "encrypt",
    "kms:GenerateDataKey*": "encrypt",
}


def _logical_id(stack: Stack, construct: IConstruct) -> str:
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def acknowledge_pipeline_findings(pipeline: pipelines.CodePipeline, artifacts: PipelineArtifactStore) -> None:
    stack = Stack.of(pipeline)
    for action, kind in _ARTIFACT_ACTIONS.items():
        acknowledge(
            pipeline,
            f"AwsSolutions-IAM5[Action::{action}]",
            f"CDK Pipelines' {kind} grant on the pipeline's own artifact bucket and its key, no other resource.",
        )
    acknowledge(
        pipeline,
        f"AwsSolutions-IAM5[Resource::<{_logical_id(stack, artifacts.bucket)}.Arn>/*]",
        "Objects of the pipeline's own artifact bucket; CodePipeline generates their keys per execution.",
    )

    arn = f"arn:{stack.partition}:{{service}}:{stack.region}:{stack.account}"
    for construct in stack.node.find_all():
        if isinstance(construct, codebuild.Project) and construct.role is not None:
            project = _logical_id(stack, construct)
            acknowledge(
                construct.role,
                f"AwsSolutions-IAM5[Resource::{arn.format(service='logs')}:log-group:/aws/codebuild/<{project}>:*]",
                "CodeBuild writes one log stream per build, named at run time, in this project's own log group.",
            )
            acknowledge(
                construct.role,
                f"AwsSolutions-IAM5[Resource::{arn.format(service='codebuild')}:report-group/<{project}>-*]",
                "Test-report groups of this project only; CodeBuild names them with the project name as prefix.",
            )

    acknowledge(
        pipeline.self_mutation_project.role,
        "AwsSolutions-IAM5[Resource::*]",
        "Self-mutation runs cdk deploy: DescribeStacks and ListBucket on bootstrap resources named at run time.",
    )
    acknowledge(
        pipeline.self_mutation_project.role,
        f"AwsSolutions-IAM5[Resource::arn:*:iam::{stack.account}:role/*]",
        "Self-mutation assumes only this account's CDK bootstrap roles, selected by their aws-cdk:bootstrap-role tag.",
    )

    assets = pipeline.node.try_find_child("Assets")
    file_role = assets.node.try_find_child("FileRole") if assets is not None else None
    if file_role is not None:
        acknowledge(
            file_role,
            "AwsSolutions-IAM5[Resource::*]",
            "Asset publishing role of CDK Pipelines: starts and watches its own publishing CodeBuild builds.",
        )
        for service, resource in (("logs", "log-group:/aws/codebuild/*"), ("codebuild", "report-group/*")):
            acknowledge(
                file_role,
                f"AwsSolutions-IAM5[Resource::{arn.format(service=service)}:{resource}]",
                "One role shared by the asset publishing projects, which CDK Pipelines creates per asset.",
            )

    security_check = pipeline.node.try_find_child("PipelinesSecurityCheck")
    if security_check is not None:
        approve = security_check.node.find_child("CDKPipelinesAutoApprove")
        acknowledge(
            approve,
            LAMBDA_BASIC_EXECUTION,
            "CDK Pipelines' auto-approve function for the permissions-broadening check: its own logs only.",
        )
        acknowledge(
            approve,
            "AwsSolutions-IAM5[Resource::*]",
            "Approves only pipelines tagged SECURITY_CHECK=ALLOW_APPROVE (condition on aws:ResourceTag).",
        )
        check = security_check.node.find_child("CDKSecurityCheck")
        acknowledge(
            check,
            "AwsSolutions-IAM5[Resource::*]",
            "cdk diff --security-only assumes the CDK deploy roles of the stage accounts, selected by bootstrap tag.",
        )
        acknowledge(
            check,
            f"AwsSolutions-IAM5[Resource::<{_logical_id(stack, approve)}.Arn>:*]",
            "Invokes the auto-approve function (any version or alias of it) when no permission broadens.",
        )


def ignore_cfn_lint_role_arn_false_positive(pipeline: pipelines.CodePipeline) -> None:
    """cfn-lint 1.x E3703 re-raises its informational I1022 ("prefer Fn::Sub over Fn::Join") as an error.

    It fires on every cross-account deploy action, whose RoleArn CDK writes as
    Fn::Join ["arn:", Ref AWS::Partition, ":iam::<stage account>:role/cdk-...-cfn-exec-role-..."]:
    valid CloudFormation. Ignored on this one resource only; every other template keeps the rule.
    """
    pipeline.pipeline.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3703"]}})


def harden_cross_region_support(pipeline: pipelines.CodePipeline) -> None:
    """The edge's stacks deploy in us-east-1, so CodePipeline needs an artifact bucket there: CDK generates a support
    stack (erp-pipeline-support-us-east-1) with a replication bucket and key. Its key gets rotation; the bucket
    holds only the artifacts of the us-east-1 deploy actions, like the main artifact bucket's transient objects."""
    stack = Stack.of(pipeline)
    for support in pipeline.pipeline.cross_region_support.values():
        for key in support.stack.node.find_all():
            if isinstance(key, kms.CfnKey):
                key.enable_key_rotation = True
        bucket = support.replication_bucket
        # Named at synth: kept on update or delete, but not after a failed first create (a retry would collide).
        bucket.node.default_child.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "CDK's cross-region replication bucket: transient pipeline artifacts for the us-east-1 deploy actions only.",
        )
        acknowledge(
            pipeline.pipeline.role,
            f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:s3:::{stack.resolve(bucket.bucket_name)}/*]",
            "Objects of CDK's cross-region replication bucket, whose keys CodePipeline generates per execution.",
        )
        acknowledge(
            pipeline.pipeline.role,
            "AwsSolutions-IAM5[Resource::*]",
            "CodePipeline's use of the us-east-1 replication key, which CDK names by alias (its ARN is unknown here).",
        )

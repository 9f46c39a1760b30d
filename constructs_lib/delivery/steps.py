"""The pipeline's own steps: synth, the post-deploy smoke test, and the pre-prod image scan gate."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Aws, CfnOutput, DefaultStackSynthesizer, Duration, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam

from config.models import EnvironmentConfig, ToolchainConfig
from constructs_lib.api.http_api import HEALTH_PATH
from constructs_lib.api.routes import smoke_paths
from constructs_lib.delivery.build_cache import RESTORE, SAVE

# Every CLI the pipeline installs is the one package.json pins (and package-lock.json locks): self-mutation and
# the permissions-broadening check run this aws-cdk, asset publishing this cdk-assets (CDK Pipelines' defaults,
# `npm install -g aws-cdk` and `cdk-assets@latest`, would install whatever npm calls latest, e.g. a 3.x CLI that
# cannot read aws-cdk-lib 2.x assemblies).
PACKAGE_JSON = Path(__file__).resolve().parents[2] / "package.json"
CDK_CLI_VERSION = json.loads(PACKAGE_JSON.read_text())["devDependencies"]["aws-cdk"]
CDK_ASSETS_CLI_VERSION = json.loads(PACKAGE_JSON.read_text())["devDependencies"]["cdk-assets"]
# Ubuntu 22.04 with python 3.11 and apt (the Makefile installs the rest, MariaDB for the tests included).
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
# Synth and Test (constructs_lib/delivery/test_action.py): 4 vCPUs, 7 GB.
BUILD_COMPUTE = codebuild.ComputeType.MEDIUM
PYTHON = "3.11"
SYNTH_ID = "Synth"
SMOKE_ATTEMPTS = 10
SMOKE_DELAY_SECONDS = 15
# Pods of a fresh deploy pull images and pass readiness (3 x 10 s NLB checks) within this.
SMOKE_MAX_WAIT_SECONDS = 600
SMOKE_REQUIREMENTS = ("boto3",)
# The gate's own Python dependencies, pinned in requirements.txt (it needs neither CDK nor Node).
GATE_REQUIREMENTS = ("boto3", "PyYAML", "pydantic")


def python_runtime() -> codebuild.BuildSpec:
    return codebuild.BuildSpec.from_object({"phases": {"install": {"runtime-versions": {"python": PYTHON}}}})


def grant_connection_use(pipeline: codepipeline.Pipeline, connection_arn: str) -> None:
    """The Source action's role and every CodeBuild project that clones the source (a CODEBUILD_CLONE_REF
    artifact is a reference: the project itself clones through the connection) get the action of the ARN's prefix;
    CDK grants only `codestar-connections:UseConnection`, which a `codeconnections` ARN does not accept."""
    statement = iam.PolicyStatement(actions=[connection_use_action(connection_arn)], resources=[connection_arn])
    for role in pipeline.node.find_child("Source").node.find_all():
        if isinstance(role, iam.Role) and role.node.id == "CodePipelineActionRole":
            role.add_to_principal_policy(statement)
    source_output = pipeline.stages[0].actions[0].action_properties.outputs[0]
    for stage in pipeline.stages[1:]:
        for action in stage.actions:
            properties = action.action_properties
            if isinstance(properties.resource, codebuild.Project) and any(
                artifact.artifact_name == source_output.artifact_name for artifact in properties.inputs or []
            ):
                properties.resource.add_to_role_policy(statement)


def connection_use_action(connection_arn: str) -> str:
    """IAM action that lets the Source action use the connection: its service prefix must match the ARN's
    (`arn:aws:codeconnections:...` -> codeconnections:UseConnection; the old codestar-connections ARNs
    keep theirs). CDK's source action grants only the old one."""
    service = connection_arn.split(":")[2]
    if service not in ("codeconnections", "codestar-connections"):
        raise ValueError(f"{connection_arn}: not a CodeConnections connection ARN")
    return f"{service}:UseConnection"


def synth_step(source: pipelines.IFileSetProducer) -> pipelines.ShellStep:
    """Install (from the dependency cache) and synthesize, nothing else: the test suite runs beside it as its own
    action (constructs_lib/delivery/test_action.py), and self-mutation waits for both."""
    return pipelines.ShellStep(
        SYNTH_ID,
        input=source,
        install_commands=[RESTORE],
        commands=["make setup", SAVE, "make synth PLACEHOLDERS=refuse"],
        primary_output_directory="cdk.out",
    )


def synth_build_spec(cache: dict) -> codebuild.BuildSpec:
    """The synth project's Python runtime and its `cache` section (merged into CDK Pipelines' buildspec)."""
    return codebuild.BuildSpec.from_object(
        {"phases": {"install": {"runtime-versions": {"python": PYTHON}}}, "cache": cache}
    )


def protected_routes(config: EnvironmentConfig) -> list[str]:
    """Every backend route of the stage's API (the same table the API stack builds): each must demand a token."""
    return smoke_paths(config)


def smoke_test_step(
    *,
    config: EnvironmentConfig,
    source: pipelines.IFileSetProducer,
    url_output: CfnOutput,
    protected_routes: Sequence[str],
    workloads: Sequence[str] = (),
    max_wait_seconds: int = SMOKE_MAX_WAIT_SECONDS,
) -> pipelines.CodeBuildStep:
    """Fails the stage unless the API and every service behind it work.

    1. Through the edge (`url_output`: the distribution's address, the one users have), `/api/health` answers 200
       and every protected route refuses an anonymous caller with 401: the edge passes /api/* to the API, the API
       is up, and the authorizer stands in front of every backend.
    2. Every NLB target group of the stage's Api stack has a healthy target (tools/smoke_check.py): each
       EKS service has a Ready pod answering its health check. Read through the stage account's CDK lookup
       role (ReadOnlyAccess), like the scan gate.
    3. Every workload in `workloads` (namespace/Kind/name, from workload_inventory.expected_workloads) is
       rolled out and available with no crash-looping pod, in a report newer than the step's start that the
       stage's workload health reporter writes from inside the VPC (constructs_lib/delivery/workload_health.py),
       read through the same role.
    """
    curl = (
        "curl --silent --show-error --output /dev/null --write-out '%{http_code}' --max-time 10"
        f" --retry {SMOKE_ATTEMPTS} --retry-delay {SMOKE_DELAY_SECONDS} --retry-all-errors"
    )
    health = f'status="$({curl} --fail "${{API_URL%/}}{HEALTH_PATH}")" || true'
    commands = [f'{health}; echo "GET {HEALTH_PATH} -> $status"; test "$status" = 200']
    for route in protected_routes:
        commands.append(
            f'status="$({curl} "${{API_URL%/}}{route}")" || true; '
            f'echo "GET {route} without a token -> $status"; test "$status" = 401'
        )
    role_arn = scan_role_arn(config)
    check = shlex.join(
        [
            "python3",
            "-m",
            "tools.smoke_check",
            "--stack",
            f"{config.resource_prefix}-api",
            "--region",
            config.region,
            "--max-wait",
            str(max_wait_seconds),
            *(["--health-parameter", f"{config.ssm_prefix}/smoke/workloads"] if workloads else []),
            *(argument for workload in workloads for argument in ("--workload", workload)),
        ]
    )
    commands += [assume_lookup_role_profile(), f"AWS_PROFILE=stage {check}"]
    return pipelines.CodeBuildStep(
        f"{config.stage_id}SmokeTest",
        input=source,
        build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
        partial_build_spec=python_runtime(),
        timeout=Duration.seconds(max_wait_seconds + 600),
        env={"LOOKUP_ROLE_ARN": role_arn},
        env_from_cfn_outputs={"API_URL": url_output},
        install_commands=[install_requirements(SMOKE_REQUIREMENTS)],
        commands=commands,
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
    )


def awake_check_step(*, config: EnvironmentConfig, source: pipelines.IFileSetProducer) -> pipelines.CodeBuildStep:
    """Before a stage with a night schedule deploys: fail fast (nothing touched) while its nodes sleep.

    Read-only through the stage's lookup role; see tools/awake_check.py for why a night deploy must not start.
    """
    role_arn = scan_role_arn(config)
    check = shlex.join(
        [
            "python3",
            "-m",
            "tools.awake_check",
            "--cluster",
            config.cluster_name,
            "--region",
            config.region,
            "--scheduler-stack",
            f"{config.resource_prefix}-cluster",
        ]
    )
    return pipelines.CodeBuildStep(
        f"{config.stage_id}AwakeCheck",
        input=source,
        build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
        partial_build_spec=python_runtime(),
        timeout=Duration.minutes(15),
        env={"LOOKUP_ROLE_ARN": role_arn},
        install_commands=[install_requirements(SMOKE_REQUIREMENTS)],
        commands=[assume_lookup_role_profile(), f"AWS_PROFILE=stage {check}"],
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
    )


def assume_lookup_role_profile() -> str:
    """An AWS profile `stage` that assumes $LOOKUP_ROLE_ARN (boto3 refreshes it during long waits)."""
    return (
        'mkdir -p ~/.aws && printf "[profile stage]\\nrole_arn = %s\\ncredential_source = EcsContainer\\n"'
        ' "$LOOKUP_ROLE_ARN" > ~/.aws/config'
    )


def install_requirements(names: Sequence[str]) -> str:
    """pip install just these packages at the versions requirements.txt pins."""
    return (
        "python3 -m pip install --quiet $(grep -E " + shlex.quote("^(" + "|".join(names) + ")==") + " requirements.txt)"
    )


def bootstrap_role_arn(template: str, config: EnvironmentConfig, region: str | None = None) -> str:
    """One of the stage account's CDK bootstrap roles (DefaultStackSynthesizer.DEFAULT_*_ROLE_ARN), in the stage's
    region unless the stack lives elsewhere (the edge, the backup copy)."""
    return (
        template.replace("${AWS::Partition}", Aws.PARTITION)
        .replace("${AWS::AccountId}", config.account)
        .replace("${AWS::Region}", region or config.region)
        .replace("${Qualifier}", DefaultStackSynthesizer.DEFAULT_QUALIFIER)
    )


def scan_role_arn(config: EnvironmentConfig, region: str | None = None) -> str:
    """The stage account's CDK lookup role: read-only, and trusted by the toolchain account after `--trust`."""
    return bootstrap_role_arn(DefaultStackSynthesizer.DEFAULT_LOOKUP_ROLE_ARN, config, region)


BLOCKING_SEVERITIES = ("CRITICAL", "HIGH")


def fail_on(toolchain: ToolchainConfig) -> list[str]:
    """The gate's blocking severities: CRITICAL and HIGH always, plus what config adds."""
    return list(dict.fromkeys([*BLOCKING_SEVERITIES, *toolchain.scan_fail_on]))


def scan_gate_step(
    *,
    stage_name: str,
    source: pipelines.IFileSetProducer,
    config: EnvironmentConfig,
    toolchain: ToolchainConfig,
    images: Sequence[str],
    platforms: Sequence[str],
) -> pipelines.CodeBuildStep:
    """Fails closed unless every image the stage deploys has a finished ECR scan with no blocking finding.

    Runs in the toolchain account and reads the findings in the stage's account through its lookup role. CRITICAL
    and HIGH always block (the gate adds them to whatever config says); an image index is judged by its
    per-platform images of `platforms` (the node groups'), which is what ECR scans.
    """
    if not images:
        raise ValueError(f"{stage_name}: no images to scan; the gate would pass without checking anything")
    role_arn = scan_role_arn(config)
    gate = shlex.join(
        [
            "python3",
            "-m",
            "tools.scan_gate",
            "--region",
            config.region,
            "--fail-on",
            ",".join(fail_on(toolchain)),
            "--platforms",
            ",".join(platforms),
            "--max-wait",
            str(toolchain.scan_max_wait_seconds),
            *images,
        ]
    )
    return pipelines.CodeBuildStep(
        f"{stage_name}ImageScanGate",
        input=source,
        build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
        partial_build_spec=python_runtime(),
        timeout=Duration.seconds(toolchain.scan_max_wait_seconds + 600),
        env={"SCAN_ROLE_ARN": role_arn},
        install_commands=[install_requirements(GATE_REQUIREMENTS)],
        commands=[
            # boto3 assumes the role itself, refreshing it during a long wait for scans.
            'mkdir -p ~/.aws && printf "[profile gate]\\nrole_arn = %s\\ncredential_source = EcsContainer\\n"'
            ' "$SCAN_ROLE_ARN" > ~/.aws/config',
            f"AWS_PROFILE=gate {gate}",
        ],
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
    )

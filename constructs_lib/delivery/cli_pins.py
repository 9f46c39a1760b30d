"""The CLIs the pipeline installs, pinned to package.json (issue 18 item 11).

CDK Pipelines installs its CLIs with npm at run time. Self-mutation takes `CodePipeline(cli_version=...)` and
asset publishing `cdk_assets_cli_version`; the permissions-broadening check (ConfirmPermissionsBroadening's
shared CodeBuild project) has no such prop and runs a bare `npm install -g aws-cdk`, i.e. whatever npm calls
latest - a 3.x CLI cannot read these assemblies, so `cdk diff --security-only` fails, which the check treats as
"broadening" on every prod run, and a real broadening looks the same. Its buildspec is pinned here.
tests/infra/test_pipeline.py reads every CodeBuild project's buildspec for an unpinned install.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack, pipelines
from aws_cdk import aws_codebuild as codebuild

from constructs_lib.delivery.steps import CDK_CLI_VERSION

UNPINNED_CLI_INSTALL = '"npm install -g aws-cdk"'


def pin_security_check_cli(pipeline: pipelines.CodePipeline, version: str = CDK_CLI_VERSION) -> None:
    """Rewrites the permissions-broadening check's `npm install -g aws-cdk` to `aws-cdk@<version>`."""
    check = pipeline.node.try_find_child("PipelinesSecurityCheck")
    if check is None:
        return
    project = check.node.find_child("CDKSecurityCheck").node.default_child
    if not isinstance(project, codebuild.CfnProject):
        raise TypeError(f"{check.node.path}/CDKSecurityCheck: expected a CodeBuild project")
    # A lazy JSON text holding the auto-approve function's name: resolved, it is a string or an Fn::Join.
    build_spec = Stack.of(project).resolve(project.source.build_spec)
    found = sum(text.count(UNPINNED_CLI_INSTALL) for text in _strings(build_spec))
    if found != 1:
        raise ValueError(
            f"{check.node.path}: its buildspec no longer holds {UNPINNED_CLI_INSTALL} once: re-read CDK Pipelines' "
            "ApplicationSecurityCheck (aws-cdk-lib pipelines/lib/private/application-security-check) and update "
            "constructs_lib/delivery/cli_pins.py"
        )
    pinned = _replace(build_spec, UNPINNED_CLI_INSTALL, f'"npm install -g aws-cdk@{version}"')
    project.add_property_override("Source.BuildSpec", pinned)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {key: _replace(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, old, new) for item in value]
    return value

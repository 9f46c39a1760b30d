"""Synthesize the whole app ONCE per test session; every template assertion reads from it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from functools import cache
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app import build  # noqa: E402
from config import CONFIG_DIR, environment_names, load_environment  # noqa: E402
from config.placeholders import CONTEXT_KEY as PLACEHOLDERS_KEY  # noqa: E402
from tools.synth import project_context  # noqa: E402


def cdk_context() -> dict:
    """Feature flags from cdk.json plus the committed lookups (without the CLI's metadata flags, which
    only add resource metadata; tools/synth.py adds them for `make synth`)."""
    return project_context(REPO)


def synth_app(outdir: Path, **context: str) -> Path:
    """Build and synthesize the app into `outdir` with the project's context plus `context`; the committed
    placeholders are fine for tests (a review synth), unless `context` says otherwise."""
    placeholders = os.environ.get("ERP_TEST_PLACEHOLDERS", "warn")  # tests/infra/test_placeholders.py: refuse
    app = cdk.App(outdir=str(outdir), context={**cdk_context(), PLACEHOLDERS_KEY: placeholders, **context})
    build(app)
    try:
        app.synth()
    except RuntimeError as exc:
        # cdk-nag findings fail synth after the templates are written; the nag test lists them.
        if "ValidationFailed" not in str(exc):
            raise
    return outdir


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A writable copy of config/ for tests that break one field."""
    for path in CONFIG_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.fixture(scope="session")
def configs():
    return {name: load_environment(name) for name in environment_names()}


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory) -> Path:
    return synth_app(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def stack_artifacts(cdk_out) -> dict[str, tuple[Path, dict]]:
    """CloudFormation stack name -> (its assembly dir, its manifest properties), across nested stages."""
    found: dict[str, tuple[Path, dict]] = {}

    def walk(assembly_dir: Path) -> None:
        manifest = json.loads((assembly_dir / "manifest.json").read_text())
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            props = artifact.get("properties", {})
            if artifact["type"] == "aws:cloudformation:stack":
                found[props.get("stackName", artifact_id)] = (assembly_dir, props)
            elif artifact["type"] == "cdk:cloud-assembly":
                walk(assembly_dir / props["directoryName"])

    walk(cdk_out)
    return found


@pytest.fixture(scope="session")
def stack_templates(stack_artifacts) -> dict[str, dict]:
    """CloudFormation stack name -> template JSON."""
    return {
        name: json.loads((directory / props["templateFile"]).read_text())
        for name, (directory, props) in stack_artifacts.items()
    }


@pytest.fixture(scope="session")
def termination_protected(stack_artifacts) -> dict[str, bool]:
    return {name: props.get("terminationProtection", False) for name, (_, props) in stack_artifacts.items()}


@pytest.fixture(scope="session")
def template(stack_templates):
    """template('erp-dev-data') -> aws_cdk.assertions.Template, built once per stack."""

    @cache
    def get(stack_name: str) -> Template:
        return Template.from_json(stack_templates[stack_name])

    return get


def resources_of(template_json: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == resource_type}


def properties_of(template_json: dict, resource_type: str, **match) -> list[dict]:
    """The Properties of every resource of that type whose properties equal each of `match`."""
    return [
        r["Properties"]
        for r in resources_of(template_json, resource_type).values()
        if all(r["Properties"].get(key) == value for key, value in match.items())
    ]

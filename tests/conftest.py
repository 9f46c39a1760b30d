"""Synthesize the whole app ONCE per test session; every template assertion reads from it.

Under pytest-xdist (`make test`: two workers) the workers share that one assembly: the first worker to ask
synthesizes it under a file lock in the session's base directory, the other waits and reads it. Heavy
modules are handed out first (HEAVY_FIRST), so the worker that is not synthesizing has work of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app import build, new_app  # noqa: E402
from config import CONFIG_DIR, environment_names, load_environment  # noqa: E402
from config.placeholders import CONTEXT_KEY as PLACEHOLDERS_KEY  # noqa: E402
from tools.synth import project_context  # noqa: E402

# moto's EC2 backend (which RDS and EKS build on) parses ~2,500 default AMIs per test; no test reads them.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


def _parse_botocore_files_once() -> None:
    """Every new boto3 Session re-parses botocore's JSON (endpoints.json alone is ~1 MB), and moto opens one per
    test and per IAM role it validates: 47 % of the scheduler tests' time. The files are read-only data (botocore
    already shares one parse between the clients of a session), so the worker shares one parse per file."""
    from botocore.loaders import JSONFileLoader

    parse = JSONFileLoader.load_file
    parsed: dict[str, object] = {}

    def load_file(self, file_path):
        if file_path not in parsed:
            parsed[file_path] = parse(self, file_path)
        return parsed[file_path]

    JSONFileLoader.load_file = load_file


_parse_botocore_files_once()


def cdk_context() -> dict:
    """Feature flags from cdk.json plus the committed lookups (without the CLI's metadata flags, which
    only add resource metadata; tools/synth.py adds them for `make synth`)."""
    return project_context(REPO)


def synth_app(outdir: Path, **context: str) -> Path:
    """Build and synthesize the app into `outdir` with the project's context plus `context`; the committed
    placeholders are fine for tests (a review synth), unless `context` says otherwise."""
    placeholders = os.environ.get("ERP_TEST_PLACEHOLDERS", "warn")  # tests/infra/test_placeholders.py: refuse
    app = new_app(outdir=str(outdir), context={**cdk_context(), PLACEHOLDERS_KEY: placeholders, **context})
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


def shared_by_workers(request: pytest.FixtureRequest, name: str, make: Callable[[Path], object]) -> Path:
    """`make(directory)` once per test session, also across xdist workers; tests only read the directory.

    A worker's base temp is <session base>/popen-<worker id>: the first worker takes the lock and builds
    <session base>/<name>, the others wait for it. A build that raised leaves no marker, so the next worker
    tries again (and fails the same way, in its own tests). Without xdist: a fresh directory of this session.
    """
    factory = request.config._tmp_path_factory  # noqa: SLF001 (what tmp_path_factory is)
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    base = factory.getbasetemp()
    if worker is None or base.name != f"popen-{worker}":
        directory = factory.mktemp(name)
        make(directory)
        return directory
    directory, done = base.parent / name, base.parent / f"{name}.done"
    with open(base.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or the worker dies)
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            make(directory)
            done.touch()
    return directory


@pytest.fixture(scope="session")
def cdk_out(request) -> Path:
    return shared_by_workers(request, "cdk.out", synth_app)


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


# The modules that cost most (extra synths, the runbook's strict run, cfn-lint, the secret scan), dearest first.
# `make test` runs `--dist loadfile --no-loadscope-reorder`: files are handed to the workers in collection
# order, so these start first and the rest fill in around them instead of leaving one worker with a long tail.
# The first one reads the session synth (its worker makes it); the next are independent of it.
HEAVY_FIRST = (
    "tests/infra/test_safety.py",
    "tests/infra/test_placeholders.py",
    "tests/infra/test_scale.py",
    "tests/infra/test_update_safety.py",
    "tests/infra/test_references.py",
    "tests/infra/test_chat.py",
    "tests/infra/test_template_identity.py",
    "tests/test_secret_scan.py",
    "tests/infra/test_synth_matches_cli.py",
    "tests/infra/test_upgrade_rehearsal.py",
    "tests/tools/test_synth.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Heavy modules first (in HEAVY_FIRST's order), every other test after them in its collected order."""
    rank = {path: n for n, path in enumerate(HEAVY_FIRST)}

    def key(item) -> int:
        path = Path(str(item.path)).resolve()
        relative = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else ""
        return rank.get(relative, len(rank))

    items.sort(key=key)  # stable: within a file, and among the rest, collection order stays


def resources_of(template_json: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == resource_type}


def properties_of(template_json: dict, resource_type: str, **match) -> list[dict]:
    """The Properties of every resource of that type whose properties equal each of `match`."""
    return [
        r["Properties"]
        for r in resources_of(template_json, resource_type).values()
        if all(r["Properties"].get(key) == value for key, value in match.items())
    ]

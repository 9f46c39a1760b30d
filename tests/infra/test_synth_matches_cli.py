"""HEAVY, the one test that runs the CDK CLI: `make synth` without the CLI writes the templates `cdk synth` writes.

Both synthesize the dev stage alone (`-c env=dev`), side by side: the CLI from node_modules with the
app from cdk.json, and tools/synth.py running that app itself. Every template and asset manifest
must be byte-identical; only tree.json and the *.metadata.json files may differ (stack traces
carry the jsii kernel's temporary directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tools.nag_report import violations

pytestmark = pytest.mark.heavy

CLI = REPO / "node_modules" / ".bin" / "cdk"
# The committed config's example values (config/placeholders.py) are fine for a review synth.
REVIEW = "erp:placeholders=warn"


def compared_files(outdir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(outdir)): p.read_bytes()
        for pattern in ("**/*.template.json", "**/*.assets.json")
        for p in sorted(outdir.glob(pattern))
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path]:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make setup` (npm ci installs the pinned CDK CLI)")
    root = tmp_path_factory.mktemp("cli-vs-app")
    by_cli, by_app = root / "cli", root / "app"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(CLI.parent), os.environ.get("PATH", "")]),
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    commands = [
        [str(CLI), "synth", "--quiet", "--output", str(by_cli), "-c", "env=dev", "-c", REVIEW],
        [sys.executable, "-m", "tools.synth", "--output", str(by_app), "-c", "env=dev", "-c", REVIEW],
    ]
    # Side by side: the two synths are independent and the machine has two cores.
    running = [
        subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands
    ]
    for command, process in zip(commands, running, strict=True):
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"{' '.join(command[:3])} failed:\n{output.decode()[-3000:]}"
    return by_cli, by_app


def test_templates_and_asset_manifests_are_byte_identical_to_cdk_synth(both):
    by_cli, by_app = both
    cli_files, app_files = compared_files(by_cli), compared_files(by_app)
    assert sum(name.endswith(".template.json") for name in cli_files) >= 8  # the dev stage's stacks
    assert sorted(app_files) == sorted(cli_files)
    differing = [name for name in cli_files if cli_files[name] != app_files[name]]
    assert differing == []


def test_the_nag_report_is_written_the_same_way(both):
    by_cli, by_app = both
    assert violations(by_app) == violations(by_cli) == []

"""The one test that runs the CDK CLI: `make synth` without the CLI runs the app exactly as `cdk synth` does.

The app's templates depend on nothing but what it is handed: its command line, working directory, environment
(CDK_CONTEXT_JSON, CDK_OUTDIR, CDK_DEFAULT_REGION, ...) and the files it reads. So instead of synthesizing the
app twice, both runners, with the same arguments (`-c env=dev -c erp:placeholders=warn`), run a recorder in its
place: a copy of the working tree whose cdk.json names `recorder.py` as the app, with context keys set at every
level (~/.cdk.json, cdk.context.json, cdk.json, -c) so that a different merge shows. The recorder notes all it was
handed and writes a one-stack assembly whose template holds what of it can reach a template. The notes must agree
and the templates and manifests must be byte-identical (so neither runner rewrites what the app writes). The
variables and context keys the CLI passes and tools/synth.py does not are closed lists, each with the reason it
cannot change a template (a CLI upgrade that adds one fails here until it is explained or passed). Finally the pinned CLI reads the session's real assembly and selects the
dev stage's stacks by the construct path `make deploy` and `make diff` give it.

This replaced a second and third synth of the dev stage (the CLI's and tools/synth.py's, ~35 s of the suite).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from tests.conftest import REPO
from tools.secret_scan import working_tree_files

pytestmark = pytest.mark.heavy

CLI = REPO / "node_modules" / ".bin" / "cdk"
ARGS = ["-c", "env=dev", "-c", "erp:placeholders=warn"]  # a review synth of the dev stage, as `make synth ENV=dev`
# Keys set at more than one level (~/.cdk.json < cdk.context.json < cdk.json < -c): the runners must merge alike.
PROBES = {"user": "probe:user", "lookups": "probe:lookups", "settings": "probe:settings"}
PROBE_ARGS = ["-c", "probe:settings=cli", "-c", "probe:user=cli"]
# Set by the CLI (aws-cdk 2.1148) for the app and not by tools/synth.py, and why no template can depend on them
# (read in aws-cdk-lib 2.275's jsii bundle: core/lib/app.js, core/lib/errors.js, core/lib/validation/private/color.js).
LEFT_OUT = {
    "CDK_CLI_ASM_VERSION": "defined in cx-api, read nowhere",
    "CDK_ERROR_FILE": "where the app leaves a synth error for the CLI to print; tools/synth.py passes stderr on",
    "CDK_PERF_COUNTERS_FILE": "performance counters for the CLI's telemetry (disabled), not a template or manifest",
    "AWS_EC2_METADATA_DISABLED": "the AWS SDK's instance metadata: synth calls no AWS",
    "FORCE_COLOR": "colour of validation messages on a terminal",
    "PYTHONIOENCODING": "encoding of the app's stdout/stderr (templates are written by the jsii kernel)",
}
# Context the CLI adds and tools/synth.py does not, and why the app cannot tell (the proposed tools/synth.py fix
# passes it too; then this is empty).
# Context keys the CLI passes and tools/synth.py does not, with the reason (none now: a new one fails the test).
CONTEXT_LEFT_OUT: dict[str, str] = {}

# Stands in for app.py. seen.json: everything the app could see (the output directory as a marker). The template:
# what of it can reach a template (less the closed lists above), written where CDK_OUTDIR says.
RECORDER = """
import json, os, sys
from pathlib import Path

outdir = Path(os.environ["CDK_OUTDIR"])
seen = {
    "argv": sys.argv,
    "executable": sys.executable,
    "cwd": os.getcwd(),
    "outdir_absolute": outdir.is_absolute(),
    "environment": {k: ("<outdir>" if k == "CDK_OUTDIR" else v) for k, v in sorted(os.environ.items())},
    "context": json.loads(os.environ.get("CDK_CONTEXT_JSON", "null")),
}
outdir.mkdir(parents=True, exist_ok=True)
(outdir / "seen.json").write_text(json.dumps(seen, indent=1))
ignored = json.loads(Path("recorder-ignores.json").read_text())
effective = {
    **seen,
    "environment": {k: v for k, v in seen["environment"].items() if k not in ignored["environment"]},
    "context": {k: v for k, v in sorted(seen["context"].items()) if k not in ignored["context"]},
}
effective["environment"].pop("CDK_CONTEXT_JSON")  # as parsed, in "context"
template = {"Resources": {"Recorded": {"Type": "AWS::CloudFormation::WaitConditionHandle", "Metadata": effective}}}
(outdir / "Recorded.template.json").write_text(json.dumps(template, indent=1))
manifest = {
    "version": Path("schema-version").read_text().strip(),
    "artifacts": {
        "Recorded": {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": "Recorded.template.json"},
        }
    },
}
(outdir / "manifest.json").write_text(json.dumps(manifest, indent=1))
"""


def cli_environment() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(CLI.parent), os.environ.get("PATH", "")]),
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        # CI=true makes the CLI print its warnings on stdout (CI sets it): the same here, so `cdk ls` output that
        # a warning pollutes fails on every machine, not only in CI.
        "CI": "true",
    }


def run(command: list[str], cwd: Path, home: Path | None = None) -> str:
    """`command` as make runs it from `cwd` (a shell there says PWD=cwd)."""
    env = {**cli_environment(), "PWD": str(cwd), **({"HOME": str(home)} if home else {})}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command[:3])} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout


def compared_files(outdir: Path) -> dict[str, bytes]:
    """What deploys read: the templates, asset manifests and manifests (seen.json is the recorder's note)."""
    return {
        str(p.relative_to(outdir)): p.read_bytes()
        for pattern in ("**/*.template.json", "**/*.assets.json", "**/manifest.json")
        for p in sorted(outdir.glob(pattern))
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path]:
    """(the CLI's output, tools/synth.py's output) of the recorder, run from a copy of the working tree."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make setup` (npm ci installs the pinned CDK CLI)")
    root = tmp_path_factory.mktemp("cli-vs-app")
    repo = root / "repo"
    for name in working_tree_files(REPO):
        if (REPO / name).is_file() and not name.startswith("tests/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    for linked in (".venv", "node_modules"):
        (repo / linked).symlink_to(REPO / linked)
    settings = json.loads((REPO / "cdk.json").read_text())
    assert settings["app"].split()[-1] == "app.py"
    settings["app"] = settings["app"].replace("app.py", "recorder.py")  # the same interpreter, another script
    settings["context"].update({PROBES["settings"]: "settings", PROBES["lookups"]: "settings"})
    (repo / "cdk.json").write_text(json.dumps(settings, indent=2))
    lookups = json.loads((REPO / "cdk.context.json").read_text())
    (repo / "cdk.context.json").write_text(json.dumps({**lookups, PROBES["lookups"]: "lookups", "probe:l": "l"}))
    home = root / "home"
    home.mkdir()
    user = {PROBES["user"]: "user", PROBES["lookups"]: "user", next(iter(lookups)): "user", "probe:u": "u"}
    (home / ".cdk.json").write_text(json.dumps({"context": user}))
    (repo / "recorder.py").write_text(RECORDER)
    (repo / "recorder-ignores.json").write_text(
        json.dumps({"environment": sorted(LEFT_OUT), "context": sorted(CONTEXT_LEFT_OUT)})
    )
    (repo / "schema-version").write_text(cdk.cloud_assembly_schema.Manifest.version())
    by_cli, by_app = root / "cli", root / "app"
    # As the Makefile runs them: `make synth` (tools/synth.py) and the CLI that `make deploy`/`diff` use.
    run([str(CLI), "synth", "--quiet", "--output", str(by_cli), *ARGS, *PROBE_ARGS], cwd=repo, home=home)
    run([sys.executable, "-m", "tools.synth", "--output", str(by_app), *ARGS, *PROBE_ARGS], cwd=repo, home=home)
    return by_cli, by_app


def recorded(outdir: Path) -> dict:
    return json.loads((outdir / "seen.json").read_text())


def test_templates_and_asset_manifests_are_byte_identical_to_cdk_synth(both):
    by_cli, by_app = both
    cli, app = recorded(by_cli), recorded(by_app)
    assert cli["argv"] == ["recorder.py"] and cli["outdir_absolute"]
    assert cli["context"]["env"] == "dev" and cli["context"]["erp:placeholders"] == "warn"
    assert {"probe:l", "probe:u", *PROBES.values()} <= set(cli["context"])  # every level reached the app
    cli_env, app_env = cli.pop("environment"), app.pop("environment")
    assert cli_env["CDK_OUTDIR"] == "<outdir>"
    # The context as the app parses it (the CLI writes compact JSON, tools/synth.py json.dumps' default).
    assert json.loads(cli_env.pop("CDK_CONTEXT_JSON")) == cli["context"]
    assert json.loads(app_env.pop("CDK_CONTEXT_JSON")) == app["context"]
    for key in CONTEXT_LEFT_OUT:
        cli["context"].pop(key, None)
    missing = {k for k in cli_env if k not in app_env}
    assert missing <= set(LEFT_OUT), f"the CLI passes, tools/synth.py does not: {sorted(missing - set(LEFT_OUT))}"
    assert {k: v for k, v in app_env.items() if k not in LEFT_OUT} == {
        k: v for k, v in cli_env.items() if k not in LEFT_OUT
    }
    assert app == cli  # command line, interpreter, working directory, context
    # The same, byte for byte, as the recorder wrote it from what reaches a template: neither runner rewrites it.
    cli_files, app_files = compared_files(by_cli), compared_files(by_app)
    assert sorted(cli_files) == sorted(app_files) == ["Recorded.template.json", "manifest.json"]
    assert [name for name in cli_files if cli_files[name] != app_files[name]] == []


def test_the_nag_report_is_written_the_same_way(both, cdk_out):
    """Both runners make cdk-nag findings a report (validation-report.json, which tools/nag_report.py fails on)
    instead of a synth error, and the pinned CLI reads the real assembly and selects the dev stage's stacks
    by the construct path `make deploy` and `make diff` pass it."""
    by_cli, by_app = both
    for outdir in both:
        assert recorded(outdir)["context"]["@aws-cdk/core:failSynthOnValidationErrors"] is False
    listed = run([str(CLI), "ls", "--app", str(cdk_out), "ErpPipeline/Dev/*"], cwd=REPO)
    stage = cdk_out / "assembly-ErpPipeline-Dev"  # the pipeline's dev stage, nested in the session's assembly
    artifacts = json.loads((stage / "manifest.json").read_text())["artifacts"].values()
    expected = {
        f"{a['displayName']} ({a['properties']['stackName']})"
        for a in artifacts
        if a["type"] == "aws:cloudformation:stack"
    }
    assert len(expected) >= 8 and set(listed.splitlines()) == expected

"""tools/synth.py: the context it hands the app, and a missing lookup stopping synth with one line.

The comparison with `cdk synth` itself is the heavy tests/infra/test_synth_matches_cli.py.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tools import synth

AZ_KEY = "availability-zones:account=444444444444:region=ap-northeast-2"
# The smallest app that asks for a lookup: the AZs of an account cdk.context.json may not know.
LOOKUP_APP = textwrap.dedent(
    """
    import aws_cdk as cdk

    app = cdk.App()
    stack = cdk.Stack(app, "Lookup", env=cdk.Environment(account="444444444444", region="ap-northeast-2"))
    cdk.CfnOutput(stack, "Zones", value=cdk.Fn.join(",", stack.availability_zones))
    app.synth()
    """
)


def project(root: Path, context: dict | None = None) -> Path:
    root.mkdir()
    (root / "app.py").write_text(LOOKUP_APP)
    (root / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py", "context": {}}))
    if context is not None:
        (root / "cdk.context.json").write_text(json.dumps(context))
    return root


def test_context_merges_like_the_cli_and_adds_its_flags(tmp_path):
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "x", "context": {"a": 1, "b": 1}}))
    (tmp_path / "cdk.context.json").write_text(json.dumps({"b": 2, "c": 2}))
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cdk.json").write_text(json.dumps({"context": {"c": 3, "d": 3}}))
    context = synth.cli_context({"a": "cli"}, repo=tmp_path, home=home)
    # -c beats cdk.json, which beats cdk.context.json, which beats ~/.cdk.json.
    assert {k: context[k] for k in "abcd"} == {"a": "cli", "b": 1, "c": 2, "d": 3}
    assert context["aws:cdk:enable-path-metadata"] is context["aws:cdk:enable-asset-metadata"] is True
    assert context["aws:cdk:version-reporting"] is True
    assert context["aws:cdk:bundling-stacks"] == ["**"]
    assert context["@aws-cdk/core:failSynthOnValidationErrors"] is False


def test_a_setting_turned_off_leaves_its_flag_out_as_the_cli_does(tmp_path):
    """The CLI never passes these flags as false; it omits them (and says versionReporting off with its own key)."""
    settings = {"app": "x", "pathMetadata": False, "assetMetadata": False, "versionReporting": False}
    (tmp_path / "cdk.json").write_text(json.dumps(settings))
    flags = synth.cli_flags(repo=tmp_path)
    assert not {"aws:cdk:enable-path-metadata", "aws:cdk:enable-asset-metadata", "aws:cdk:version-reporting"} & set(
        flags
    )
    assert flags["aws:cdk:disable-version-reporting"] is True


def test_cdk_json_sets_no_reserved_context_key():
    """The CLI warns about `aws:` keys in cdk.json's context (on stdout in CI, where it broke `cdk ls`)."""
    context = json.loads((synth.REPO / "cdk.json").read_text())["context"]
    assert not [key for key in context if key.startswith("aws:")]


def test_the_committed_project_context_is_cdk_json_plus_the_lookups():
    flags = json.loads((synth.REPO / "cdk.json").read_text())["context"]
    lookups = json.loads((synth.REPO / "cdk.context.json").read_text())
    assert flags and lookups
    assert synth.project_context() == {**lookups, **flags}


def test_a_missing_lookup_fails_with_one_line_and_leaves_no_deployable_assembly(tmp_path, capsys, monkeypatch):
    repo = project(tmp_path / "repo")
    outdir = tmp_path / "out"
    monkeypatch.setattr(synth, "REPO", repo)
    assert synth.main(["--output", str(outdir), "-c", "env=dev"]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert AZ_KEY in line and "cdk.context.json" in line and "npx cdk synth -c env=dev" in line
    assert not (outdir / "manifest.json").exists()


def test_a_cached_lookup_synthesizes_offline(tmp_path):
    zones = ["ap-northeast-2a", "ap-northeast-2c"]
    repo = project(tmp_path / "repo", {AZ_KEY: zones})
    outdir = tmp_path / "out"
    synth.synth(outdir, repo=repo)
    assert synth.missing_lookups(outdir) == []
    template = json.loads((outdir / "Lookup.template.json").read_text())
    assert template["Outputs"]["Zones"]["Value"] == ",".join(zones)
    assert json.loads((outdir / "tree.json").read_text())  # a complete assembly


def test_a_bad_assignment_is_refused():
    with pytest.raises(SystemExit):
        synth.main(["-c", "no-equals-sign"])

"""`make synth` without the CDK CLI in the loop: run the app as `cdk synth` would, and refuse missing lookups.

The CLI (aws-cdk 2.1148, lib/cxapp/exec.ts) runs cdk.json's `app` command with these environment variables:
  * CDK_CONTEXT_JSON: ~/.cdk.json's context < cdk.context.json < cdk.json's context < each `-c key=value`
    (later wins), plus the flags it always adds: aws:cdk:enable-path-metadata, aws:cdk:enable-asset-metadata,
    aws:cdk:version-reporting (true), aws:cdk:bundling-stacks ["**"], and
    @aws-cdk/core:failSynthOnValidationErrors false (cdk-nag findings go to validation-report.json, which
    tools/nag_report.py fails on);
  * CDK_OUTDIR, CDK_CLI_VERSION, CDK_DEFAULT_REGION (us-east-1 unless AWS_REGION says otherwise; the account
    only with credentials, which synth never has). It also sets CDK_CLI_ASM_VERSION, CDK_ERROR_FILE and
    CDK_PERF_COUNTERS_FILE, which aws-cdk-lib 2.275 does not read; they are left out.
Running the app directly saves the CLI's own node process (~250 MB) and its start-up.

What the CLI does after the app differs on purpose: when the assembly lists a context lookup that
cdk.context.json has no value for, CDK has synthesized placeholder values; the CLI would call AWS and
synthesize again. Synth never calls AWS, so this is an error naming the lookup, and the assembly's
manifest.json is removed so no `cdk deploy --app` can pick up the placeholders.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

from config import environment_names, load_environment
from config.kubernetes_versions import support_warnings

REPO = Path(__file__).resolve().parents[1]

# What the CLI adds to every app run (contextFromSettings with the default settings).
CLI_FLAGS: dict[str, object] = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
    "aws:cdk:bundling-stacks": ["**"],
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}


class MissingContext(Exception):
    """The app asked for a lookup that cdk.context.json cannot answer."""


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def project_context(repo: Path = REPO) -> dict:
    """cdk.json's feature flags and the committed lookups, as the CLI merges them (cdk.json wins)."""
    return {**_json(repo / "cdk.context.json"), **_json(repo / "cdk.json").get("context", {})}


# cdk.json settings the CLI turns into the flags above (e.g. "versionReporting": false).
SETTING_FLAGS = {
    "pathMetadata": "aws:cdk:enable-path-metadata",
    "assetMetadata": "aws:cdk:enable-asset-metadata",
    "versionReporting": "aws:cdk:version-reporting",
}


def cli_flags(repo: Path = REPO) -> dict[str, object]:
    """As the CLI's contextFromSettings: a setting that is off leaves its flag out (it is never passed as false)."""
    settings = _json(repo / "cdk.json")
    off = {flag for key, flag in SETTING_FLAGS.items() if settings.get(key, True) is False}
    flags = {flag: value for flag, value in CLI_FLAGS.items() if flag not in off}
    if settings.get("versionReporting") is False:  # the CLI says it with a key of its own instead
        flags["aws:cdk:disable-version-reporting"] = True
    return flags


def cli_context(overrides: Mapping[str, object] = {}, repo: Path = REPO, home: Path | None = None) -> dict:
    """Everything the CLI would put in CDK_CONTEXT_JSON for `cdk synth -c k=v ...`."""
    user = _json((home or Path.home()) / ".cdk.json").get("context", {})
    return {**user, **project_context(repo), **overrides, **cli_flags(repo)}


def cli_version(repo: Path = REPO) -> str | None:
    return _json(repo / "node_modules" / "aws-cdk" / "package.json").get("version")


def app_environment(outdir: Path, context: Mapping[str, object], repo: Path = REPO) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CDK_OUTDIR=str(outdir),
        CDK_CONTEXT_JSON=json.dumps(context),
        CDK_DEFAULT_REGION=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    version = cli_version(repo)
    if version:
        env["CDK_CLI_VERSION"] = version
    return env


def manifests(outdir: Path) -> Iterator[tuple[Path, dict]]:
    """manifest.json of the assembly and of every nested (stage) assembly."""
    manifest_file = outdir / "manifest.json"
    manifest = _json(manifest_file)
    yield manifest_file, manifest
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") == "cdk:cloud-assembly":
            yield from manifests(outdir / artifact["properties"]["directoryName"])


def missing_lookups(outdir: Path) -> list[dict]:
    """The `missing` entries of every manifest, each once (a stage's also appear in its parent's)."""
    seen: dict[str, dict] = {}
    for _, manifest in manifests(outdir):
        for entry in manifest.get("missing", []):
            seen.setdefault(entry["key"], entry)
    return list(seen.values())


def describe_missing(entry: dict, overrides: Mapping[str, object]) -> str:
    args = " ".join(f"-c {k}={v}" for k, v in overrides.items())
    return (
        f"synth: context lookup {entry['key']} ({entry.get('provider', '?')}) has no value in cdk.context.json, "
        f"so CDK synthesized placeholders; refresh it with credentials for that account: "
        f"npx cdk synth {args} --quiet".rstrip()
        + " (the CLI performs the lookup and writes cdk.context.json), then commit cdk.context.json"
    )


def synth(outdir: Path, overrides: Mapping[str, object] = {}, repo: Path = REPO) -> None:
    """Run cdk.json's app into `outdir`; CalledProcessError if it fails, MissingContext on a lookup."""
    outdir.mkdir(parents=True, exist_ok=True)
    command = shlex.split(_json(repo / "cdk.json")["app"])
    env = app_environment(outdir.resolve(), cli_context(overrides, repo), repo)
    subprocess.run(command, cwd=repo, env=env, check=True)
    missing = missing_lookups(outdir)
    if missing:
        (outdir / "manifest.json").unlink()
        raise MissingContext("\n".join(describe_missing(entry, overrides) for entry in missing))


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", "-o", type=Path, default=REPO / "cdk.out")
    parser.add_argument("--context", "-c", type=_assignment, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--app-dir", type=Path, default=REPO, help="run the cdk.json app of this directory (make bench's yardstick)"
    )
    args = parser.parse_args(argv)
    try:
        synth(args.output, dict(args.context), repo=args.app_dir.resolve())
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1  # the app printed its own error (a config error is one line)
    except MissingContext as exc:
        print(exc, file=sys.stderr)
        return 3
    if args.app_dir.resolve() != REPO:
        return 0
    for line in kubernetes_support_warnings(date.today()):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def kubernetes_support_warnings(today: date) -> list[str]:
    """Standard support of a configured minor ending within 90 days (issue 24 item 4): said, never failed on."""
    currents = {name: load_environment(name).cluster.kubernetes_version for name in environment_names()}
    return support_warnings(currents, today)


if __name__ == "__main__":
    sys.exit(main())

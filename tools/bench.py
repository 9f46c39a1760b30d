"""`make bench`: median wall time and peak memory of `make synth` and `make test`, measured, not estimated.

Wall time and the largest single process's RSS come from /usr/bin/time; the whole process
tree's peak RSS (node + python + jsii together) is sampled from /proc, because that is what
a 2-core CI box actually has to hold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree_rss_kib(root_pid: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            statm = Path(entry.path, "statm").read_text().split()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        rss[int(entry.name)] = int(statm[1]) * PAGE_KIB
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(command: list[str]) -> tuple[float, int, int]:
    """(wall seconds, largest process KiB, whole tree peak KiB); raises if the command fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%e %M", "-o", out.name, *command],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_kib(proc.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
        if code != 0:
            raise SystemExit(f"bench: {' '.join(command)} failed with exit code {code}")
        wall, max_rss = Path(out.name).read_text().split()[-2:]
    return float(wall), int(max_rss), peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'command':<12} {'runs':>4} {'median s':>9} {'max s':>7} {'largest proc MiB':>17} {'tree peak MiB':>14}")
    for label, command in (("make synth", ["make", "synth"]), ("make test", ["make", "test"])):
        results = [measure(command) for _ in range(args.runs)]
        walls = [r[0] for r in results]
        print(
            f"{label:<12} {args.runs:>4} {statistics.median(walls):>9.1f} {max(walls):>7.1f} "
            f"{max(r[1] for r in results) / 1024:>17.0f} {max(r[2] for r in results) / 1024:>14.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

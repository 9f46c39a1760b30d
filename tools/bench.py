"""`make bench`: wall time, peak memory and assembly sizes of synth (and `make test`), measured, not estimated.

Wall time and the largest single process's RSS come from /usr/bin/time; the whole process
tree's peak RSS (node + python + jsii together) is sampled from /proc, because that is what
a 2-core CI box actually has to hold. Rows: `make synth` (the app without the CLI, tools/synth.py),
`cdk synth` (the CLI, for comparison), the dev stage alone with its 3 services and with 12
(tools/scale_config.py), and `make test`. Sizes are the largest template and the largest
manifest.json of the assembly a row wrote.
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

from tools.scale_config import write_config_dir

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


def sizes(outdir: Path) -> tuple[str, int, int]:
    """(largest template's name, its bytes, largest manifest.json's bytes) of an assembly."""
    template = max(outdir.rglob("*.template.json"), key=lambda p: p.stat().st_size)
    manifest = max(p.stat().st_size for p in outdir.rglob("manifest.json"))
    return template.name, template.stat().st_size, manifest


def rows(scratch: Path, *, cli: bool, test: bool) -> list[tuple[str, list[str], Path | None]]:
    """(label, command, the assembly it writes) for every row of the table."""
    twelve = write_config_dir(scratch / "config-12", 12)
    synth = [sys.executable, "-m", "tools.synth", "-c", "env=dev"]
    table = [("make synth (pipeline + dev + prod)", ["make", "synth", f"OUT={scratch / 'all'}"], scratch / "all")]
    if cli:
        cdk = [str(REPO / "node_modules" / ".bin" / "cdk"), "synth", "--quiet", "--output", str(scratch / "cli")]
        table.append(("cdk synth (the CLI, same app)", cdk, scratch / "cli"))
    table += [
        ("synth dev, 3 services", [*synth, "--output", str(scratch / "dev3")], scratch / "dev3"),
        (
            "synth dev, 12 services",
            [*synth, "-c", f"config_dir={twelve}", "--output", str(scratch / "dev12")],
            scratch / "dev12",
        ),
    ]
    if test:
        table.append(("make test", ["make", "test"], None))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cli", dest="cli", action="store_false", help="skip the `cdk synth` comparison row")
    parser.add_argument("--no-test", dest="test", action="store_false", help="skip the `make test` row")
    args = parser.parse_args(argv)
    print(
        f"{'command':<36} {'runs':>4} {'median s':>9} {'max s':>7} {'largest proc MiB':>17} {'tree peak MiB':>14}"
        f" {'template KiB':>13} {'manifest KiB':>13}  largest template"
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for label, command, outdir in rows(Path(scratch), cli=args.cli, test=args.test):
            results = [measure(command) for _ in range(args.runs)]
            walls = [r[0] for r in results]
            name, template_bytes, manifest_bytes = sizes(outdir) if outdir else ("-", 0, 0)
            print(
                f"{label:<36} {args.runs:>4} {statistics.median(walls):>9.1f} {max(walls):>7.1f} "
                f"{max(r[1] for r in results) / 1024:>17.0f} {max(r[2] for r in results) / 1024:>14.0f}"
                f" {template_bytes / 1024:>13.0f} {manifest_bytes / 1024:>13.0f}  {name}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

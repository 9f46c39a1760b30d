"""`make journeys`: runs tests/journeys and prints journey -> steps -> result per environment as markdown.

Each test appends what it played to JOURNEY_REPORT (tests/journeys/test_journeys.py); this reads it back.
The steps column names the journey's own calls and checks, in order; "setup" counts the steps of the
journeys played first to get there (sign-up, sign-in, an administrator's grant).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def table(lines: list[dict]) -> str:
    envs = sorted({line["env"] for line in lines})
    rows: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for line in lines:
        rows[(line["kind"], line["name"])][line["env"]] = line
    out = [
        f"| kind | journey | steps (its own calls, in order) | {' | '.join(envs)} |",
        f"|---|---|---|{'---|' * len(envs)}",
    ]
    for (kind, name), by_env in sorted(rows.items(), key=lambda item: (item[0][0] != "journey", item[0][1])):
        sample = next(iter(by_env.values()))
        own = [step for j in sample["journeys"] if not j["setup"] for step in j["steps"]]
        setup = sum(len(j["steps"]) for j in sample["journeys"] if j["setup"])
        steps = "; ".join(own) + (f" (+{setup} setup)" if setup else "")
        results = [
            "pass" if by_env[env]["result"] == "passed" else by_env[env]["result"] if env in by_env else "-"
            for env in envs
        ]
        out.append(f"| {kind} | {name} | {steps} | {' | '.join(results)} |")
    return "\n".join(out)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "journeys.jsonl"
        env = os.environ | {"JOURNEY_REPORT": str(report)}
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-n",
                "0",
                "tests/journeys/test_journeys.py",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        lines = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print(table(lines))
    print(f"\n{run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())

"""Fail closed on cdk-nag findings: CDK writes them to validation-report.json but still exits 0."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.findings import report


def violations(cdk_out: Path) -> list[tuple[str, str, str]]:
    """(rule, construct path, description) for every unacknowledged finding of every plugin."""
    report_file = cdk_out / "validation-report.json"
    if not report_file.is_file():
        raise FileNotFoundError(f"{report_file}: no validation report (was cdk-nag registered?)")
    report = json.loads(report_file.read_text())
    found = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                found.append((violation["ruleName"], construct["constructPath"], violation.get("description", "")))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cdk_out", nargs="?", default="cdk.out", type=Path)
    args = parser.parse_args(argv)
    try:
        found = violations(args.cdk_out)
    except FileNotFoundError as exc:
        print(f"cdk-nag: {exc}", file=sys.stderr)
        return 1
    lines = [f"{rule}  {path}  {description}" for rule, path, description in found]
    return report(lines, f"cdk-nag: {len(found)} unacknowledged finding(s)")


if __name__ == "__main__":
    sys.exit(main())

"""How the gates that run in `make` end: every finding on its own line, a count, and exit status 1 if any."""

from __future__ import annotations

from collections.abc import Sequence


def report(lines: Sequence[str], summary: str) -> int:
    for line in lines:
        print(line)
    print(summary)
    return 1 if lines else 0

"""Scan the repository's files for committed credentials (the old system kept its DB password in git)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

from tools.findings import report

# Lock files hold integrity hashes (high entropy, not credentials).
SKIPPED = {"package-lock.json"}
# Upstream CRD schemas, byte-identical to ../shared/crds (a test checks): their field descriptions
# mention keys and passwords, and they must stay unmodified, so no inline allowlist pragma.
SKIPPED_DIRS = ("k8s_charts/crds/",)


def working_tree_files(root: Path) -> list[str]:
    """Tracked files plus untracked ones git doesn't ignore: what the next commit could hold."""
    return subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def repository_files(root: Path) -> list[str]:
    """A secret is caught before it is committed: the working tree's files, less the skipped ones."""
    listed = working_tree_files(root)
    kept = [
        f for f in listed if Path(f).name not in SKIPPED and not f.startswith(SKIPPED_DIRS) and (root / f).is_file()
    ]
    # A link to a file that is scanned anyway (the shared CA bundle, kube_api.py) is that file once more.
    real = {(root / f).resolve() for f in kept if not (root / f).is_symlink()}
    return [f for f in kept if not ((root / f).is_symlink() and (root / f).resolve() in real)]


def scan(root: Path, files: list[str]) -> list[tuple[str, int, str]]:
    """(file, line, kind) for every finding; detect-secrets' inline `pragma: allowlist secret` is honoured."""
    collection = SecretsCollection(root=str(root))
    with default_settings():
        collection.scan_files(*files)
    return sorted((name, secret.line_number, secret.type) for name, secret in collection)


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    findings = scan(root, repository_files(root))
    lines = [f"{name}:{line}: {kind}" for name, line, kind in findings]
    return report(lines, f"secret scan: {len(findings)} finding(s)")


if __name__ == "__main__":
    sys.exit(main())

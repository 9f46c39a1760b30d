"""The first-deploy runbook, executable on paper (issue 18, build item 3).

The committed config is an example: its account ids, ARNs, ranges, domains and the NAT AMI are placeholders
(config/placeholders.py finds them by rule). Every one must be named in the README's "First deploy into fresh
accounts", a synth that deploys must refuse each with one line naming file, field and rule, and once they
are replaced with real-looking values (and the lookups refreshed, as the runbook says) the suite's fast part
passes on a strict synth.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import build, new_app
from config import CONFIG_DIR, ConfigError
from config.placeholders import find_placeholders, rule_for
from tests.conftest import REPO, cdk_context
from tools.secret_scan import working_tree_files

# Real-looking replacements, as an operator would write them (the rules must find none of them).
REPLACEMENTS = {
    "111111111111": "210987654321",
    "222222222222": "310987654321",
    "333333333333": "410987654321",
    "203.0.113.0/24": "121.134.10.0/24",  # an office's egress range
    "198.51.100.0/24": "10.60.0.0/24",  # MongoDB Atlas peering range
    "00000000-0000-0000-0000-000000000000": "7f3c2a1e-5b4d-4c6e-9a8b-1c2d3e4f5a6b",
    "ami-00000000000000000": "ami-0c9a1b2d3e4f56789",
    "example-org/": "acme-corp/",
    "example.com": "acme-corp.co.kr",
}


def runbook() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## First deploy into fresh accounts")
    return readme[start : readme.index("\n## ", start + 1)]


def committed() -> list:
    return find_placeholders(CONFIG_DIR, cdk_context())


def test_the_committed_examples_are_found_by_rule():
    fields = {(p.file.split("/")[-1], p.leaf) for p in committed()}
    for env in ("dev.yaml", "prod.yaml"):
        for field in ("account", "cluster.admin_role_arns", "mongodb.egress_cidrs"):
            assert (env, field) in fields
        assert (env, "registry.docker_hub_credential_arn") in fields
    # Prod's EKS endpoint is private (a prod rule, issue 18 item 19): only dev has a public CIDR to replace.
    assert ("dev.yaml", "cluster.endpoint_public_cidrs") in fields
    assert {("toolchain.yaml", "account"), ("toolchain.yaml", "connection_arn")} <= fields
    assert any(p.file == "cdk.context.json" and p.field.startswith("ami:") for p in committed())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account", "444444444444"),
        ("connection_arn", "arn:aws:codeconnections:ap-northeast-2:210987654321:connection/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12),
        ("cluster.endpoint_public_cidrs.0", "192.0.2.128/25"),
        ("observability.alarm_emails.0", "oncall@corp.example"),
        ("auth.callback_urls.0", "https://erp.example.net/callback"),
    ],
)  # fmt: skip
def test_placeholders_in_the_same_style_are_caught_too(field, value):
    assert rule_for(field, value) is not None


@pytest.mark.parametrize("value", ["210987654321", "121.134.10.0/24", "10.60.0.0/24", "ops@acme-corp.co.kr"])
def test_real_values_are_not_placeholders(value):
    assert rule_for("x", value) is None


def test_a_synth_that_deploys_refuses_a_placeholder_with_one_line():
    app = new_app(context={**cdk_context(), "env": "dev"})  # no erp:placeholders: refuse, as `cdk deploy` does
    with pytest.raises(ConfigError) as refused:
        build(app)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("config/dev.yaml: account: '111111111111' is a placeholder (an account id")
    assert "README: First deploy into fresh accounts" in message


def test_every_placeholder_is_named_in_the_first_deploy_runbook():
    """A newcomer replaces what the runbook names: each field (and the AMI lookup) is there in backticks."""
    text = runbook()
    named = set(re.findall(r"`([^`]+)`", text))
    missing = sorted({p.leaf for p in committed() if p.file != "cdk.context.json" and p.leaf not in named})
    assert missing == [], f"README 'First deploy into fresh accounts' does not name: {missing}"
    assert "cdk.context.json" in named


def test_the_runbook_names_only_make_targets_and_files_that_exist():
    text = runbook()
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    for target in re.findall(r"`make ([a-z][\w-]*)", text):
        assert target in targets, f"`make {target}` in the runbook is not a Makefile target"
    for path in re.findall(r"`((?:config|tools|docs|constructs_lib|k8s_charts)/[\w./-]+)`", text):
        assert (REPO / path).exists(), f"{path} in the runbook does not exist"


def _replaced_copy(root: Path) -> Path:
    """The repository as an operator has it after the runbook: placeholders replaced, lookups refreshed."""
    files = working_tree_files(REPO)
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    for path in [*root.joinpath("config").glob("*.yaml"), root / "cdk.context.json"]:
        text = path.read_text(encoding="utf-8")
        for old, new in REPLACEMENTS.items():
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    (root / ".build").symlink_to(REPO / ".build")  # the Lambda bundles by content hash: no pip run again
    return root


@pytest.mark.heavy
def test_after_the_runbook_the_fast_suite_passes_on_a_strict_synth(tmp_path):
    root = _replaced_copy(tmp_path / "repo")
    context = json.loads((root / "cdk.context.json").read_text())
    assert find_placeholders(root / "config", context) == []
    env = os.environ | {"ERP_TEST_PLACEHOLDERS": "refuse"}  # the copy's session synth refuses placeholders
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-m", "not heavy", "-x",
         "tests/config", "tests/infra/test_first_deploy.py", "tests/unit", "tests/contract"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert re.search(r"\d+ passed", run.stdout)

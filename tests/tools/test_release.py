"""make release: the one edit that ships a version through git, refusing what the pipeline would refuse."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from config import CONFIG_DIR, load_environment
from tools.release import ReleaseError, main, release

REPO = CONFIG_DIR.parent


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_sets_the_tag_and_changes_nothing_else(config_dir, env):
    before = (config_dir / f"{env}.yaml").read_text()
    assert release("notification-service", "1.2.0", env, config_dir) == "1.0.0"
    after = (config_dir / f"{env}.yaml").read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [
        (
            '    image: {repository: erp/notification-service, tag: "1.0.0"}',
            '    image: {repository: erp/notification-service, tag: "1.2.0"}',
        )
    ]
    # Comments survive (PyYAML would drop every one of them).
    assert after.count("#") == before.count("#")
    services = {s.name: s for s in load_environment(env, config_dir).services}
    assert services["notification-service"].image.tag == "1.2.0"
    assert services["approval-request-service"].image.tag == "1.0.0"


@pytest.mark.parametrize(
    ("service", "tag", "env", "message"),
    [
        ("notification-service", "latest", "dev", "tag 'latest' is not allowed"),
        ("payroll-service", "1.0.0", "dev", "unknown service 'payroll-service' in dev.yaml"),
        ("notification-service", "1.0.0", "staging", "unknown environment 'staging' (known: dev, prod)"),
        ("notification-service", "1.0 beta", "dev", "'1.0 beta' is not a valid image tag"),
    ],
)
def test_refuses_with_one_line_and_writes_nothing(config_dir, service, tag, env, message):
    before = {p.name: p.read_text() for p in config_dir.glob("*.yaml")}
    with pytest.raises(ReleaseError) as info:
        release(service, tag, env, config_dir)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert {p.name: p.read_text() for p in config_dir.glob("*.yaml")} == before


def test_a_digest_is_replaced_by_the_tag(config_dir):
    data = yaml.safe_load((config_dir / "prod.yaml").read_text())
    data["services"][0]["image"] = {"repository": "erp/approval-request-service", "digest": "sha256:" + "a" * 64}
    (config_dir / "prod.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert release("approval-request-service", "2.0.0", "prod", config_dir) == "sha256:" + "a" * 64
    image = load_environment("prod", config_dir).services[0].image
    assert (image.tag, image.digest) == ("2.0.0", None)


def test_cli_exit_codes(capsys):
    assert main(["--service", "notification-service", "--tag", "latest", "--env", "dev"]) == 2
    assert capsys.readouterr().err.startswith("release refused: tag 'latest' is not allowed")


def test_make_release_refuses_without_arguments():
    done = subprocess.run(
        ["make", "-s", "release", "SERVICE=", "TAG=", "ENV="], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage: make release" in done.stderr
    assert sys.executable  # the venv's python runs the tool (make setup)

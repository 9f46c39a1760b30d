"""Bad configuration fails with one line naming file, field and rule — before anything is synthesized."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import CONFIG_DIR, ConfigError, environment_names, load_environment, load_toolchain

REPO = CONFIG_DIR.parent


def assert_refused(config_dir: Path, env: str, field: str, value, expected: str) -> None:
    """Setting `field` to `value` in config_dir/<env>.yaml fails with one line naming the file and the rule."""
    edit(config_dir, env, field, value)
    message = error_of(config_dir, env)
    assert message.startswith(f"{config_dir}/{env}.yaml: ")
    assert expected in message


def edit(config_dir: Path, env: str, dotted: str, value=None, *, delete: bool = False) -> None:
    path = config_dir / f"{env}.yaml"
    data = yaml.safe_load(path.read_text())
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    path.write_text(yaml.safe_dump(data))


def error_of(config_dir: Path, env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_environment(env, config_dir)
    message = str(info.value)
    assert "\n" not in message, "the error must be one line"
    return message


def test_committed_environments_are_valid():
    assert environment_names() == ["dev", "prod"]
    for name in environment_names():
        assert load_environment(name).name == name
    assert load_toolchain().stages == ["dev", "prod"]


def test_unknown_environment_names_the_known_ones(config_dir):
    assert error_of(config_dir, "staging") == (
        f"{config_dir}/staging.yaml: unknown environment 'staging' (known: dev, prod)"
    )


def test_missing_file(config_dir):
    (config_dir / "dev.yaml").unlink()
    assert error_of(config_dir, "dev").endswith("dev.yaml: unknown environment 'dev' (known: prod)")


def test_malformed_yaml(config_dir):
    (config_dir / "dev.yaml").write_text("name: dev\nnetwork: [unclosed\n")
    assert error_of(config_dir, "dev").endswith("dev.yaml: not valid YAML (line 3)")


@pytest.mark.parametrize(
    ("env", "field", "value", "expected"),
    [
        ("dev", "network.vpc_cidr", "10.10.0.0/33", "network.vpc_cidr: not a valid IPv4 CIDR block"),
        ("dev", "network.vpc_cidr", "10.10.0.1/16", "network.vpc_cidr: not a valid IPv4 CIDR block"),
        ("dev", "network.vpc_cidr", "8.8.0.0/16", "network.vpc_cidr: must be a private (RFC 1918) range"),
        ("dev", "network.vpc_cidr", "10.10.0.0/22", "network: vpc_cidr 10.10.0.0/22 is too small for 2 AZs"),
        ("dev", "network.az_count", 4, "network.az_count: Input should be less than or equal to 3"),
        ("dev", "network.az_count", 0, "network.az_count: Input should be greater than or equal to 1"),
        ("dev", "account", "12345", "account: String should match pattern"),
        ("dev", "account", 123456789012, "account: Input should be a valid string"),
        (
            "dev",
            "database.backup_retention_days",
            0,
            "database.backup_retention_days: Input should be greater than or equal to 1",
        ),
        (
            "dev",
            "database.backup_retention_days",
            36,
            "database.backup_retention_days: Input should be less than or equal to 35",
        ),
        ("dev", "database.engine_version", "8.0.39", "database.engine_version: MySQL must be 8.4.x"),
        (
            "dev",
            "network.flow_logs_retention_days",
            10,
            "network.flow_logs_retention_days: must be one of CloudWatch's retention periods",
        ),
        (
            "dev",
            "cluster.kubernetes_version",
            "1.29",
            "cluster.kubernetes_version: must be a version in EKS standard support",
        ),
        (
            "dev",
            "services.0.image",
            {"repository": "erp/x", "tag": "latest"},
            "services.0.image: tag 'latest' is not allowed",
        ),
        (
            "prod",
            "observability.alarm_emails",
            [],
            "observability.alarm_emails: production needs at least one alarm email",
        ),
        ("prod", "database.multi_az", False, "database.multi_az: must be true in production"),
        ("prod", "database.removal", "destroy", "database.removal: 'destroy' is only allowed outside production"),
        (
            "prod",
            "database.backup_retention_days",
            3,
            "database.backup_retention_days: production keeps at least 7 days",
        ),
        ("prod", "production", False, "production: the 'prod' environment must set production: true"),
        ("prod", "schedule", {"start": "08:00", "stop": "20:00"}, "schedule: production does not sleep"),
        (
            "dev",
            "services.0.routes",
            [{"path": "/api/quests"}],
            "services: route paths must be unique across services and employee_function.routes",
        ),
    ],
)
def test_bad_value_names_file_field_and_rule(config_dir, env, field, value, expected):
    assert_refused(config_dir, env, field, value, expected)


def test_unknown_field_is_a_typo(config_dir):
    edit(config_dir, "dev", "database.multi_azz", True)
    assert error_of(config_dir, "dev") == f"{config_dir}/dev.yaml: database.multi_azz: unknown field (typo?)"


def test_missing_required_field(config_dir):
    edit(config_dir, "dev", "database.multi_az", delete=True)
    assert error_of(config_dir, "dev") == f"{config_dir}/dev.yaml: database.multi_az: required field is missing"


def test_name_must_match_file(config_dir):
    edit(config_dir, "dev", "name", "qa")
    assert error_of(config_dir, "dev") == f"{config_dir}/dev.yaml: name: must equal the file name ('dev')"


def test_toolchain_stage_without_config(config_dir):
    data = yaml.safe_load((config_dir / "toolchain.yaml").read_text())
    data["stages"] = ["dev", "staging"]
    (config_dir / "toolchain.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"toolchain.yaml: stages: no config/staging.yaml"):
        load_toolchain(config_dir)


def test_adding_a_file_adds_an_environment(config_dir):
    data = yaml.safe_load((config_dir / "dev.yaml").read_text())
    data["name"] = "qa"
    (config_dir / "qa.yaml").write_text(yaml.safe_dump(data))
    assert environment_names(config_dir) == ["dev", "prod", "qa"]
    assert load_environment("qa", config_dir).cluster_name == "erp-qa"


def test_application_log_group_is_defined_once():
    dev = load_environment("dev")
    assert dev.application_log_group == "/aws/eks/erp-dev/application"


def run_app(config_dir: Path, outdir: Path, env: str) -> subprocess.CompletedProcess:
    context = {"env": env, "config_dir": str(config_dir)}
    environ = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    return subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120
    )


def test_bad_config_fails_synth_with_one_line_and_writes_nothing(config_dir, tmp_path):
    edit(config_dir, "dev", "network.vpc_cidr", "10.10.0.0/99")
    outdir = tmp_path / "out"
    result = run_app(config_dir, outdir, "dev")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and "!!" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"config error: {config_dir}/dev.yaml: network.vpc_cidr: not a valid IPv4 CIDR block")
    assert not (outdir / "manifest.json").exists()

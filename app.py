#!/usr/bin/env python3
"""Entry point: validate config, then build every environment's stage (or the one chosen with -c env=NAME)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from config import CONFIG_DIR, ConfigError, environment_names, load_environment
from stacks.stage import ErpStage


def build(app: cdk.App) -> None:
    """Raises ConfigError before any construct exists, so bad config synthesizes nothing."""
    config_dir = Path(app.node.try_get_context("config_dir") or CONFIG_DIR)
    selected = app.node.try_get_context("env")
    names = [selected] if selected else environment_names(config_dir)
    configs = [load_environment(name, config_dir) for name in names]
    for config in configs:
        ErpStage(app, config.stage_id, config=config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def main() -> None:
    app = cdk.App()
    try:
        build(app)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main()

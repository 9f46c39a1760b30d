#!/usr/bin/env python3
"""Entry point: validate config, then build the pipeline with every stage in it (or, with -c env=NAME, that stage alone)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from config import CONFIG_DIR, ConfigError, environment_names, load_environment, load_toolchain
from config.capacity import check_capacity
from config.placeholders import CONTEXT_KEY as PLACEHOLDERS_KEY
from config.placeholders import find_placeholders
from stacks.pipeline import PIPELINE_ID, PipelineStack
from stacks.stage import ErpStage


def new_app(**props) -> cdk.App:
    """The App every synth of the platform uses (`make synth`, `cdk synth`, the tests).

    aws-cdk-lib's built-in CloudFormation validation is off: it is a JavaScript port of cfn-lint's rules that
    only warns by default, and it cost 9 of 24 CPU seconds and 360 MiB of a synth (issue 23). cfn-lint itself
    (pinned in requirements.txt) checks every synthesized template in `make test` and the pipeline's Test
    action, which self-mutation waits for (tests/infra/test_safety.py::test_cfn_lint_reports_no_errors).
    """
    return cdk.App(builtin_cloud_formation_validation=False, **props)


def build(app: cdk.App) -> None:
    """Raises ConfigError before any construct exists, so bad config synthesizes nothing.

    Stack names are the same in both modes (erp-{env}-{tier}): a hand deploy and the pipeline
    update the same stacks. So are the templates: the hand-deployed stage sits at the same construct path
    as in the pipeline (`ErpPipeline/<Stage>`), because logical ids that CDK derives from the path (a
    generated secret, security-group rules) would otherwise differ, and each mode would replace what the
    other created.
    """
    config_dir = Path(app.node.try_get_context("config_dir") or CONFIG_DIR)
    selected = app.node.try_get_context("env")
    if selected:
        config = load_environment(selected, config_dir)
        # Its pods must fit its node groups at max_size (issue 22): refused in one line, like a config error.
        check_capacity(config, config_dir)
        check_placeholders(app, config_dir, [selected])
        ErpStage(Construct(app, PIPELINE_ID), config.stage_id, config=config)
    else:
        toolchain = load_toolchain(config_dir)
        # Every environment file is validated, also those the pipeline does not deploy.
        configs = {name: load_environment(name, config_dir) for name in environment_names(config_dir)}
        for config in configs.values():
            check_capacity(config, config_dir)
        check_placeholders(app, config_dir, toolchain.stages)
        PipelineStack(
            app,
            PIPELINE_ID,
            toolchain=toolchain,
            stages=[configs[name] for name in toolchain.stages],
            stack_name="erp-pipeline",
            env=cdk.Environment(account=toolchain.account, region=toolchain.region),
        )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def check_placeholders(app: cdk.App, config_dir: Path, names: list[str]) -> None:
    """Example values never reach a deploy: refused (one line) unless this synth is for review only."""
    found = find_placeholders(config_dir, app.node.get_all_context(), names)
    mode = app.node.try_get_context(PLACEHOLDERS_KEY) or "refuse"
    if mode not in ("refuse", "warn"):
        raise ConfigError(f"-c {PLACEHOLDERS_KEY}={mode}: say refuse or warn")
    if found and mode == "refuse":
        raise ConfigError(found[0].line())
    if found:
        print(
            f"note: {len(found)} placeholder value(s), e.g. {found[0].file}: {found[0].field}; this synth is for "
            "review, deploys refuse them (README: First deploy into fresh accounts)",
            file=sys.stderr,
        )


def main() -> None:
    app = new_app()
    try:
        build(app)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main()

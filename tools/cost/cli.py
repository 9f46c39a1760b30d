"""`python -m tools.cost`: the command line (the Makefile's `make cost` runs it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config import ConfigError, load_environment
from tools.cost import __doc__ as PACKAGE_DOC
from tools.cost import node_sizes
from tools.cost.assembly import estimate, graviton_what_if
from tools.cost.output import compare, to_json, to_markdown, to_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost", description=PACKAGE_DOC.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="environment name (config/<env>.yaml)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="cloud assembly (default: cdk.out)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="BASE_CDK_OUT",
        help="print the markdown delta from this base assembly (e.g. main's) to --cdk-out",
    )
    parser.add_argument(
        "--compare-graviton",
        action="store_true",
        help="print the markdown delta from the same nodes on Graviton (base) to this config (head)",
    )
    parser.add_argument("--include-pipeline", action="store_true", help="also count the pipeline stack")
    args = parser.parse_args(argv)
    try:
        env = load_environment(args.env)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    head = estimate(args.cdk_out, env, args.include_pipeline)
    if args.compare:
        sys.stdout.write(compare(estimate(args.compare, env, args.include_pipeline), head))
        return 0
    if args.compare_graviton:
        sys.stdout.write(compare(graviton_what_if(head), head))
        return 0
    if not head.stacks:
        print(f"no stacks named {env.resource_prefix}-* in {args.cdk_out}: synthesize first", file=sys.stderr)
        return 1
    render = {"text": to_text, "markdown": to_markdown, "json": to_json}[args.format]
    groups = node_sizes.node_group_costs(args.cdk_out, env)
    sys.stdout.write(with_node_sizes(render(head), args.format, groups, node_sizes.node_hours(env)))
    return 0


def with_node_sizes(rendered: str, form: str, groups: list[node_sizes.GroupCost], hours: float) -> str:
    """The estimate, then each node group's cost at its min, configured and max size (tools/cost/node_sizes.py)."""
    if form == "json":
        data = {**json.loads(rendered), "node_sizes": node_sizes.to_data(groups)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return rendered + (node_sizes.to_markdown if form == "markdown" else node_sizes.to_text)(groups, hours)

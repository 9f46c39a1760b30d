"""Pre-deploy check for a stage with a night schedule: refuse to deploy while its nodes are scaled to zero.

At night the node groups sit at 0. A deploy then cannot start a pod: the controllers' admission webhooks
(AWS Load Balancer Controller, External Secrets) have no endpoints, so applying a changed
TargetGroupBinding or ExternalSecret fails, and the rollback re-applies the old one through the same
webhooks and fails too (UPDATE_ROLLBACK_FAILED). Failing here, before any stack is touched, costs nothing:
wake the stage (the message says how) and retry the stage.

A first deploy (no cluster yet) passes. Read-only: the stage account's CDK lookup role suffices.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def asleep_groups(eks: Any, cluster: str) -> list[str] | None:
    """Names of node groups scaled to zero; None when the cluster does not exist yet."""
    try:
        names = [
            name
            for page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster)
            for name in page["nodegroups"]
        ]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    asleep = []
    for name in names:
        group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
        if group["scalingConfig"].get("desiredSize", 0) < 1:
            asleep.append(name)
    return asleep


def main(argv: Sequence[str] | None = None, *, eks: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--region")
    parser.add_argument("--scheduler-stack", required=True, help="stack holding the night scheduler function")
    args = parser.parse_args(argv)
    try:
        asleep = asleep_groups(eks or boto3.client("eks", region_name=args.region), args.cluster)
    except (ClientError, BotoCoreError) as error:
        print(f"awake check: FAIL (AWS error: {error})")
        return 1
    if asleep is None:
        print(f"awake check: PASS (cluster {args.cluster} does not exist yet: first deploy)")
        return 0
    if asleep:
        payload = json.dumps({"action": "start"})
        print(
            f"awake check: FAIL ({args.cluster} is asleep: node group(s) {', '.join(sorted(asleep))} at 0 nodes). "
            f"Wake it in the stage account - invoke the night scheduler of stack {args.scheduler_stack} with "
            f"'{payload}' (README: Dev sleeps at night) - wait for the nodes, then retry this stage."
        )
        return 1
    print(f"awake check: PASS ({args.cluster} has nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Post-deploy smoke check: every EKS service behind the NLB has healthy targets.

The HTTP checks (`/health` 200, 401 without a token) prove the API and its authorizer, not the
services: `/health` is answered by a Lambda and the 401s by the authorizer. This check reads the
target health of every target group in the stage's Api stack. A target is a pod IP registered by
the TargetGroupBinding once the pod is Ready, so a service whose pods do not run (ImagePullBackOff,
Pending, CrashLoopBackOff) has no healthy target and the stage fails. Bounded wait; fails closed.

Read-only: runs in the toolchain account with the stage account's CDK lookup role (ReadOnlyAccess).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"


@dataclass
class GroupHealth:
    logical_id: str
    arn: str
    states: dict[str, str] = field(default_factory=dict)  # target id:port -> state (reason)

    @property
    def healthy(self) -> int:
        return sum(1 for state in self.states.values() if state.startswith("healthy"))

    def describe(self) -> str:
        if not self.states:
            return f"{self.logical_id}: no targets registered (no pod of this service is Ready)"
        listed = ", ".join(f"{target} {state}" for target, state in sorted(self.states.items()))
        return f"{self.logical_id}: {self.healthy}/{len(self.states)} healthy ({listed})"


def target_groups(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """logical id -> ARN of every target group of the stack (every page)."""
    found: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == TARGET_GROUP and resource.get("PhysicalResourceId"):
                found[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    return found


def read_health(elbv2: Any, logical_id: str, arn: str) -> GroupHealth:
    health = GroupHealth(logical_id, arn)
    for description in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
        target = description["Target"]
        state = description["TargetHealth"]
        reason = state.get("Reason")
        health.states[f"{target['Id']}:{target.get('Port', '')}"] = state["State"] + (f" ({reason})" if reason else "")
    return health


def check(
    cloudformation: Any,
    elbv2: Any,
    stack_name: str,
    max_wait: float,
    poll: float,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, list[str]]:
    """(passed, report lines). Waits, up to max_wait, until every target group has a healthy target."""
    groups = target_groups(cloudformation, stack_name)
    if not groups:
        return False, [f"{stack_name}: no target groups found (is this the stage's Api stack?)"]
    deadline = now() + max_wait
    while True:
        health = [read_health(elbv2, logical_id, arn) for logical_id, arn in sorted(groups.items())]
        unhealthy = [group for group in health if group.healthy == 0]
        if not unhealthy or now() >= deadline:
            return not unhealthy, [group.describe() for group in health]
        sleep(min(poll, max(deadline - now(), 0)))


def main(argv: Sequence[str] | None = None, *, cloudformation: Any = None, elbv2: Any = None, **clock) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stage's Api stack (holds the NLB target groups)")
    parser.add_argument("--region")
    parser.add_argument("--max-wait", type=float, default=600, metavar="SECONDS")
    parser.add_argument("--poll", type=float, default=15, metavar="SECONDS")
    args = parser.parse_args(argv)
    try:
        cloudformation = cloudformation or boto3.client("cloudformation", region_name=args.region)
        elbv2 = elbv2 or boto3.client("elbv2", region_name=args.region)
        passed, lines = check(cloudformation, elbv2, args.stack, args.max_wait, args.poll, **clock)
    except (ClientError, BotoCoreError) as error:
        print(f"smoke check: FAIL (AWS error: {error})")
        return 1
    print("\n".join(lines))
    print("smoke check: PASS (every service has a healthy target)" if passed else "smoke check: FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

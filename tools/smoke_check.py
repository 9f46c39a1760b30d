"""Post-deploy smoke check: every EKS service behind the NLB has healthy targets, and every workload the
platform ships is available.

The HTTP checks (`/health` 200, 401 without a token) prove the API and its authorizer, not the
services: `/health` is answered by a Lambda and the 401s by the authorizer. This check adds two things.

1. Target health of every target group in the stage's Api stack. A target is a pod IP registered by the
   TargetGroupBinding once the pod is Ready, so a service whose pods do not run (ImagePullBackOff,
   Pending, CrashLoopBackOff) has no healthy target.
2. With `--workload` (the pipeline passes every Deployment, StatefulSet and DaemonSet it derives from the
   charts: the services, the employee-service proxy, Kafka, the collectors, the controllers): a report newer
   than this check's start shows each of them rolled out and available with no crash-looping pod. What no
   target group shows - the SigV4 proxy the approval service calls, the collectors, the controllers - fails
   the stage here. The Kubernetes API is not reachable from the pipeline (prod's endpoint is private), so the
   stage's workload health reporter reads it from inside the VPC every minute and writes the report to an SSM
   parameter (constructs_lib/delivery/workload_health.py, lambda_handlers/workload_health).

Bounded wait; fails closed (an AWS error, a stale or missing report fails the stage). Read-only: runs in the
toolchain account with the stage account's CDK lookup role (ReadOnlyAccess).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


# --- workloads: the report the stage's workload health reporter writes from inside the VPC ---------------

AVAILABLE = "available"


def parse_workload(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 3 or parts[1] not in ("Deployment", "StatefulSet", "DaemonSet") or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected namespace/Kind/name (Deployment, StatefulSet, DaemonSet)")
    return text


def read_report(ssm: Any, parameter: str) -> dict:
    value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    try:
        report = json.loads(value)
    except ValueError:
        return {"unreadable": f"{parameter} does not hold a report: {value[:100]!r}"}
    return report if isinstance(report, dict) else {"unreadable": f"{parameter} does not hold a report"}


def judge_workloads(report: dict, expected: Sequence[str], since: datetime) -> tuple[bool, list[str]]:
    """(every expected workload available in a report newer than `since`, report lines)."""
    if "unreadable" in report:
        return False, [f"workloads: {report['unreadable']}"]
    checked = report.get("checked_at")
    if checked is None or datetime.fromisoformat(checked) < since:
        return False, [
            f"workloads: no report newer than {since.isoformat(timespec='seconds')} yet (last: {checked}); the "
            "stage's workload health reporter (Cluster stack, every minute) writes it"
        ]
    if "error" in report:
        return False, [f"workloads: the reporter could not read the cluster: {report['error']}"]
    states = report.get("workloads", {})
    lines, passed = [], True
    for workload in expected:
        state = states.get(
            workload, "not in the report (the reporter checks another list: is the Cluster stack current?)"
        )
        passed = passed and state == AVAILABLE
        lines.append(f"{workload}: {state}")
    return passed, lines


# --- the check -------------------------------------------------------------------------------------


def check(
    cloudformation: Any,
    elbv2: Any,
    stack_name: str,
    max_wait: float,
    poll: float,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    ssm: Any = None,
    health_parameter: str | None = None,
    workloads: Sequence[str] = (),
    utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[bool, list[str]]:
    """(passed, report lines). Waits, up to max_wait, until every target group has a healthy target and a workload
    report newer than this check's start shows every workload available."""
    groups = target_groups(cloudformation, stack_name)
    if not groups:
        return False, [f"{stack_name}: no target groups found (is this the stage's Api stack?)"]
    since = utcnow()
    deadline = now() + max_wait
    while True:
        health = [read_health(elbv2, logical_id, arn) for logical_id, arn in sorted(groups.items())]
        unhealthy = [group for group in health if group.healthy == 0]
        workloads_ok, workload_lines = True, []
        if workloads:
            workloads_ok, workload_lines = judge_workloads(read_report(ssm, health_parameter), workloads, since)
        if (not unhealthy and workloads_ok) or now() >= deadline:
            return not unhealthy and workloads_ok, [group.describe() for group in health] + workload_lines
        sleep(min(poll, max(deadline - now(), 0)))


def main(
    argv: Sequence[str] | None = None,
    *,
    cloudformation: Any = None,
    elbv2: Any = None,
    ssm: Any = None,
    **clock: Any,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stage's Api stack (holds the NLB target groups)")
    parser.add_argument("--region")
    parser.add_argument("--max-wait", type=float, default=600, metavar="SECONDS")
    parser.add_argument("--poll", type=float, default=15, metavar="SECONDS")
    parser.add_argument("--health-parameter", help="SSM parameter of the stage's workload report (with --workload)")
    parser.add_argument(
        "--workload",
        type=parse_workload,
        action="append",
        default=[],
        metavar="NS/KIND/NAME",
        help="a workload that must be available, e.g. erp-dev/Deployment/employee-service (repeat)",
    )
    args = parser.parse_args(argv)
    if args.workload and not args.health_parameter:
        parser.error("--workload needs --health-parameter")
    try:
        cloudformation = cloudformation or boto3.client("cloudformation", region_name=args.region)
        elbv2 = elbv2 or boto3.client("elbv2", region_name=args.region)
        if args.workload:
            ssm = ssm or boto3.client("ssm", region_name=args.region)
        passed, lines = check(
            cloudformation,
            elbv2,
            args.stack,
            args.max_wait,
            args.poll,
            ssm=ssm,
            health_parameter=args.health_parameter,
            workloads=args.workload,
            **clock,
        )
    except (ClientError, BotoCoreError) as error:
        print(f"smoke check: FAIL (AWS error: {error})")
        return 1
    print("\n".join(lines))
    if passed:
        print(
            "smoke check: PASS (every service has a healthy target"
            + (", every workload is available)" if args.workload else ")")
        )
    else:
        print("smoke check: FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

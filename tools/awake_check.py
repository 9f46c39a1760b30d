"""Pre-deploy check for a stage with a night schedule: refuse to deploy while its nodes sleep, or when they would
go to sleep before the deploy is done.

At night the node groups sit at 0. A deploy then cannot start a pod: the controllers' admission webhooks
(AWS Load Balancer Controller, External Secrets) have no endpoints, so applying a changed
TargetGroupBinding or ExternalSecret fails, the Helm releases' --wait times out, and the rollback goes through
the same webhooks and fails too (UPDATE_ROLLBACK_FAILED). A deleted TargetGroupBinding waits for the
controller to remove its finalizer, so a delete (a removed service, a new port, a destroy) hangs until the
kubectl handler times out. Looking once is not enough: a deploy started at 19:50 is still applying
manifests when the stop schedule scales the nodes to zero at 20:00. So the check also reads when the stage
next goes to sleep - the stop schedule deployed in the cluster stack (CloudFormation's copy of its template,
so what will really fire), and with --env also the one in config - and refuses to start unless a whole
deploy fits before it (DEPLOY_MINUTES).

Failing here, before any stack is touched, costs nothing: the message says what to do. A first deploy (no
cluster yet) has nothing asleep; with --env its window is still checked against config.

Read-only: the stage account's CDK lookup role suffices (eks:ListNodegroups/DescribeNodegroup,
cloudformation:GetTemplate). By hand, before a deploy or a destroy of such a stage:
`python -m tools.awake_check --env dev`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# The longest a stage deploy may keep applying after this check, from its capped waits: the Helm releases
# (--wait, HELM_TIMEOUT 10 min each; they install side by side after the node groups), the Workloads stack's
# webhook gate (GATE_TIMEOUT 10 min) and its ~50 manifests applied one after another (~10 s each), a node-group
# replacement (new nodes up before the old ones drain, ~15 min), and the smoke test that needs the pods (its
# bounded wait, 10 min). tests/tools/test_awake_check.py keeps it above the sum of the ones in code.
DEPLOY_MINUTES = 60

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")  # datetime.weekday() order
# EventBridge cron day-of-week numbers: 1 = SUN ... 7 = SAT.
CRON_DAY_NUMBERS = {"1": "SUN", "2": "MON", "3": "TUE", "4": "WED", "5": "THU", "6": "FRI", "7": "SAT"}
SCHEDULE_TYPE = "AWS::Scheduler::Schedule"


@dataclass(frozen=True)
class Stop:
    """When a stop schedule fires: minutes and hours (local), the weekdays, the time zone, and where it was read."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    weekdays: frozenset[str]
    timezone: str
    source: str

    def next_after(self, now: datetime) -> datetime:
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            if WEEKDAYS[day.weekday()] not in self.weekdays:
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    fire = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if fire > now:
                        return fire
        raise ValueError(f"{self.source}: never fires")


def _days(field: str) -> frozenset[str]:
    if field in ("*", "?"):
        return frozenset(WEEKDAYS)
    days: set[str] = set()
    for part in field.split(","):
        ends = [CRON_DAY_NUMBERS.get(end, end) for end in part.split("-")]
        if any(end not in WEEKDAYS for end in ends) or len(ends) > 2:
            raise ValueError(f"day-of-week {field!r}")
        first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        days |= {WEEKDAYS[i] for i in span}
    return frozenset(days)


def _numbers(field: str, top: int) -> tuple[int, ...]:
    if not re.fullmatch(r"\d{1,2}(,\d{1,2})*", field) or any(int(n) > top for n in field.split(",")):
        raise ValueError(f"field {field!r}")
    return tuple(int(n) for n in field.split(","))


def parse_cron(expression: str, timezone: str, source: str) -> Stop:
    """An EventBridge `cron(min hour day-of-month month day-of-week year)` that fires on weekdays at fixed times
    (what constructs_lib/cluster/night_schedule.py deploys); anything else is refused, so the check fails closed."""
    match = re.fullmatch(r"cron\((.+)\)", expression.strip())
    fields = match.group(1).split() if match else []
    if len(fields) != 6 or fields[2] not in ("*", "?") or fields[3] != "*" or fields[5] != "*":
        raise ValueError(f"{source}: cannot read the schedule {expression!r}")
    try:
        return Stop(_numbers(fields[0], 59), _numbers(fields[1], 23), _days(fields[4]), timezone, source)
    except ValueError as error:
        raise ValueError(f"{source}: cannot read the schedule {expression!r} ({error})") from None


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


def deployed_stops(cloudformation: Any, stack: str) -> list[Stop]:
    """The enabled stop schedules in the deployed template of `stack` ([] when the stack does not exist)."""
    try:
        body = cloudformation.get_template(StackName=stack, TemplateStage="Original")["TemplateBody"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if error.response.get("Error", {}).get("Code") == "ValidationError" and "does not exist" in message:
            return []
        raise
    template = json.loads(body) if isinstance(body, str) else body
    stops = []
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") != SCHEDULE_TYPE or props.get("State", "ENABLED") != "ENABLED":
            continue
        target_input = props.get("Target", {}).get("Input")
        if not isinstance(target_input, str) or json.loads(target_input).get("action") != "stop":
            continue
        expression, zone = props.get("ScheduleExpression"), props.get("ScheduleExpressionTimezone", "UTC")
        if not isinstance(expression, str) or not isinstance(zone, str):
            raise ValueError(f"{stack}/{logical_id}: the schedule is not a literal expression")
        stops.append(parse_cron(expression, zone, f"{stack}/{logical_id}"))
    return stops


def config_stop(schedule: Any, source: str) -> Stop:
    """config.schedule (ScheduleConfig) as a Stop."""
    hour, minute = map(int, schedule.stop.split(":"))
    return Stop((minute,), (hour,), _days(schedule.weekdays), schedule.timezone, source)


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


def main(
    argv: Sequence[str] | None = None, *, eks: Any = None, cloudformation: Any = None, now: datetime | None = None
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", help="read cluster, region, scheduler stack and schedule from config/<env>.yaml")
    parser.add_argument("--cluster")
    parser.add_argument("--region")
    parser.add_argument("--scheduler-stack", help="stack holding the night scheduler function and its schedules")
    parser.add_argument("--deploy-minutes", type=int, default=DEPLOY_MINUTES, help="time a deploy needs")
    args = parser.parse_args(argv)
    stops: list[Stop] = []
    if args.env:
        from config import load_environment  # needs pydantic and PyYAML: only on the --env path

        config = load_environment(args.env)
        args.cluster = args.cluster or config.cluster_name
        args.region = args.region or config.region
        args.scheduler_stack = args.scheduler_stack or f"{config.resource_prefix}-cluster"
        if config.schedule is not None:
            stops.append(config_stop(config.schedule, f"config/{args.env}.yaml schedule"))
    if not args.cluster or not args.scheduler_stack:
        parser.error("give --env, or --cluster and --scheduler-stack")
    now = now or datetime.now(UTC)
    try:
        asleep = asleep_groups(eks or boto3.client("eks", region_name=args.region), args.cluster)
        if asleep is None:
            first = f"cluster {args.cluster} does not exist yet: first deploy"
        elif asleep:
            payload = json.dumps({"action": "start"})
            print(
                f"awake check: FAIL ({args.cluster} is asleep: node group(s) {', '.join(sorted(asleep))} at 0 nodes). "
                f"Wake it in the stage account - invoke the night scheduler of stack {args.scheduler_stack} with "
                f"'{payload}' (README: Dev sleeps at night) - wait for the nodes, then retry this stage."
            )
            return 1
        if asleep is not None:
            client = cloudformation or boto3.client("cloudformation", region_name=args.region)
            stops += deployed_stops(client, args.scheduler_stack)
    except (ClientError, BotoCoreError) as error:
        print(f"awake check: FAIL (AWS error: {error})")
        return 1
    except ValueError as error:
        print(f"awake check: FAIL ({error}: cannot tell when the stage goes to sleep)")
        return 1
    state = first if asleep is None else f"{args.cluster} has nodes"
    if not stops:
        print(f"awake check: PASS ({state})" if asleep is None else f"awake check: PASS ({state}; no night stop)")
        return 0
    stop = min(s.next_after(now) for s in stops)
    remaining = stop - now
    when = f"{stop:%Y-%m-%d %H:%M} {stop.tzinfo}"
    if remaining < timedelta(minutes=args.deploy_minutes):
        print(
            f"awake check: FAIL ({args.cluster} goes to sleep at {when}, in {_duration(remaining)}; a deploy may take "
            f"up to {args.deploy_minutes} min and would apply manifests, wait for Helm releases and delete bindings "
            "after its nodes are gone). Retry the stage when the stage is awake for long enough: tomorrow during "
            "office hours, or after the stop has run, wake it (README: Dev sleeps at night) and retry then."
        )
        return 1
    print(f"awake check: PASS ({state}; next night stop {when}, in {_duration(remaining)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

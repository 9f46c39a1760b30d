"""AWS Backup and the restore drill (issue 21): recovery points in the vault, their copies in a second region, and
the drill's temporary database, from the plan's rules and the drill's state machine plus the usage assumptions.

Recovery points (AWS Backup pricing: the first backup of a resource is a full copy, each later one only its changed
part): the points of every rule of a source form one chain per region, laid out on the rules' schedules over the
years schedules.py counts; the oldest kept point holds the full data, each later one the data changed since the one
before (usage.backup_change_pct per day between them, at most a full copy). A copy to another region sends the
changes since the copy before it there and is kept there the same way for its own retention. The vault, its lock,
the plan and its selections cost nothing themselves.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date
from math import ceil
from typing import Any

from tools.cost.model import Context, Free, Line, Resource, Result, Unpriced, _num
from tools.cost.pricers import _bool, _job_runs, _line, _plain, _prop, _refers_to, _schedule_runs, pricer
from tools.cost.prices import HOURS_PER_MONTH, Unpriceable
from tools.cost.schedules import DAYS_PER_MONTH, YEARS, run_times, runs_per_month

# The recovery point kinds of the two sources a plan can cover (price file items: "<kind> <region>").
SOURCES = {"database": "rds-warm", "kafka": "ebs-warm"}
STEP_FUNCTIONS_FREE_TRANSITIONS = 4_000  # per account and month, Standard workflows
# A polling loop (wait, ask how the restore is going, decide) costs this many transitions per round.
TRANSITIONS_PER_POLL = 3
FREE_WHY = (
    "no charge: AWS Backup bills recovery point storage, copies and restores, not vaults, locks, plans or selections"
)


@pricer("AWS::Backup::BackupVault", "AWS::Backup::BackupSelection")
def _free_backup_parts(r: Resource, ctx: Context) -> list[Result]:
    what = "recovery points priced on the plan that fills it" if r.type.endswith("Vault") else "priced on its plan"
    return [Free(f"{FREE_WHY} (aws.amazon.com/backup/pricing); {what}")]


# ---------------------------------------------------------------- templates


def flat(value: Any) -> str:
    """A string property as text; Fn::Join / Fn::Sub parts that are intrinsics read as "?"."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(flat(p) for p in parts)
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return re.sub(r"\$\{[^}]+\}", "?", text)
    return "?"


def _region_of(arn: Any) -> str:
    match = re.match(r"arn:[^:]*:backup:([a-z0-9-]+):", flat(arn))
    if not match:
        raise Unpriceable(f"copy destination {json.dumps(arn)[:80]}: its region is not in the template")
    return match[1]


def _has_tag(r: Resource, key: str, value: str) -> bool:
    return any(isinstance(t, dict) and (t.get("Key"), t.get("Value")) == (key, value) for t in r.props.get("Tags", []))


def _selects_database(selection: dict, arns: list[str], ctx: Context) -> bool:
    """Resources (if any) name RDS instances, and the env's instance carries the tags asked for: any of ListOfTags
    (ORed), every Conditions.StringEquals (ANDed; the other operators are not read)."""
    if arns and not any(a == "*" or (":rds:" in a and ":db:" in a) for a in arns):
        return False
    any_of = [(flat(t.get("ConditionKey")), flat(t.get("ConditionValue"))) for t in selection.get("ListOfTags", [])]
    all_of = [
        (flat(c.get("ConditionKey")).removeprefix("aws:ResourceTag/"), flat(c.get("ConditionValue")))
        for c in selection.get("Conditions", {}).get("StringEquals", [])
    ]
    return any(
        x.type == "AWS::RDS::DBInstance"
        and (not any_of or any(_has_tag(x, k, v) for k, v in any_of))
        and all(_has_tag(x, k, v) for k, v in all_of)
        for x in ctx.resources
    )


def _selects_kafka(selection: dict, arns: list[str], ctx: Context) -> bool:
    """Resources name EBS volumes (the tags that narrow them to Kafka's are the CSI driver's, written at run time:
    trusted), or a ListOfTags tag is one a StorageClass's tagSpecification puts on the volumes (`key=value`)."""
    if any(":ec2:" in a and ":volume/" in a for a in arns):
        return True
    tags = [f"{flat(t.get('ConditionKey'))}={flat(t.get('ConditionValue'))}" for t in selection.get("ListOfTags", [])]
    manifests = [json.dumps(x.props) for x in ctx.resources if x.type.startswith("Custom::")]
    return not arns and any(tag in m for tag in tags for m in manifests)


def covered_sources(plan: Resource, ctx: Context) -> list[str]:
    """What the plan's selections cover: the database and/or Kafka's volumes."""
    found: set[str] = set()
    for s in ctx.resources:
        if s.type != "AWS::Backup::BackupSelection" or s.stack != plan.stack:
            continue
        if not _refers_to(s.props.get("BackupPlanId"), plan.local_id):
            continue
        selection = s.props.get("BackupSelection", {})
        arns = [flat(a) for a in selection.get("Resources", [])]
        if _selects_database(selection, arns, ctx):
            found.add("database")
        if _selects_kafka(selection, arns, ctx):
            found.add("kafka")
    return [source for source in SOURCES if source in found]


def full_gb(source: str, ctx: Context) -> tuple[float, str]:
    """A full recovery point of the source, and where the figure comes from."""
    usage = ctx.env.usage
    if source == "database":
        if usage.backup_db_gb is not None:
            return usage.backup_db_gb, "usage.backup_db_gb"
        sizes = [x.props.get("AllocatedStorage") for x in ctx.resources if x.type == "AWS::RDS::DBInstance"]
        if not sizes:
            raise Unpriceable("database recovery points: no RDS instance in the env and usage.backup_db_gb unset")
        return sum(float(_plain(s, "AllocatedStorage")) for s in sizes), "allocated storage, an upper bound"
    if usage.backup_kafka_gb is not None:
        return usage.backup_kafka_gb, "usage.backup_kafka_gb"
    kafka = ctx.env.kafka
    return float(kafka.replicas * kafka.storage_gib), f"{kafka.replicas} × {kafka.storage_gib} GiB, an upper bound"


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Stream:
    """The recovery points one rule puts into one region: when they are made, how long they stay."""

    rule: str
    expression: str
    retention_days: float


def _increment(gap_days: float, rate: float) -> float:
    """What a point holds beyond the one before it, as a share of the full data: the days' changes, at most all."""
    return min(1.0, rate * gap_days)


def _times(streams: list[Stream]) -> tuple[list[tuple[float, float]], float, float]:
    """Every point (made, gone) of the streams over YEARS, with the years before them that still hold points at the
    start; and the window measured (the whole of YEARS, in days)."""
    lead = max(1, ceil(max(s.retention_days for s in streams) / 365))
    years = range(YEARS[0] - lead, YEARS[-1] + 1)
    start = date(YEARS[0], 1, 1).toordinal() - date(years[0], 1, 1).toordinal()
    end = start + DAYS_PER_MONTH * 12 * len(YEARS)
    points = [(t, t + s.retention_days) for s in streams for t in run_times(s.expression, years)]
    return sorted(points), start, end


def stored_gb(full: float, streams: list[Stream], rate: float) -> float:
    """Average GB one source's points hold in one region over YEARS: all rules' points form one chain (a snapshot
    is incremental to the source's previous one, whichever rule made it), so the oldest kept point is full and each
    later one adds the changes since the one before. Points are added and dropped as the schedules say; between two
    such events the chain does not change."""
    if not streams:
        return 0.0
    points, start, end = _times(streams)
    events = sorted([(t, 1, t) for t, _ in points] + [(gone, 0, t) for t, gone in points])  # drops first on ties
    kept: list[float] = []
    increments, area, last = 0.0, 0.0, start
    for when, made, t in events:
        if when > last and when > start:
            held = (1 + increments) if kept else 0.0
            area += held * (min(when, end) - max(last, start))
            last = when
        if when >= end:
            break
        if made:
            if kept:
                increments += _increment(t - kept[-1], rate)
            kept.append(t)  # made in time order: always the newest
            continue
        i = bisect_left(kept, t)
        before, after = (kept[i - 1] if i else None), (kept[i + 1] if i + 1 < len(kept) else None)
        if after is not None:
            increments -= _increment(after - t, rate)
            if before is not None:
                increments += _increment(after - before, rate)
        if before is not None:
            increments -= _increment(t - before, rate)
        del kept[i]
    if last < end:  # nothing happens after the last event before the end
        area += ((1 + increments) if kept else 0.0) * (end - max(last, start))
    return full * area / (end - start)


def transfer_gb(full: float, streams: list[Stream], rate: float) -> float:
    """GB a month the copies of one source send to one region: each the changes since the newest copy still kept
    there (the first copy to a region is full, later ones incremental: AWS Backup's cross-Region copy guide)."""
    if not streams:
        return 0.0
    points, start, end = _times(streams)
    sent = 0.0
    for i, (t, _) in enumerate(points):
        if start <= t < end:
            previous = next((made for made, gone in reversed(points[:i]) if gone > t), None)
            sent += 1.0 if previous is None else _increment(t - previous, rate)
    return full * sent / (12 * len(YEARS))


# ---------------------------------------------------------------- the plan


def _retention(lifecycle: Any, what: str) -> float:
    if not isinstance(lifecycle, dict) or "DeleteAfterDays" not in lifecycle:
        raise Unpriceable(f"{what} keeps its recovery points forever (no Lifecycle.DeleteAfterDays)")
    if "MoveToColdStorageAfterDays" in lifecycle:
        raise Unpriceable(f"{what} moves points to cold storage: the cold tier is not in the price file")
    return float(_plain(lifecycle["DeleteAfterDays"], f"{what} DeleteAfterDays"))


def plan_streams(r: Resource, home: str) -> tuple[dict[tuple[str, bool], list[Stream]], list[Unpriced]]:
    """The plan's points by (region, copy?): each rule's in the vault's region, each copy action's in its vault's
    region (a copy without its own lifecycle keeps the source's: AWS Backup's copy guide). Rules that cannot be
    priced are returned as unpriced and left out."""
    streams: dict[tuple[str, bool], list[Stream]] = {(home, False): []}
    unpriced: list[Unpriced] = []
    for rule in _prop(r, "BackupPlan", "BackupPlanRule"):
        name = flat(rule.get("RuleName"))
        try:
            if _bool(rule.get("EnableContinuousBackup", False)):
                raise Unpriceable(f"rule {name}: continuous backup (point-in-time) storage is not modelled")
            expression = rule.get("ScheduleExpression")
            if not expression:
                raise Unpriceable(f"rule {name}: no ScheduleExpression")
            expression = _plain(expression, f"rule {name} ScheduleExpression")
            retention = _retention(rule.get("Lifecycle"), f"rule {name}")
            copies = [
                (
                    _region_of(c.get("DestinationBackupVaultArn")),
                    _retention(c["Lifecycle"], f"rule {name} copy") if "Lifecycle" in c else retention,
                )
                for c in rule.get("CopyActions", [])
            ]
            run_times(expression, YEARS[:1])  # an expression the timeline cannot read is unpriced here
        except Unpriceable as exc:
            unpriced.append(r.unpriced(str(exc)))
            continue
        streams[home, False].append(Stream(name, expression, retention))
        for region, days in copies:
            streams.setdefault((region, True), []).append(Stream(name, expression, days))
    return streams, unpriced


def _rules_text(streams: list[Stream]) -> str:
    return ", ".join(
        f"{s.rule} {_num(runs_per_month(s.expression), 2)}/month kept {_num(s.retention_days)} d" for s in streams
    )


@pricer("AWS::Backup::BackupPlan")
def _plan(r: Resource, ctx: Context) -> list[Result]:
    """Per covered source: its points in the vault's region and, per copy region, the transfer and the copies kept
    there, each at that region's price."""
    sources = covered_sources(r, ctx)
    if not sources:
        raise Unpriceable("its selections cover neither the database nor Kafka's volumes as far as the templates say")
    home, pct = ctx.book.region, ctx.env.usage.backup_change_pct
    by_region, out = plan_streams(r, home)
    for source in sources:
        full, origin = full_gb(source, ctx)
        for (region, copy), streams in by_region.items():
            if not streams:
                continue
            gb = stored_gb(full, streams, pct / 100)
            where = f"copies kept in {region}" if copy else "recovery points"
            item = (
                f"{source} {where} ({_rules_text(streams)}): full {_num(full)} GB ({origin}), {_num(pct)} %/day changed"
            )
            out.append(_line(r, ctx, item, gb, ("backup", f"{SOURCES[source]} {region}"), unit="GB"))
            if copy and region != home:
                sent = transfer_gb(full, streams, pct / 100)
                item = f"{source} copies to {region}: the changes since the copy before, the first in full"
                out.append(_line(r, ctx, item, sent, ("data-transfer", "inter-region-out"), unit="GB"))
    return out


# ---------------------------------------------------------------- the restore drill


def definition(r: Resource) -> dict:
    """The state machine's definition; intrinsics read as 0 (a valid JSON value, and harmless inside a string)."""
    if isinstance(r.props.get("Definition"), dict):
        return r.props["Definition"]
    text = r.props.get("DefinitionString")
    if isinstance(text, dict) and "Fn::Join" in text:
        sep, parts = text["Fn::Join"]
        text = sep.join(p if isinstance(p, str) else "0" for p in parts)
    if not isinstance(text, str):
        raise Unpriceable("DefinitionString is neither a string nor an Fn::Join")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Unpriceable(f"DefinitionString is not JSON once its intrinsics are blanked: {exc}") from exc


def all_states(machine: dict) -> list[dict]:
    """Every state, including those inside Parallel branches and Map iterators."""
    out: list[dict] = []
    for state in machine.get("States", {}).values():
        out.append(state)
        for inner in [*state.get("Branches", []), state.get("ItemProcessor"), state.get("Iterator")]:
            if isinstance(inner, dict):
                out += all_states(inner)
    return out


def _find(value: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == key] + [x for v in value.values() for x in _find(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in _find(v, key)]
    return []


def drill_runs(r: Resource) -> tuple[float, list[str]]:
    """Runs a month of the schedules of its template that start this state machine, and their expressions."""
    runs, expressions = 0.0, []
    for x in r.template.get("Resources", {}).values():
        props = x.get("Properties", {})
        if x.get("Type") == "AWS::Scheduler::Schedule":
            targets = [props.get("Target", {}).get("Arn")]
        elif x.get("Type") == "AWS::Events::Rule" and "ScheduleExpression" in props:
            targets = [t.get("Arn") for t in props.get("Targets", [])]
        else:
            continue
        if any(_refers_to(arn, r.local_id) for arn in targets):
            runs += _schedule_runs(Resource(r.stack, "-", x["Type"], props, r.template))
            expressions.append(str(props.get("ScheduleExpression")))
    return runs, expressions


def polls(machine: dict, hours: float) -> float:
    """Polling rounds while the temporary instance lives: one per (shortest) Wait state's interval."""
    states = all_states(machine)
    waits = [s.get("Seconds") for s in states if s.get("Type") == "Wait" and isinstance(s.get("Seconds"), int | float)]
    return hours * 3600 / min(waits) if waits and min(waits) > 0 else 0.0


def transitions_per_run(machine: dict, hours: float) -> float:
    """Each state once (the failure path's too: an upper bound), plus a polling round (wait, check, decide) per
    wait interval while the instance lives."""
    return len(all_states(machine)) + polls(machine, hours) * TRANSITIONS_PER_POLL


def invoked_functions(r: Resource) -> list[str]:
    """Logical ids of the Lambda functions of its template the definition names (through its intrinsics)."""
    text = r.props.get("DefinitionString")
    parts = text["Fn::Join"][1] if isinstance(text, dict) and "Fn::Join" in text else []
    parts = [*parts, *r.props.get("DefinitionSubstitutions", {}).values()]
    functions = [i for i, x in r.template.get("Resources", {}).items() if x.get("Type") == "AWS::Lambda::Function"]
    return [f for f in functions if any(_refers_to(p, f) for p in parts)]


def lambda_tasks(machine: dict) -> int:
    """Task states that invoke a function: `states:::lambda:invoke`, or a function ARN (blanked to 0) as Resource."""
    resources = [str(s.get("Resource", "")) for s in all_states(machine) if s.get("Type") == "Task"]
    return sum(1 for x in resources if x == "0" or ":lambda:" in x or x.endswith("lambda:invoke"))


def drill_class(r: Resource, ctx: Context, machine: dict) -> str | None:
    """The temporary instance's class, None when the state machine restores no database: the restore's
    DBInstanceClass in the definition (SDK integrations), else DB_INSTANCE_CLASS of a function it invokes (the
    restore done in a Lambda), else config backup.drill.instance_class when the definition itself restores."""
    found = [v for v in _find(machine, "DBInstanceClass") if isinstance(v, str) and v != "0"]
    resources = r.template.get("Resources", {})
    for f in invoked_functions(r):
        found += [v for v in _find(resources[f].get("Properties", {}), "DB_INSTANCE_CLASS") if isinstance(v, str)]
    if not found and re.search(r"startRestoreJob|restoreDBInstance", json.dumps(machine), re.IGNORECASE):
        configured = getattr(getattr(getattr(ctx.env, "backup", None), "drill", None), "instance_class", None)
        if not configured:
            raise Unpriceable("the drill's instance class is neither in its definition nor in config backup.drill")
        found = [configured]
    if not found:
        return None
    return found[0] if found[0].startswith("db.") else f"db.{found[0]}"


def _source_db(ctx: Context) -> Resource | None:
    return next((x for x in ctx.resources if x.type == "AWS::RDS::DBInstance"), None)


def drill_instance_lines(r: Resource, ctx: Context, db_class: str, runs: float, hours: float) -> list[Result]:
    """The temporary Single-AZ instance for its hours (RDS bills per second, 10 minutes at least), its storage (the
    source's size) for those hours, and the restore itself."""
    instance_hours = runs * hours
    every = f"{_num(runs, 2)} runs/month × {_num(hours, 2)} h (usage.drill_instance_hours)"
    out: list[Result] = [
        _line(
            r,
            ctx,
            f"drill instance {db_class} single-az: {every}",
            1,
            ("rds-mysql", f"{db_class} single-az"),
            instance_hours,
        )
    ]
    db = _source_db(ctx)
    if db is not None:
        size = float(_plain(db.props.get("AllocatedStorage", 0), "the source's AllocatedStorage"))
        kind = _plain(db.props.get("StorageType", "gp2"), "the source's StorageType")
        item = f"drill instance {kind} storage, {_num(size)} GB (the source's) for those hours"
        out.append(_line(r, ctx, item, size, ("rds-storage", f"{kind} single-az"), instance_hours, unit="GB"))
    out.append(_restore(r, ctx, runs))
    return out


def _restore(r: Resource, ctx: Context, runs: float) -> Line | Unpriced:
    """Restoring through RDS (RestoreDBInstanceFromDBSnapshot on the point's snapshot) bills only the new instance;
    an AWS Backup restore job's price for an RDS point is unknown; a restore the templates do not show is unpriced."""
    text = json.dumps(definition(r)) + "".join(_policies_of(r, f) for f in invoked_functions(r))
    if re.search(r"backup:startRestoreJob", text, re.IGNORECASE):
        key, how = ("backup", "rds-restore"), "an AWS Backup restore job"
    elif re.search(r"rds:restoreDBInstanceFromDBSnapshot", text, re.IGNORECASE):
        key, how = ("rds-storage", "snapshot-restore"), "RDS RestoreDBInstanceFromDBSnapshot"
    else:
        return r.unpriced("the restore: neither its definition nor its functions' policies say how it restores")
    return _line(r, ctx, f"the restore: {how} ({_num(runs, 2)} runs/month)", runs, key, unit="restores")


def _policies_of(r: Resource, function_id: str) -> str:
    """The IAM policies of its template attached to the function's role, as text."""
    resources = r.template.get("Resources", {})
    role = resources[function_id].get("Properties", {}).get("Role")
    role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
    return "".join(
        json.dumps(x.get("Properties", {}).get("PolicyDocument"))
        for x in resources.values()
        if x.get("Type") == "AWS::IAM::Policy" and {"Ref": role_id} in x.get("Properties", {}).get("Roles", [])
    )


@pricer("AWS::StepFunctions::StateMachine")
def _state_machine(r: Resource, ctx: Context) -> list[Result]:
    """Standard workflows pay per state transition beyond the 4,000 free per account-month (shared by the env's
    state machines); a restore drill also pays for its temporary database while it lives. Runs come from the
    schedules that start it; none (dev's on-demand drill) means nothing a month."""
    if str(_prop(r, "StateMachineType", default="STANDARD")).upper() == "EXPRESS":
        raise Unpriceable("Express workflows bill requests and duration: not in the price file")
    machine = definition(r)
    runs, expressions = drill_runs(r)
    if runs == 0:
        return [Free("no schedule starts it: runs on demand (one run's cost is in the assumptions)")]
    db_class = drill_class(r, ctx, machine)
    hours = min(ctx.env.usage.drill_instance_hours, _timeout_hours(machine)) if db_class else 0.0
    per_run = transitions_per_run(machine, hours)
    total = sum(_machine_transitions(x, ctx) for x in ctx.resources if x.type == r.type)
    beyond = max(0.0, total - STEP_FUNCTIONS_FREE_TRANSITIONS) * (runs * per_run) / total if total else 0.0
    item = (
        f"state transitions beyond the 4,000 free per account: {_num(runs, 2)} runs/month ({', '.join(expressions)}) "
        f"× {_num(per_run, 0)} ({len(all_states(machine))} states + {TRANSITIONS_PER_POLL} per polling round)"
    )
    out: list[Result] = [_line(r, ctx, item, beyond / 1000, ("stepfunctions", "standard-transitions"), unit="k")]
    if functions := invoked_functions(r):
        calls = lambda_tasks(machine) + polls(machine, hours)
        # Each call a few API calls' worth (pricers.SCHEDULED_RUN_SECONDS, capped at the timeout), like a frequent job.
        out += _job_runs(r, ctx, max(functions, key=lambda f: _memory(r, f)), runs * calls)
    if db_class:
        out += drill_instance_lines(r, ctx, db_class, runs, hours)
    return out


def _memory(r: Resource, function_id: str) -> int:
    memory = r.template["Resources"][function_id].get("Properties", {}).get("MemorySize", 128)
    return memory if isinstance(memory, int) else 0


def _timeout_hours(machine: dict) -> float:
    seconds = machine.get("TimeoutSeconds")
    return seconds / 3600 if isinstance(seconds, int | float) and seconds > 0 else HOURS_PER_MONTH


def _machine_transitions(r: Resource, ctx: Context) -> float:
    """A state machine's transitions a month (0 when it cannot be read: it is then unpriced itself)."""
    try:
        machine = definition(r)
        runs, _ = drill_runs(r)
        hours = min(ctx.env.usage.drill_instance_hours, _timeout_hours(machine)) if drill_class(r, ctx, machine) else 0
    except Unpriceable:
        return 0.0
    return runs * transitions_per_run(machine, hours)


def one_drill_run(ctx: Context) -> list[str]:
    """What one on-demand run of each unscheduled drill costs, for the assumptions."""
    out = []
    for r in ctx.resources:
        if r.type != "AWS::StepFunctions::StateMachine":
            continue
        try:
            machine = definition(r)
            if drill_runs(r)[0] or not (db_class := drill_class(r, ctx, machine)):
                continue
            hours = min(ctx.env.usage.drill_instance_hours, _timeout_hours(machine))
            results = drill_instance_lines(r, ctx, db_class, 1, hours)
        except Unpriceable:
            continue
        usd = sum(x.usd for x in results if isinstance(x, Line))
        restore = "the restore unpriced" if any(isinstance(x, Unpriced) for x in results) else "the restore"
        out.append(
            f"restore drill {r.logical_id} runs on demand (no schedule): one run costs ${usd:,.2f} "
            f"({db_class} and its storage for {_num(hours, 2)} h, {restore}; transitions within the free tier)"
        )
    return out


def backup_assumptions(ctx: Context) -> list[str]:
    if not any(r.type == "AWS::Backup::BackupPlan" for r in ctx.resources):
        return []
    usage = ctx.env.usage
    return [
        "AWS Backup: the points of all rules of a source form one chain per region, laid out on the rules' "
        "schedules over 2025-2028: the oldest kept point is full, each later one adds usage.backup_change_pct "
        f"({_num(usage.backup_change_pct)} %) of the data per day since the point before it (at most a full copy); "
        "full = usage.backup_db_gb / usage.backup_kafka_gb, else the DB's allocated storage / Kafka's volumes (upper "
        "bounds: snapshots hold written blocks); RDS points counted in full (RDS's free backup allowance is left to "
        "its automated backups, usage.rds_backup_gb); a cross-region copy sends the changes since the copy before "
        "it (inter-region rate) and is kept there the same way; the restore drill's instance lives "
        f"usage.drill_instance_hours ({_num(usage.drill_instance_hours)} h) per run, polled by its state machine",
        *one_drill_run(ctx),
    ]

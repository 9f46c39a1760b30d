"""Reading the cloud assembly: every stack of the environment, every resource priced, the what-ifs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from config.models import EnvironmentConfig
from tools.cost import backup  # registers the AWS Backup and Step Functions pricers
from tools.cost.model import ENV_WIDE, Context, Estimate, Free, Line, Resource, Result, Unpriced, _num
from tools.cost.pricers import (
    BUILD_MINUTES_PER_PROJECT_RUN,
    COLLECTOR_INTERVAL_SECONDS,
    ECR_GB_PER_REPOSITORY,
    EMF_BYTES_PER_EVENT,
    FREE_PREFIXES,
    FREE_TYPES,
    PIPELINE_ACTION_MINUTES_PER_RUN,
    PIPELINE_RUNS_PER_MONTH,
    PRICERS,
    SCHEDULED_RUN_SECONDS,
    _behind_api,
    _env_wide,
    collector_emf_gb,
    collector_log_group,
    collector_metrics,
)
from tools.cost.prices import HOURS_PER_MONTH, PRICE_FILE, PriceBook, Unpriceable

PIPELINE_STACK = re.compile(r"pipeline|toolchain", re.IGNORECASE)


@dataclass(frozen=True)
class StackArtifact:
    name: str
    environment: str
    template: Path


def stack_artifacts(assembly: Path) -> Iterator[StackArtifact]:
    """Every stack of a cloud assembly, including those of nested stage assemblies."""
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        props = artifact.get("properties", {})
        if artifact["type"] == "aws:cloudformation:stack":
            yield StackArtifact(
                props.get("stackName", artifact_id), artifact.get("environment", ""), assembly / props["templateFile"]
            )
        elif artifact["type"] == "cdk:cloud-assembly":
            yield from stack_artifacts(assembly / props["directoryName"])


def _resources(stack: str, template: dict, folder: Path, prefix: str = "") -> Iterator[Resource]:
    for logical_id, res in template.get("Resources", {}).items():
        nested = res.get("Metadata", {}).get("aws:asset:path")
        if res["Type"] == "AWS::CloudFormation::Stack" and nested and (folder / nested).is_file():
            child = json.loads((folder / nested).read_text(encoding="utf-8"))
            yield from _resources(stack, child, folder, f"{prefix}{logical_id}/")
        else:
            yield Resource(stack, prefix + logical_id, res["Type"], res.get("Properties", {}), template)


def _selected(name: str, env: EnvironmentConfig, include_pipeline: bool) -> bool:
    return name.startswith(f"{env.resource_prefix}-") or (include_pipeline and bool(PIPELINE_STACK.search(name)))


def estimate(
    cdk_out: Path, env: EnvironmentConfig, include_pipeline: bool = False, price_book: PriceBook | None = None
) -> Estimate:
    """Price every resource of the env's stacks (`<project>-<env>-*`, plus the pipeline stack if asked).

    The entry point for tests over real templates; `price_book` defaults to the committed price file.
    """
    book = price_book or PriceBook()
    seen: set[tuple[str, str]] = set()
    stacks: list[str] = []
    resources: list[Resource] = []
    for artifact in stack_artifacts(Path(cdk_out)):
        key = (artifact.environment, artifact.name)
        if not _selected(artifact.name, env, include_pipeline) or key in seen:
            continue  # the same stack reachable from two assemblies is counted once
        seen.add(key)
        stacks.append(artifact.name)
        template = json.loads(artifact.template.read_text(encoding="utf-8"))
        resources.extend(_resources(artifact.name, template, artifact.template.parent))

    node_hours = env.schedule.hours_per_week * 52 / 12 if env.schedule else HOURS_PER_MONTH
    db_hours = node_hours if env.schedule and env.schedule.stop_database else HOURS_PER_MONTH
    ctx = Context(env, book, resources, node_hours, db_hours, sum(1 for r in resources if _behind_api(r)))
    est = Estimate(env.name, book.region, book.currency, book.as_of, stacks)
    for r in resources:
        _add(est, r.type, _price(r, ctx))
    if stacks:
        est.stacks.append(ENV_WIDE)
        _add(est, "(config)", _env_wide(ctx))
    est.assumptions = _assumptions(ctx, include_pipeline)
    return est


def _add(est: Estimate, rtype: str, results: list[Result]) -> None:
    for result in results:
        if isinstance(result, Line):
            est.lines.append(result)
        elif isinstance(result, Unpriced):
            est.unpriced.append(result)
        else:
            est.free[f"{rtype} ({result.why})" if result.why else rtype] += 1


def _price(r: Resource, ctx: Context) -> list[Result]:
    pricer = PRICERS.get(r.type)
    if pricer is None:
        if r.type in FREE_TYPES or r.type.startswith(FREE_PREFIXES):
            return [Free("")]
        return [r.unpriced("unknown type: the estimator has no rule for it")]
    try:
        return pricer(r, ctx)
    except Unpriceable as exc:
        return [r.unpriced(str(exc))]


def _assumptions(ctx: Context, include_pipeline: bool) -> list[str]:
    env = ctx.env
    if env.schedule:
        s = env.schedule
        schedule = (
            f"schedule {s.weekdays} {s.start}-{s.stop} {s.timezone}: {_num(s.hours_per_week)} h/week × 52/12 "
            f"= {_num(ctx.node_hours, 1)} h/month for node groups (and their root volumes)"
            + ("" if s.stop_database else "; the database runs 730 h (stop_database is false)")
        )
    else:
        schedule = "no schedule: everything runs 730 h/month"
    usage = ", ".join(f"{k}={v}" for k, v in env.usage.model_dump().items())
    items = [
        f"{HOURS_PER_MONTH:g} h per month; prices as of {ctx.book.as_of} ({PRICE_FILE.name})",
        schedule,
        f"usage (config usage:): {usage}",
        "usage-billed items are split evenly when several resources share them (NAT gateways, HTTP APIs, "
        "API-backed functions); CloudWatch Logs volume is counted once per environment, covering log groups "
        "outside CloudFormation too (EKS control plane, Lambda, Fluent Bit, flow logs)",
        "Lambda: only functions behind the HTTP API get the invocations; the free tier (1 M requests + "
        "400k GB-s per account-month) is not subtracted",
        f"Kafka: {env.kafka.replicas} × {env.kafka.storage_gib} GiB gp3 PVC volumes from config, billed all month "
        "(scale-to-zero keeps them)",
        "not estimated: data transfer (internet out, cross-AZ), NLCU/LCU, API calls to Secrets Manager/KMS, "
        "X-Ray traces, EBS snapshots outside AWS Backup"
        + (", Container Insights metrics" if env.observability.container_insights else ""),
    ]
    items += _telemetry_assumptions(ctx)
    items += backup.backup_assumptions(ctx)
    if env.uses_employee_api:
        items.append(
            "employee-service proxy (in-cluster SigV4 proxy to the employee Lambda's function URL): $0 added: "
            f"{env.employee_proxy.replicas} pod(s) of 25m CPU / 32Mi on the existing nodes, Pod Identity and "
            "function URLs are free, its calls are Lambda invocations inside usage.lambda_invocations_per_month"
        )
    if include_pipeline:
        items.append(
            f"pipeline: {PIPELINE_RUNS_PER_MONTH} runs/month, {PIPELINE_ACTION_MINUTES_PER_RUN} V2 "
            f"action-minutes per run, {BUILD_MINUTES_PER_PROJECT_RUN} build minutes per CodeBuild project "
            f"per run; ECR {_num(ECR_GB_PER_REPOSITORY)} GB per repository"
        )
    return items


def _telemetry_assumptions(ctx: Context) -> list[str]:
    env = ctx.env
    items = [
        "CloudWatch alarms: billed per metric read, so a metric-math alarm (burn rates) counts every metric of its "
        "expression; composite alarms at their own price. Metric filters: one custom metric per distinct "
        "namespace/name/dimensions in the environment; with dimensions, the value combinations alarms read (a floor), "
        "each billed all month",
        f"scheduled jobs: runs per month read from each schedule's expression (cron counted over four whole years); "
        f"each run bills {_num(SCHEDULED_RUN_SECONDS)} s of its Lambda (assumed, capped at its timeout); "
        "EventBridge Scheduler's first 14 M invocations per account-month are free, scheduled rules cost nothing",
    ]
    if collector_metrics(ctx):
        items.append(
            f"OpenTelemetry collector: its pods' CPU and memory run on the existing nodes ($0 added, no line of their "
            f"own); its {collector_metrics(ctx)} custom metrics (the series its config declares, or usage.collector_custom_metrics) reach "
            f"CloudWatch as EMF log events in {collector_log_group(ctx)}: one event per metric every "
            f"{COLLECTOR_INTERVAL_SECONDS} s of ~{EMF_BYTES_PER_EVENT} bytes (assumed; fewer when metrics share "
            f"dimensions) = {_num(collector_emf_gb(ctx), 2)} GB/month, on top of usage.log_ingest_gb_per_month"
        )
    if env.observability.drift.enabled:
        try:
            source = ctx.book.get("cloudformation", "drift-detection").source
        except Unpriceable as exc:
            source = str(exc)
        items.append(
            f"drift detection: CloudFormation's drift detection operations cost nothing ({source}); the drift job "
            "pays its Lambda runs, priced on its schedule"
        )
    return items


# x86 instance type -> the Graviton type of the same size: what the nodes would cost if the images ran on arm64.
GRAVITON_EQUIVALENT = {
    "t3.medium": "t4g.medium",
    "t3.large": "t4g.large",
    "m7i.large": "m7g.large",
    "m6i.large": "m6g.large",
}


def graviton_what_if(est: Estimate, book: PriceBook | None = None) -> Estimate:
    """The same estimate with every x86 node group repriced at its Graviton equivalent (lines it cannot
    reprice stay as they are). Compared against the real one, it shows what amd64-only images cost."""
    book = book or PriceBook()
    lines = []
    for line in est.lines:
        instance_type = line.item.split(" ", 1)[0]
        if line.type == "AWS::EKS::Nodegroup" and instance_type in GRAVITON_EQUIVALENT:
            arm = GRAVITON_EQUIVALENT[instance_type]
            try:
                price = book.get("ec2", arm)
            except Unpriceable:
                lines.append(line)
                continue
            usd = line.usd / line.price.usd * price.usd
            line = Line(
                **{**asdict(line), "item": line.item.replace(instance_type, arm, 1), "price": price, "usd": usd}
            )
        lines.append(line)
    return Estimate(
        **{**{f: getattr(est, f) for f in ("env", "region", "currency", "prices_as_of", "stacks")}},
        lines=lines,
        unpriced=est.unpriced,
        free=est.free,
        assumptions=est.assumptions,
    )

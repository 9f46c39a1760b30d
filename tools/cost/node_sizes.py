"""Node cost at each node group's minimum, configured and maximum size (issue 22 item 5).

The estimate prices a group at its configured size (the template's ScalingConfig.DesiredSize). With the cluster
autoscaler a group moves between MinSize and MaxSize, so `make cost` also shows what its nodes and their root
volumes cost at either end: the same Nodegroup resources of the same templates, priced by the same pricer (same
prices, schedule hours and Spot handling) with only the node count changed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from config.models import EnvironmentConfig
from tools.cost.assembly import _resources, _selected, stack_artifacts
from tools.cost.model import Context, Line, Resource, _num
from tools.cost.pricers import PRICERS
from tools.cost.prices import HOURS_PER_MONTH, PriceBook

NODEGROUP = "AWS::EKS::Nodegroup"
SIZES = ("min", "configured", "max")
SCALING = {"min": "MinSize", "configured": "DesiredSize", "max": "MaxSize"}


@dataclass(frozen=True)
class GroupCost:
    stack: str
    logical_id: str
    group: str  # the erp/node-group tag, else the logical id
    instance_type: str
    nodes: dict[str, int]  # size -> node count
    usd: dict[str, float | None]  # size -> USD/month of the nodes and their root volumes; None: not all priced
    unpriced: tuple[str, ...]  # why, when a part is not priced


def _plain_int(value) -> int | None:
    return value if isinstance(value, int) else None


def node_group_costs(cdk_out: Path, env: EnvironmentConfig, price_book: PriceBook | None = None) -> list[GroupCost]:
    """Every node group of the environment's stacks, priced at its min, configured and max size."""
    book = price_book or PriceBook()
    resources: list[Resource] = []
    seen: set[tuple[str, str]] = set()
    for artifact in stack_artifacts(Path(cdk_out)):
        key = (artifact.environment, artifact.name)
        if _selected(artifact.name, env, False) and key not in seen:  # a stack reachable twice counts once
            seen.add(key)
            template = json.loads(artifact.template.read_text(encoding="utf-8"))
            resources.extend(_resources(artifact.name, template, artifact.template.parent))
    ctx = Context(env, book, resources, node_hours(env), HOURS_PER_MONTH, 0)
    found = []
    for resource in (r for r in resources if r.type == NODEGROUP):
        scaling = resource.props.get("ScalingConfig", {})
        nodes = {size: _plain_int(scaling.get(SCALING[size])) for size in SIZES}
        if nodes["min"] is None or nodes["max"] is None:
            continue  # sizes set by a token: nothing to say at either end
        nodes["configured"] = nodes["configured"] if nodes["configured"] is not None else nodes["min"]
        usd: dict[str, float | None] = {}
        why: list[str] = []
        for size in SIZES:
            sized = Resource(
                resource.stack,
                resource.logical_id,
                resource.type,
                _with_desired(resource.props, nodes[size]),
                resource.template,
            )
            results = PRICERS[NODEGROUP](sized, ctx)
            lines = [r for r in results if isinstance(r, Line)]
            usd[size] = sum(line.usd for line in lines) if len(lines) == len(results) else None
            why += [r.reason for r in results if not isinstance(r, Line) and hasattr(r, "reason")]
        tags = resource.props.get("Tags", {})
        found.append(
            GroupCost(
                resource.stack,
                resource.logical_id,
                tags.get("erp/node-group", resource.local_id) if isinstance(tags, dict) else resource.local_id,
                str(resource.props.get("InstanceTypes", ["?"])[0]),
                nodes,
                usd,
                tuple(dict.fromkeys(why)),
            )
        )
    return found


def node_hours(env: EnvironmentConfig) -> float:
    """The estimate's own node hours: node groups follow the night schedule (tools/cost/assembly.py estimate())."""
    return env.schedule.hours_per_week * 52 / 12 if env.schedule else HOURS_PER_MONTH


def _with_desired(props: dict, nodes: int) -> dict:
    sized = copy.deepcopy(props)
    sized.setdefault("ScalingConfig", {})["DesiredSize"] = nodes
    return sized


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"{value:,.2f}"


def _total(groups: list[GroupCost], size: str) -> float | None:
    values = [g.usd[size] for g in groups]
    return None if any(v is None for v in values) else sum(values)


def to_text(groups: list[GroupCost], node_hours: float) -> str:
    if not groups:
        return ""
    header = ("Node group", "Instance", "Nodes min / configured / max", *(f"USD/month at {s}" for s in SIZES))
    rows = [
        (
            g.group,
            g.instance_type,
            " / ".join(str(g.nodes[s]) for s in SIZES),
            *(_usd(g.usd[s]) for s in SIZES),
        )
        for g in groups
    ]
    rows.append(("all groups", "", "", *(_usd(_total(groups, s)) for s in SIZES)))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    out = ["", f"Node groups at min / configured / max size (nodes and root volumes, {_hours(node_hours)}):", ""]
    out += [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]
    out += _notes(groups)
    return "\n".join(out) + "\n"


def to_markdown(groups: list[GroupCost], node_hours: float) -> str:
    if not groups:
        return ""
    out = [
        "",
        f"#### Node groups at min / configured / max size (nodes and root volumes, {_hours(node_hours)})",
        "",
        "| Node group | Instance | Nodes min / configured / max | at min | at configured | at max |",
        "|---|---|---|---:|---:|---:|",
    ]
    for g in groups:
        sizes = " / ".join(str(g.nodes[s]) for s in SIZES)
        out.append(f"| {g.group} | {g.instance_type} | {sizes} | " + " | ".join(_usd(g.usd[s]) for s in SIZES) + " |")
    out.append("| **all groups** | | | " + " | ".join(f"**{_usd(_total(groups, s))}**" for s in SIZES) + " |")
    out += _notes(groups)
    return "\n".join(out) + "\n"


def to_data(groups: list[GroupCost]) -> list[dict]:
    return [
        {
            "group": g.group,
            "stack": g.stack,
            "logical_id": g.logical_id,
            "instance_type": g.instance_type,
            "nodes": g.nodes,
            "usd": {s: None if v is None else round(v, 4) for s, v in g.usd.items()},
            "unpriced": list(g.unpriced),
        }
        for g in groups
    ]


def _hours(node_hours: float) -> str:
    return "always on" if node_hours >= HOURS_PER_MONTH else f"scheduled, {_num(node_hours, 1)} h/month"


def _notes(groups: list[GroupCost]) -> list[str]:
    notes = [
        "",
        "The total above prices the configured size; the cluster autoscaler moves each group between min and max "
        "(`make capacity`: what the pods need at max).",
    ]
    notes += [f"{g.group}: {why}" for g in groups for why in g.unpriced]
    return notes

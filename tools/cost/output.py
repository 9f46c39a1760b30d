"""The estimate as text, markdown or JSON, and the markdown delta between two estimates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

from tools.cost.model import Estimate, Line

FOOTNOTE = "~ us-east-1 or region-unstated price (level C): the Seoul price may differ."


def _usd(line: Line) -> str:
    return f"{'~' if line.price.approximate else ''}{line.usd:,.2f}"


def _rows(est: Estimate) -> Iterator[tuple[str, ...]]:
    for stack in est.stacks:
        for line in (x for x in est.lines if x.stack == stack):
            yield (stack, line.logical_id, line.type, line.item, line.formula(), _usd(line))
        yield (stack, "", "", "", "subtotal", f"{est.subtotals[stack]:,.2f}")


def _total_text(est: Estimate) -> str:
    text = f"Total: ${est.total:,.2f}/month"
    if est.unpriced:
        text += f" (priced items only: {len(est.unpriced)} item(s) unpriced, listed below)"
    return text


def to_text(est: Estimate) -> str:
    header = ("Stack", "Logical ID", "Type", "Billed", "Quantity × price × hours", "USD/month")
    rows = [header, *_rows(est)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i == 5 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    out = [
        f"Cost estimate: {est.env} ({est.region}, {est.currency}/month, prices as of {est.prices_as_of})",
        "",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows[1:]),
        "",
        _total_text(est),
        "",
        "Unpriced:",
    ]
    out += [f"  {u.stack} {u.logical_id} ({u.type}): {u.reason}" for u in est.unpriced] or ["  none"]
    out += ["", "Free:", *(f"  {kind} ×{n}" for kind, n in sorted(est.free.items()))]
    out += ["", "Assumptions:", *(f"  - {a}" for a in est.assumptions)]
    if est.approximate:
        out += ["", FOOTNOTE]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(est: Estimate) -> str:
    out = [
        f"### Cost estimate: {est.env} ({est.region}, {est.currency}/month, prices as of {est.prices_as_of})",
        "",
        "| Stack | Logical ID | Type | Billed | Quantity × price × hours | USD/month |",
        "|---|---|---|---|---|---:|",
    ]
    for row in _rows(est):
        cells = [_md(c) for c in row]
        if row[4] == "subtotal":
            cells = [f"**{c}**" if c else "" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"**{_total_text(est)}**", "", "#### Unpriced", ""]
    out += [f"- `{u.stack}` `{u.logical_id}` ({u.type}): {_md(u.reason)}" for u in est.unpriced] or ["none"]
    out += ["", "#### Free", "", ", ".join(f"{k} ×{n}" for k, n in sorted(est.free.items())) or "none"]
    out += ["", "#### Assumptions", "", *(f"- {a}" for a in est.assumptions)]
    if est.approximate:
        out += ["", FOOTNOTE]
    return "\n".join(out) + "\n"


def to_json(est: Estimate) -> str:
    data = {
        "env": est.env,
        "region": est.region,
        "currency": est.currency,
        "prices_as_of": est.prices_as_of,
        "total": round(est.total, 4),
        "subtotals": {k: round(v, 4) for k, v in est.subtotals.items()},
        "lines": [
            {
                **{k: v for k, v in asdict(line).items() if k != "price"},
                "unit_usd": line.price.usd,
                "unit": line.price.unit,
                "price_source": line.price.source,
                "price_as_of": line.price.as_of,
                "approximate": line.price.approximate,
            }
            for line in est.lines
        ],
        "unpriced": [asdict(u) for u in est.unpriced],
        "free": dict(sorted(est.free.items())),
        "assumptions": est.assumptions,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def compare(base: Estimate, head: Estimate) -> str:
    """Markdown delta for a pull request: head (this branch) minus base (e.g. main)."""

    def signed(x: float) -> str:
        return f"{x:+,.2f}"

    out = [
        f"### Cost delta: {head.env} ({head.currency}/month, prices as of {head.prices_as_of})",
        "",
        "| Stack | base | head | Δ |",
        "|---|---:|---:|---:|",
    ]
    b, h = base.subtotals, head.subtotals
    for stack in dict.fromkeys([*base.stacks, *head.stacks]):
        delta = h.get(stack, 0.0) - b.get(stack, 0.0)
        out.append(f"| {stack} | {b.get(stack, 0.0):,.2f} | {h.get(stack, 0.0):,.2f} | {signed(delta)} |")
    out.append(f"| **Total** | **{base.total:,.2f}** | **{head.total:,.2f}** | **{signed(head.total - base.total)}** |")

    def keyed(est: Estimate) -> dict[tuple[str, str, str], float]:
        return {(x.stack, x.logical_id, x.item): x.usd for x in est.lines}

    kb, kh = keyed(base), keyed(head)
    changed = [(k, kh.get(k, 0.0) - kb.get(k, 0.0)) for k in dict.fromkeys([*kb, *kh])]
    changed = [(k, d) for k, d in changed if abs(d) >= 0.005]
    if changed:
        out += ["", "Changed items:", ""]
        out += [f"- `{s}` `{lid}` {_md(item)}: {signed(d)}" for (s, lid, item), d in changed]
    before = {(u.stack, u.logical_id, u.reason) for u in base.unpriced}
    new_unpriced = [u for u in head.unpriced if (u.stack, u.logical_id, u.reason) not in before]
    out += ["", f"Unpriced items: base {len(base.unpriced)}, head {len(head.unpriced)} (not in the totals)."]
    out += [f"- new: `{u.stack}` `{u.logical_id}` ({u.type}): {_md(u.reason)}" for u in new_unpriced]
    if base.approximate or head.approximate:
        out += ["", FOOTNOTE]
    return "\n".join(out) + "\n"

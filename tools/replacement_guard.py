"""Replacement guard: fail when a `cdk diff` would replace or delete a stateful resource without a
reviewed allowance (issue 12 item 7). Used before prod in the pipeline and on every pull request.

Stateful: tools.diff_report.STATEFUL_TYPES (databases, caches, user pools, secrets, log groups, ECR
repositories, ...), plus a change to a StatefulSet's `volumeClaimTemplates` inside a Kubernetes manifest
(Kafka's volumes: immutable, the apply fails and a recreate loses the claims). "may be replaced" counts:
the guard fails closed. So does output it cannot read (no stack, or the CLI never finished).

Also blocked: a replacement that cannot succeed although nothing stateful is lost (HAZARDS). The service NLB
holds fixed private addresses; CloudFormation creates a replacement (or a renamed NLB) before it deletes the
old one, the new one asks for the addresses the old one still holds, its create fails and the stack rolls back
(issue 18 item 10). The report prints the procedure to follow instead.

An allowance (config/allowed-replacements.yaml) names the stack, the logical id, a reason and an expiry
date; it is reviewed like any other change in the pull request that needs it, and an expired one no
longer counts. Exit status: 0 nothing blocked, 1 blocked, 2 unreadable diff or allowance file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tools.diff_report import _CHANGE, _SECTIONS, STATEFUL_TYPES, ResourceChange, StackDiff, _resource_change, parse

DEFAULT_ALLOWANCES = Path("config/allowed-replacements.yaml")
MANIFEST_TYPES = frozenset({"Custom::AWSCDK-EKS-KubernetesResource"})

NLB_FIXED_ADDRESSES = (
    "NLB with fixed private IPs (config/hosting.py nlb_private_ips): the new NLB is created while the old one "
    "still holds those addresses, so its create fails and the stack rolls back"
)
NLB_PROCEDURE = (
    "keep the NLB (undo what replaces it: a renamed construct, or a new Name, Scheme or Type), or move its "
    "addresses in the same change: make config/hosting.py nlb_private_ips pick another free address in each "
    "private subnet (e.g. [-3] instead of [-2]) so the new NLB takes free addresses; the pods' NetworkPolicies "
    "(which admit exactly those /32s) follow in the Workloads stack minutes later, and until then the new NLB is "
    "refused: deploy in a maintenance window, with an allowance for this logical id"
)
# Replacements that fail although they hold no data: type -> (why, what to do instead).
HAZARDS: dict[str, tuple[str, str]] = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": (NLB_FIXED_ADDRESSES, NLB_PROCEDURE),
}
_STACK_NAME = re.compile(r"\((?P<name>[^()]+)\)$")
_OLD = re.compile(r"^[\s│├└─]*\[-\] (?P<text>.*)$")
_NEW = re.compile(r"^[\s│├└─]*\[\+\] (?P<text>.*)$")


class Allowance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stack: Annotated[str, StringConstraints(min_length=1)]
    logical_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]+$")]
    reason: Annotated[str, StringConstraints(min_length=10)]
    expires: date


class AllowanceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowances: list[Allowance] = Field(default_factory=list)


class GuardError(Exception):
    """The diff or the allowance file cannot be judged: the guard fails closed."""


@dataclass(frozen=True)
class Finding:
    stack: str
    change: ResourceChange
    why: str
    allowance: Allowance | None = None
    procedure: str = ""

    @property
    def blocked(self) -> bool:
        return self.allowance is None


def stack_name(stack: StackDiff) -> str:
    """`ErpPipeline/Prod/Data (erp-prod-data)` -> `erp-prod-data`; a bare name stays as it is."""
    found = _STACK_NAME.search(stack.name)
    return found["name"] if found else stack.name


def load_allowances(path: Path, today: date) -> list[Allowance]:
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        allowances = AllowanceFile.model_validate(data).allowances
    except (yaml.YAMLError, ValidationError) as error:
        raise GuardError(f"{path}: not a valid allowance file ({str(error).splitlines()[0]})") from None
    return [a for a in allowances if a.expires >= today]


def _resource_blocks(stack: StackDiff) -> dict[str, list[str]]:
    """Logical id -> the lines cdk printed under that resource in the Resources section."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    section = ""
    for line in stack.lines:
        if line in _SECTIONS:
            section, current = line, None
        elif section != "Resources":
            continue
        elif header := _CHANGE.match(line):
            current = blocks.setdefault(_resource_change(header["mark"], header["rest"]).logical_id, [])
        elif current is not None:
            current.append(line)
    return blocks


def _claim_templates(text: str) -> dict[str, object] | None:
    """StatefulSet name -> its volumeClaimTemplates, from a manifest as cdk prints it; None if unreadable."""
    try:
        documents = json.loads(text)
    except ValueError:
        return None
    documents = documents if isinstance(documents, list) else [documents]
    return {
        str(d.get("metadata", {}).get("name")): d.get("spec", {}).get("volumeClaimTemplates")
        for d in documents
        if isinstance(d, dict) and d.get("kind") == "StatefulSet"
    }


def _vct_fragment(text: str) -> str:
    start = text.find('"volumeClaimTemplates"')
    return text[start:] if start >= 0 else ""


def volume_claims_changed(lines: Sequence[str]) -> bool:
    """Whether an old/new manifest pair cdk printed differs in any StatefulSet's volumeClaimTemplates.

    A manifest whose JSON cannot be read (a token inside it) is compared from `"volumeClaimTemplates"` to its
    end instead: coarser, but it errs towards blocking.
    """
    old = [m["text"] for line in lines if (m := _OLD.match(line))]
    new = [m["text"] for line in lines if (m := _NEW.match(line))]
    for before, after in zip(old, new, strict=False):
        if "volumeClaimTemplates" not in before + after:
            continue
        parsed_before, parsed_after = _claim_templates(before), _claim_templates(after)
        if parsed_before is None or parsed_after is None:
            if _vct_fragment(before) != _vct_fragment(after):
                return True
            continue
        for name in parsed_before.keys() & parsed_after.keys():
            if parsed_before[name] != parsed_after[name]:
                return True
    return False


def findings(stacks: Sequence[StackDiff], allowances: Sequence[Allowance]) -> list[Finding]:
    allowed = {(a.stack, a.logical_id): a for a in allowances}
    found: list[Finding] = []
    for stack in stacks:
        name = stack_name(stack)
        blocks = None
        removed_types = {c.resource_type for c in stack.resources if c.kind == "removed"}
        for change in stack.resources:
            why, procedure = "", ""
            if change.resource_type in STATEFUL_TYPES and change.kind in ("removed", "replaced"):
                why = {"removed": f"deleted ({change.impact or 'destroy'})"}.get(change.kind, change.impact)
            elif change.resource_type in MANIFEST_TYPES and change.kind == "modified":
                blocks = _resource_blocks(stack) if blocks is None else blocks
                if volume_claims_changed(blocks.get(change.logical_id, [])):
                    why = "StatefulSet volumeClaimTemplates changed (immutable: the apply fails)"
            elif change.resource_type in HAZARDS:
                hazard, how = HAZARDS[change.resource_type]
                if change.kind == "replaced":
                    why, procedure = f"{change.impact}: {hazard}", how
                elif change.kind == "added" and change.resource_type in removed_types:
                    # A new logical id beside a removed one of the same type: a rename, created before the delete.
                    why, procedure = f"replaces a removed one (a rename): {hazard}", how
            if why:
                found.append(Finding(name, change, why, allowed.get((name, change.logical_id)), procedure))
    return found


def check(text: str, allowances: Sequence[Allowance]) -> list[Finding]:
    stacks, finished = parse(text)
    if not finished:
        raise GuardError("cdk diff output holds no complete diff: cannot prove nothing is replaced")
    return findings(stacks, allowances)


def report(found: Sequence[Finding]) -> str:
    if not found:
        return "replacement guard: no stateful resource is replaced or deleted"
    lines = []
    for f in found:
        verdict = (
            "BLOCKED (no allowance in config/allowed-replacements.yaml)"
            if f.blocked
            else f"allowed until {f.allowance.expires}: {f.allowance.reason}"
        )
        lines.append(f"{f.stack} {f.change.logical_id} ({f.change.resource_type}) {f.why}: {verdict}")
        if f.blocked and f.procedure:
            lines.append(f"  procedure: {f.procedure}")
    blocked = sum(f.blocked for f in found)
    lines.append(f"replacement guard: {blocked} blocked, {len(found) - blocked} allowed")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diff", type=Path, help="file holding `cdk diff` output")
    parser.add_argument("--allowances", type=Path, default=DEFAULT_ALLOWANCES)
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="for tests (default: today, UTC)")
    args = parser.parse_args(argv)
    today = args.today or datetime.now(UTC).date()
    try:
        found = check(args.diff.read_text(encoding="utf-8", errors="replace"), load_allowances(args.allowances, today))
    except (GuardError, OSError) as error:
        print(f"replacement guard: FAILED CLOSED: {error}", file=sys.stderr)
        return 2
    print(report(found))
    return 1 if any(f.blocked for f in found) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Turn `cdk diff` output into the single pull-request comment reviewers read.

The raw diff is long, and the lines that matter most - a database, bucket or key about to be deleted
or replaced - drown in it. The comment puts those first, then a count of changes per stack, then the
full diff, and keeps under GitHub's comment size limit by cutting the full diff, never the warnings.

Reads what CDK CLI 2.x (2.1148) prints, with or without colour, including the progress lines it
interleaves between stacks. Exit status 1 means the output held no stack at all (cdk diff failed);
the comment then says so and quotes the end of the output.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "<!-- erp-platform-cdk-diff -->"
TITLE = "## Infrastructure diff"

# Resources whose deletion or replacement loses data or breaks what depends on their identity.
STATEFUL_TYPES = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBCluster",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::Cognito::UserPool",
        "AWS::SecretsManager::Secret",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::EFS::FileSystem",
        "AWS::EC2::Volume",
        "AWS::EKS::Cluster",
        "AWS::ECR::Repository",
    }
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_STACK = re.compile(r"^Stack (?P<name>.+?)(?: \((?P<env>aws://[^)]*)\))?$")
_STACK_COUNT = re.compile(r"Number of stacks with differences: \d+")
_SECTIONS = frozenset(
    {
        "Template",
        "IAM Statement Changes",
        "IAM Policy Changes",
        "Security Group Changes",
        "Parameters",
        "Metadata",
        "Mappings",
        "Conditions",
        "Resources",
        "Outputs",
        "Other Changes",
    }
)
_CHANGE = re.compile(r"^\[(?P<mark>[+\-~←?])\] (?P<rest>.+)$")
_IMPACT = re.compile(r" (?P<impact>may be replaced|replace|destroy|orphan|import)$")
_MOVE = re.compile(r" \(OR move .*\)$")
# What the CLI prints between stacks while it publishes templates and tries change sets: not part of a diff.
_PROGRESS = re.compile(
    r"^(?:(?:start|success|fail): |Hold on while we create a read-only change set|Could not create a change set)"
)
_DIFF_MARK = re.compile(r"^[\s│├└─]*\[(?P<mark>[+~-])\]")


@dataclass(frozen=True)
class ResourceChange:
    kind: str  # added, modified, removed, replaced
    resource_type: str
    logical_id: str
    path: str
    impact: str  # as cdk prints it: "", replace, may be replaced, destroy, orphan, import

    @property
    def destructive(self) -> bool:
        return self.resource_type in STATEFUL_TYPES and self.kind in ("removed", "replaced")


@dataclass
class StackDiff:
    name: str
    environment: str = ""
    lines: list[str] = field(default_factory=list)
    resources: list[ResourceChange] = field(default_factory=list)
    other_changes: int = 0  # parameters, outputs, conditions, ...

    @property
    def changed(self) -> bool:
        return not any(line.startswith("There were no differences") for line in self.lines)

    def count(self, kind: str) -> int:
        return sum(change.kind == kind for change in self.resources)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _resource_change(mark: str, rest: str) -> ResourceChange:
    """`TYPE [construct path] LOGICAL_ID [impact] [(OR move …)]`; the path may contain spaces, the id may not."""
    rest = _MOVE.sub("", rest)
    impact = ""
    if found := _IMPACT.search(rest):
        impact, rest = found["impact"], rest[: found.start()]
    resource_type, _, located = rest.partition(" ")
    path, _, logical_id = located.rpartition(" ")
    if mark in "+←":
        kind = "added"
    elif mark == "-":
        kind = "removed"
    else:
        kind = "replaced" if impact in ("replace", "may be replaced") else "modified"
    return ResourceChange(kind, resource_type, logical_id, path, impact)


def parse(text: str) -> tuple[list[StackDiff], bool]:
    """The stacks in the output, and whether the CLI got as far as its closing count line."""
    stacks: list[StackDiff] = []
    current: StackDiff | None = None
    section = ""
    finished = False
    for line in strip_ansi(text).splitlines():
        line = line.rstrip()
        if header := _STACK.match(line):
            current, section = StackDiff(header["name"], header["env"] or ""), ""
            stacks.append(current)
        elif _STACK_COUNT.search(line):
            current, finished = None, True
        elif current is not None and not _PROGRESS.match(line):
            current.lines.append(line)
            if line in _SECTIONS:
                section = line
            elif change := _CHANGE.match(line):
                if section == "Resources":
                    current.resources.append(_resource_change(change["mark"], change["rest"]))
                else:
                    current.other_changes += 1
    for stack in stacks:
        while stack.lines and not stack.lines[-1]:
            stack.lines.pop()
    return stacks, finished


# --- markdown -----------------------------------------------------------------------------------


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _impact_text(change: ResourceChange) -> str:
    return {
        "destroy": "**deleted**",
        "orphan": "removed from the stack (resource retained, orphaned)",
        "replace": "**replaced** (new resource, old one deleted)",
        "may be replaced": "**may be replaced**",
    }.get(change.impact, change.kind)


def destructive_section(stacks: Sequence[StackDiff]) -> str:
    rows = [(stack, change) for stack in stacks for change in stack.resources if change.destructive]
    if not rows:
        return "No stateful resource is deleted or replaced."
    lines = [
        "### ⚠ Destructive changes",
        "",
        f"{len(rows)} stateful resource(s) deleted or replaced. Check backups, snapshots and retention first.",
        "",
        "| Stack | Logical ID | Type | Construct path | Change |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {_code(stack.name)} | {_code(change.logical_id)} | {change.resource_type} | "
        f"{_code(change.path.replace('|', '¦'))} | {_impact_text(change)} |"
        for stack, change in rows
    ]
    return "\n".join(lines)


def _counts(stack: StackDiff) -> str:
    replaced = stack.count("replaced")
    possible = sum(change.impact == "may be replaced" for change in stack.resources)
    return " | ".join(
        [
            str(stack.count("added")),
            str(stack.count("modified")),
            str(stack.count("removed")),
            f"{replaced} ({possible} possibly)" if possible else str(replaced),
            str(stack.other_changes),
        ]
    )


def summary_section(stacks: Sequence[StackDiff]) -> str:
    changed = [stack for stack in stacks if stack.changed]
    unchanged = [stack for stack in stacks if not stack.changed]
    lines = ["### Summary", ""]
    if changed:
        lines += ["| Stack | Added | Modified | Removed | Replaced | Other changes |", "|---|--:|--:|--:|--:|--:|"]
        lines += [f"| {_code(stack.name)} | {_counts(stack)} |" for stack in changed]
    if unchanged:
        lines += ["", "No changes: " + ", ".join(_code(stack.name) for stack in unchanged)]
    return "\n".join(lines)


def _fence(lines: Sequence[str]) -> str:
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _diff_line(line: str) -> str:
    """Prefix cdk's [+]/[-]/[~] lines with a diff marker so GitHub colours them."""
    found = _DIFF_MARK.match(line)
    return {"+": "+ ", "-": "- ", "~": "! "}[found["mark"]] + line if found else "  " + line


def details_block(stack: StackDiff, keep_lines: int | None = None) -> str:
    lines = stack.lines if keep_lines is None else stack.lines[:keep_lines]
    cut = len(stack.lines) - len(lines)
    counts = (
        f"{stack.count('added')} added, {stack.count('modified')} modified, "
        f"{stack.count('removed')} removed, {stack.count('replaced')} replaced"
    )
    fence = _fence(lines)
    body = "\n".join(_diff_line(line) for line in lines)
    note = f"\n\n_✂ {cut} of {len(stack.lines)} lines cut to fit the comment._" if cut else ""
    return (
        f"<details><summary><b>{html.escape(stack.name)}</b>: {counts}</summary>\n\n"
        f"{fence}diff\n{body}\n{fence}{note}\n\n</details>"
    )


def _largest_partial(stack: StackDiff, budget: int) -> str | None:
    low, high, best = 1, len(stack.lines) - 1, None
    while low <= high:
        middle = (low + high) // 2
        block = details_block(stack, middle)
        if len(block) + 2 <= budget:
            best, low = block, middle + 1
        else:
            high = middle - 1
    return best


def _fit_details(stacks: Sequence[StackDiff], budget: int) -> tuple[list[str], str]:
    """Whole blocks while they fit, then as much of the next one as fits; the note says what was cut."""
    blocks: list[str] = []
    cuts: list[str] = []
    for index, stack in enumerate(stacks):
        block = details_block(stack)
        if len(block) + 2 <= budget:
            blocks.append(block)
            budget -= len(block) + 2
            continue
        partial = _largest_partial(stack, budget)
        if partial:
            blocks.append(partial)
            cuts.append(f"{_code(stack.name)} truncated")
        omitted = stacks[index + 1 :] if partial else stacks[index:]
        if omitted:
            cuts.append(", ".join(_code(other.name) for other in omitted) + " omitted")
        break
    note = (
        (
            f"> ✂ The full diff was cut to fit GitHub's comment size limit: {'; '.join(cuts)}. "
            "The complete `cdk diff` output is in the workflow log."
        )
        if cuts
        else ""
    )
    return blocks, note


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def guard_section(verdict: str) -> str:
    """tools/replacement_guard.py's output: which stateful changes are blocked, which carry an allowance."""
    lines = verdict.strip().splitlines() or ["(no output)"]
    blocked = not lines[-1].startswith("replacement guard: no ") and " 0 blocked" not in lines[-1]
    title = "### ⛔ Replacement guard: blocked" if blocked else "### Replacement guard: passed"
    note = (
        "A stateful resource would be replaced or deleted. Add a reviewed allowance to "
        "`config/allowed-replacements.yaml` (stack, logical id, reason, expiry) if that is intended."
        if blocked
        else ""
    )
    fence = _fence(lines)
    return "\n".join([title, "", *([note, ""] if note else []), fence + "text", *lines, fence])


def render(
    stacks: Sequence[StackDiff],
    finished: bool,
    raw_text: str,
    cost: str | None,
    max_chars: int,
    guard: str | None = None,
    notices: Sequence[str] = (),
) -> str:
    """Raises ValueError when even the destructive changes and the summary do not fit in max_chars."""
    head = [MARKER, TITLE, ""]
    if guard is not None:
        head += [guard_section(guard), ""]
    if notices:
        head += ["⚠ **Kubernetes support**", "", *(f"- {notice}" for notice in notices), ""]
    cost_part = [cost.rstrip()] if cost else []
    changed = [stack for stack in stacks if stack.changed]
    if not stacks and not finished:
        tail = "\n".join(strip_ansi(raw_text).strip().splitlines()[-20:]) or "(no output)"
        fence = _fence([tail])
        message = "⚠ **`cdk diff` printed no stack diff**: it probably failed. End of its output:"
        return _lines(*head, message, "", fence + "text", tail, fence)
    if not changed:
        compared = f" ({len(stacks)} stack(s) compared: {', '.join(_code(s.name) for s in stacks)})" if stacks else ""
        return _lines(*head, f"✅ No infrastructure changes{compared}.", *(["", *cost_part] if cost_part else []))

    essential = [
        *head,
        f"{len(changed)} of {len(stacks)} stack(s) have changes.",
        "",
        destructive_section(stacks),
        "",
        summary_section(stacks),
        "",
    ]
    cost_options = [cost_part, ["_Cost delta left out: it did not fit in the comment._"]] if cost else [[]]
    for cost_lines in cost_options:  # the cost section goes only if the essentials cannot fit with it
        fixed = _lines(*essential, *cost_lines, *([""] if cost_lines else []), "### Full diff")
        budget = max_chars - len(fixed)
        while True:
            blocks, note = _fit_details(changed, max(budget, 0))
            comment = fixed + "\n" + _lines("\n\n".join([note, *blocks] if note else blocks))
            if len(comment) <= max_chars:
                return comment
            if budget <= 0:
                break
            budget -= len(comment) - max_chars
    raise ValueError(f"the destructive changes and the summary alone exceed {max_chars} characters")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diff", type=Path, help="file holding `cdk diff` output (stdout and stderr)")
    parser.add_argument("--cost-delta", type=Path, metavar="MARKDOWN", help="cost-delta markdown to include verbatim")
    parser.add_argument("--guard", type=Path, metavar="TEXT", help="tools/replacement_guard.py output to include")
    parser.add_argument(
        "--notices", type=Path, metavar="TEXT", help="warnings to show on top, one per line (Kubernetes support dates)"
    )
    parser.add_argument(
        "--max-chars", type=int, default=65000, help="comment size limit (default 65000; GitHub: 65536)"
    )
    args = parser.parse_args(argv)

    raw_text = args.diff.read_text(encoding="utf-8", errors="replace")
    cost = None
    if args.cost_delta is not None:
        try:
            cost = args.cost_delta.read_text(encoding="utf-8")
        except OSError as error:
            cost = f"_Cost delta unavailable: cannot read {args.cost_delta} ({error.strerror})._"
    guard = None
    if args.guard is not None:
        try:
            guard = args.guard.read_text(encoding="utf-8")
        except OSError as error:
            guard = f"replacement guard: output unavailable ({error.strerror}): treat as blocked"
    notices: list[str] = []
    if args.notices is not None and args.notices.is_file():
        notices = [line for line in args.notices.read_text(encoding="utf-8").splitlines() if line.strip()]
    stacks, finished = parse(raw_text)
    try:
        comment = render(stacks, finished, raw_text, cost, args.max_chars, guard, notices)
    except ValueError as error:
        print(f"diff_report: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(comment)
    return 0 if stacks or finished else 1


if __name__ == "__main__":
    sys.exit(main())

"""Rehearse the next Kubernetes minor offline, before any cluster moves: `python -m tools.upgrade_check --to 1.37`.

EKS moves a control plane one minor at a time and never back, and whatever the new minor cannot run fails only
during the deploy, with the control plane already upgraded: a manifest using an API the minor removed, an add-on
or Helm chart with no build for it, a missing kubectl layer, a minor EKS has not released. This reads what
`make synth` produced (cdk.out), the config and the compatibility table (config/kubernetes-versions.yaml),
prints what the upgrade touches and the support calendar, and ends with one `blocker: ` line per thing to fix
first (exit 1 if any, 0 if none; warnings never change the exit status).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils

from config import CONFIG_DIR, ConfigError, environment_names, load_environment
from config.base import SUPPORTED_KUBERNETES
from config.kubernetes_versions import support_warnings, table_date
from tools.cost.assembly import stack_artifacts
from tools.cost.prices import HOURS_PER_MONTH, PriceBook

ROOT = Path(__file__).resolve().parents[1]
TABLE_FILE = ROOT / "config" / "kubernetes-versions.yaml"
REQUIREMENTS_FILE = ROOT / "requirements.txt"
KUBERNETES_RESOURCE = "Custom::AWSCDK-EKS-KubernetesResource"
HELM_CHART = "Custom::AWSCDK-EKS-HelmChart"
ADDON = "AWS::EKS::Addon"
PLACEHOLDER = "TOKEN"  # stands for a CloudFormation token (Ref, GetAtt...) inside a synthesized manifest

Kind = Literal["blocker", "warning", "note", "change"]


@dataclass(frozen=True)
class Finding:
    """One line of the report: `blocker` fails the run, `change` is a config edit the upgrade needs."""

    kind: Kind
    text: str

    def line(self) -> str:
        return f"{self.kind}: {self.text}"


def _blocker(text: str) -> Finding:
    return Finding("blocker", text)


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------------- the step


def parse_minor(version: str) -> tuple[int, int]:
    """The (major, minor) of "1.36" or "v1.36.2"; ValueError for anything else."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", str(version).strip())
    if not match:
        raise ValueError(f"{version!r} is not a Kubernetes minor like 1.37")
    return int(match[1]), int(match[2])


_COUNT = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def check_step(current: str, target: str) -> list[Finding]:
    """EKS takes exactly one minor up: the same minor, a downgrade or a jump is one blocker line."""
    cur, tgt = parse_minor(current), parse_minor(target)
    following = f"{cur[0]}.{cur[1] + 1}"
    if tgt == cur:
        return [_blocker(f"{target} is the current minor: nothing to upgrade (the next one is {following})")]
    if tgt < cur:
        return [_blocker(f"{target} is older than {current}: EKS never downgrades a control plane")]
    if tgt[0] != cur[0]:
        return [_blocker(f"{target} is not the next minor after {current}: EKS upgrades one minor at a time")]
    jump = tgt[1] - cur[1]
    if jump > 1:
        return [
            _blocker(
                f"{target} is {_COUNT.get(jump, str(jump))} minors past {current}: "
                f"EKS upgrades one minor at a time ({following} first)"
            )
        ]
    return []


# ------------------------------------------------------------------------------------------------ the assembly


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object of a synthesized manifest (or, with `problem`, a manifest that could not be read)."""

    stack: str
    logical_id: str
    obj: dict | None
    problem: str = ""

    @property
    def api_version(self) -> str:
        return str((self.obj or {}).get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str((self.obj or {}).get("kind", ""))

    def describe(self) -> str:
        meta = (self.obj or {}).get("metadata") or {}
        name = meta.get("name", "?")
        where = f"{meta['namespace']}/{name}" if meta.get("namespace") else name
        return f"{self.api_version}/{self.kind} {where} (stack {self.stack})"


def _resources(template: dict, folder: Path) -> Iterator[tuple[str, dict]]:
    """(logical id, resource) of a template and of the nested stacks it carries as assets."""
    for logical_id, res in template.get("Resources", {}).items():
        nested = res.get("Metadata", {}).get("aws:asset:path")
        if res.get("Type") == "AWS::CloudFormation::Stack" and nested and (folder / nested).is_file():
            child = json.loads((folder / nested).read_text(encoding="utf-8"))
            for child_id, child_res in _resources(child, folder):
                yield f"{logical_id}/{child_id}", child_res
        else:
            yield logical_id, res


def env_resources(assembly: Path, prefix: str) -> Iterator[tuple[str, str, dict]]:
    """(stack, logical id, resource) of every stack named `<prefix>-*` in the cloud assembly, each stack once
    (the pipeline's stage assemblies and a hand synth may both hold it)."""
    if not (Path(assembly) / "manifest.json").is_file():
        return
    seen: set[tuple[str, str]] = set()
    for artifact in stack_artifacts(Path(assembly)):
        key = (artifact.environment, artifact.name)
        if not artifact.name.startswith(f"{prefix}-") or key in seen:
            continue
        seen.add(key)
        template = json.loads(artifact.template.read_text(encoding="utf-8"))
        for logical_id, res in _resources(template, artifact.template.parent):
            yield artifact.name, logical_id, res


def stacks_of(assembly: Path, prefix: str) -> list[str]:
    return sorted({stack for stack, _, _ in env_resources(assembly, prefix)})


def _join_text(join: Any) -> str:
    """An `Fn::Join` of strings and tokens as text, each token replaced by a placeholder that keeps it JSON:
    bare inside a JSON string ("cidr": "<token>/32"), quoted where it stands for a whole value."""
    delimiter, parts = join
    text = ""
    in_string = False
    for i, part in enumerate(parts):
        if i:
            text += delimiter
            in_string = _still_in_string(delimiter, in_string)
        if isinstance(part, str):
            text += part
            in_string = _still_in_string(part, in_string)
        else:
            text += PLACEHOLDER if in_string else f'"{PLACEHOLDER}"'
    return text


def _still_in_string(chunk: str, in_string: bool) -> bool:
    escaped = False
    for char in chunk:
        if escaped:
            escaped = False
        elif char == "\\" and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string


def manifest_text(value: Any) -> str:
    """The `Manifest` property as JSON text; ValueError for a form this does not read."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        return _join_text(value["Fn::Join"])
    raise ValueError(f"a {', '.join(value) if isinstance(value, dict) else type(value).__name__} it cannot read")


def manifests_of(assembly: Path, prefix: str) -> list[Manifest]:
    """Every object of every Custom::AWSCDK-EKS-KubernetesResource of the env's stacks."""
    found: list[Manifest] = []
    for stack, logical_id, res in env_resources(assembly, prefix):
        if res.get("Type") != KUBERNETES_RESOURCE:
            continue
        try:
            objects = json.loads(manifest_text(res.get("Properties", {}).get("Manifest")))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            found.append(Manifest(stack, logical_id, None, f"manifest of {logical_id} (stack {stack}) unread: {exc}"))
            continue
        for obj in objects if isinstance(objects, list) else [objects]:
            found.append(Manifest(stack, logical_id, obj if isinstance(obj, dict) else {"value": obj}))
    return found


def addons_of(assembly: Path, prefix: str) -> list[str]:
    """AddonName of every AWS::EKS::Addon of the env's stacks."""
    return sorted(
        {
            str(res.get("Properties", {}).get("AddonName"))
            for _, _, res in env_resources(assembly, prefix)
            if res.get("Type") == ADDON
        }
    )


def charts_of(assembly: Path, prefix: str) -> dict[str, str]:
    """Chart -> Version of every Custom::AWSCDK-EKS-HelmChart of the env's stacks."""
    return {
        str(res["Properties"].get("Chart")): str(res["Properties"].get("Version"))
        for _, _, res in env_resources(assembly, prefix)
        if res.get("Type") == HELM_CHART and "Properties" in res
    }


def cluster_versions_of(assembly: Path, prefix: str) -> list[str]:
    """The Version of every AWS::EKS::Cluster of the env's stacks (what cdk.out was synthesized for)."""
    return sorted(
        {
            str(res["Properties"]["Version"])
            for _, _, res in env_resources(assembly, prefix)
            if res.get("Type") == "AWS::EKS::Cluster" and "Version" in res.get("Properties", {})
        }
    )


# --------------------------------------------------------------------------------------------- the schemas


def bundled_minors() -> list[str]:
    """The minors kubernetes-validate ships schemas for ("1.34", ...), oldest first."""
    return sorted({kv_utils.major_minor(v) for v in kv_utils.all_versions()}, key=parse_minor)


def schema_support(target: str) -> list[Finding]:
    """One blocker when the installed kubernetes-validate has no schemas of the target minor (its `validate`
    would raise VersionNotSupportedError above its newest minor, and silently use an older one in a gap)."""
    minors = bundled_minors()
    if target in minors:
        return []
    return [
        _blocker(
            f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for {target} "
            f"(it ships {minors[0]}..{minors[-1]}): pin a release that has them in requirements-dev.txt"
        )
    ]


def is_custom(api_version: str) -> bool:
    """A CRD's group: one with a dot that is not Kubernetes' own (*.k8s.io), e.g. external-secrets.io."""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return "." in group and group != "k8s.io" and not group.endswith(".k8s.io")


def _has_schema(obj: dict, version: str) -> bool:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        pass
    return True


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


_NEUTRAL = {"integer": 0, "number": 0, "boolean": False, "object": {}, "array": [], "string": PLACEHOLDER}


def _set(obj: Any, path: list[Any], value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


def _validate(obj: dict, version: str) -> kubernetes_validate.ValidationError | None:
    """The first strict-schema error, if any. A token that stands for a whole non-string value (a number from
    a Ref) is given a neutral value of the type the schema wants and validation runs again."""
    obj = deepcopy(obj)
    for _ in range(50):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            return None
        except kubernetes_validate.ValidationError as exc:
            wanted = exc.validator_value if isinstance(exc.validator_value, list) else [exc.validator_value]
            wanted = [t for t in wanted if t in _NEUTRAL and t != "null"]
            if exc.validator != "type" or exc.instance != PLACEHOLDER or not exc.absolute_path or not wanted:
                return exc
            _set(obj, list(exc.absolute_path), deepcopy(_NEUTRAL[wanted[0]]))
    return None


def _describe_error(exc: kubernetes_validate.ValidationError) -> str:
    path = list(exc.absolute_path)
    if exc.validator == "additionalProperties" and isinstance(exc.instance, dict):
        known = set((exc.schema or {}).get("properties", {}))
        extra = sorted(k for k in exc.instance if k not in known)
        if extra:
            return "; ".join(f"{_path([*path, key])}: unknown field" for key in extra)
    return f"{_path(path)}: {exc.message}"


def schema_findings(manifests: list[Manifest], current: str, target: str) -> list[Finding]:
    """Every object against the target's strict schemas: a kind the current minor serves and the target does
    not is `removed in`, any other error names the field; custom resources are counted and skipped."""
    unsupported = schema_support(target)
    if unsupported:
        return unsupported
    current_known = current in bundled_minors()
    findings: list[Finding] = []
    custom: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    checked = 0
    for m in manifests:
        if m.problem:
            findings.append(_blocker(f"not checked: {m.problem}"))
            continue
        if not m.api_version or not m.kind:
            findings.append(_blocker(f"not a Kubernetes object (no apiVersion/kind): {m.describe()}"))
            continue
        if is_custom(m.api_version):
            custom[f"{m.kind} ({m.api_version})"] += 1
            continue
        try:
            error = _validate(m.obj, target)
        except kubernetes_validate.SchemaNotFoundError:
            if current_known and _has_schema(m.obj, current):
                findings.append(_blocker(f"removed in {target}: {m.describe()}"))
            else:
                unknown[f"{m.kind} ({m.api_version})"] += 1
            continue
        except kubernetes_validate.InvalidSchemaError as exc:
            findings.append(_blocker(f"not checked: {m.describe()}: {exc.message}"))
            continue
        checked += 1
        if error is not None:
            findings.append(_blocker(f"{target} strict schema: {m.describe()}: {_describe_error(error)}"))
    findings.append(
        Finding("note", f"{checked} of {len(manifests)} manifest objects validated against {target} (strict)")
    )
    if custom:
        listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(custom.items()))
        findings.append(
            Finding("note", f"{sum(custom.values())} custom resources skipped (CRDs, checked elsewhere): {listed}")
        )
    if unknown:
        listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(unknown.items()))
        findings.append(
            Finding("note", f"no built-in schema in {current} or {target}, skipped (a CRD under *.k8s.io?): {listed}")
        )
    return findings


# ------------------------------------------------------------------------------------- Helm's version ranges

_CV = (
    r"v?([0-9xX*]+)(\.[0-9xX*]+)?(\.[0-9xX*]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)
_OPS = r"!=|>=|=>|<=|=<|~>|=|>|<|~|\^|"
_ONE = re.compile(rf"^\s*({_OPS})\s*({_CV})\s*$")
_FIND = re.compile(rf"({_OPS})\s*({_CV})")
_VALID = re.compile(rf"^(\s*({_OPS})\s*({_CV})\s*)((?:\s+|,\s*)({_OPS})\s*({_CV})\s*)*$")
_HYPHEN = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_VERSION = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?(?:\+[0-9A-Za-z\-.]+)?$"
)


@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    pre: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _VERSION.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a version")
        return cls(int(match[1]), int(match[2] or 0), int(match[3] or 0), match[4] or "")

    def compare(self, other: SemVer) -> int:
        mine, theirs = (self.major, self.minor, self.patch), (other.major, other.minor, other.patch)
        if mine != theirs:
            return -1 if mine < theirs else 1
        return _compare_pre(self.pre, other.pre)


def _compare_pre(a: str, b: str) -> int:
    """SemVer precedence of prereleases: none is highest; numeric identifiers below alphanumeric ones."""
    if a == b:
        return 0
    if not a or not b:
        return 1 if not a else -1
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() or y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return -1 if len(left) < len(right) else 1 if len(left) > len(right) else 0


@dataclass(frozen=True)
class _Constraint:
    op: str
    con: SemVer
    dirty: bool  # an x/*/missing part: 1.2.x, 1.x, 1.2
    minor_dirty: bool
    patch_dirty: bool

    @classmethod
    def parse(cls, text: str) -> _Constraint:
        m = _ONE.match(text)
        if not m:
            raise ValueError(f"improper constraint: {text}")
        major, minor, patch = m[3], (m[4] or "").lstrip("."), (m[5] or "").lstrip(".")
        pre = f"-{m[7]}" if m[7] else ""
        is_x = {"x", "X", "*"}
        if major in is_x:
            return cls(m[1], SemVer.parse(f"0.0.0{pre}"), True, False, False)
        if minor in is_x or not minor:
            return cls(m[1], SemVer.parse(f"{major}.0.0{pre}"), True, True, False)
        if patch in is_x or not patch:
            return cls(m[1], SemVer.parse(f"{major}.{minor}.0{pre}"), True, False, True)
        return cls(m[1], SemVer.parse(m[2]), False, False, False)

    def check(self, v: SemVer, include_pre: bool) -> bool:
        if v.pre and not include_pre:
            return False  # a prerelease only matches a range that names one (the `-0` convention)
        c = self.con
        op = {"=>": ">=", "=<": "<=", "~>": "~", "": "="}.get(self.op, self.op)
        if op == "=":
            return self._tilde(v) if self.dirty else v.compare(c) == 0
        if op == "!=":
            if self.dirty:
                if c.major != v.major or (c.minor != v.minor and not self.minor_dirty):
                    return True
                if self.minor_dirty:
                    return False
                if c.patch != v.patch and not self.patch_dirty:
                    return True
                if self.patch_dirty:
                    return bool(v.pre or c.pre) and _compare_pre(v.pre, c.pre) != 0
            return v.compare(c) != 0
        if op == ">":
            if not self.dirty or v.major != c.major:
                return v.compare(c) > 0 if not self.dirty else v.major > c.major
            if self.minor_dirty:
                return False  # >1.x: 1.9 is not past 1
            return v.minor > c.minor if self.patch_dirty else v.compare(c) > 0
        if op == "<":
            return v.compare(c) < 0
        if op == ">=":
            return v.compare(c) >= 0
        if op == "<=":
            if not self.dirty:
                return v.compare(c) <= 0
            if v.major > c.major:
                return False
            return not (v.major == c.major and v.minor > c.minor and not self.minor_dirty)
        if op == "~":
            return self._tilde(v)
        return self._caret(v)

    def _tilde(self, v: SemVer) -> bool:
        c = self.con
        if v.compare(c) < 0:
            return False
        if (c.major, c.minor, c.patch) == (0, 0, 0) and not self.minor_dirty and not self.patch_dirty:
            return True
        return v.major == c.major and (v.minor == c.minor or self.minor_dirty)

    def _caret(self, v: SemVer) -> bool:
        c = self.con
        if v.compare(c) < 0:
            return False
        if c.major > 0 or self.minor_dirty:
            return v.major == c.major
        if v.major > 0:
            return False
        if c.minor > 0 or self.patch_dirty:
            return v.minor == c.minor
        if v.minor > 0:
            return False
        return v.patch == c.patch


def admits(constraint: str | None, version: str) -> bool:
    """Whether a chart's `kubeVersion` admits `version`, as Helm decides it (Masterminds semver v3 ranges:
    = != > < >= <= ~ ^, x wildcards, `a - b`; space or comma = AND, `||` = OR; a prerelease version only
    matches an AND group that names a prerelease, hence charts' `-0`). None or "" = no constraint.
    ValueError for a constraint Helm would refuse too."""
    if constraint is None or not str(constraint).strip():
        return True
    v = SemVer.parse(version)
    text = _HYPHEN.sub(lambda m: f">= {m[1]}, <= {m[11]} ", str(constraint))
    for group in text.split("||"):
        if not _VALID.match(group):
            raise ValueError(f"improper constraint: {group.strip()!r}")
        parsed = [_Constraint.parse(m.group(0)) for m in _FIND.finditer(group)]
        include_pre = any(c.con.pre for c in parsed)
        if all(c.check(v, include_pre) for c in parsed):
            return True
    return False


# ----------------------------------------------------------------------------------------- the table


def load_table(path: Path) -> tuple[dict, list[Finding]]:
    """The compatibility table, or {} and one blocker saying why it cannot be read."""
    name = _display(path)
    if not Path(path).is_file():
        return {}, [_blocker(f"{name}: not found: the table of add-on, chart and kubectl layer versions per minor")]
    try:
        table = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return {}, [_blocker(f"{name}: not valid YAML ({exc})")]
    if not isinstance(table, dict) or not isinstance(table.get("minors"), dict):
        return {}, [_blocker(f"{name}: needs a `minors:` mapping (and `charts:`, `read_on:`)")]
    odd = [repr(k) for k in table["minors"] if not isinstance(k, str)]
    if odd:
        return {}, [_blocker(f'{name}: minors must be quoted strings ("1.30", not 1.30): {", ".join(odd)}')]
    return table, []


def _entry(table: Mapping, minor: str) -> dict | None:
    entry = (table.get("minors") or {}).get(minor)
    return entry if isinstance(entry, dict) else None


def _source(item: Any) -> str:
    """The table's own words for an entry: `; why: ...` (a null's reason) and `; source: ...`."""
    if not isinstance(item, dict):
        return ""
    return "".join(f"; {key}: {item[key]}" for key in ("why", "source") if item.get(key))


def chart_name(helm_field: str) -> str:
    """config's cluster.helm field -> chart name: aws_load_balancer_controller -> aws-load-balancer-controller."""
    return helm_field.replace("_", "-")


def _helm_dict(helm: Any) -> dict[str, str]:
    return dict(helm.model_dump() if hasattr(helm, "model_dump") else helm)


def release_findings(table: Mapping, target: str, table_name: str = "config/kubernetes-versions.yaml") -> list[Finding]:
    """The target must be in the table and released by EKS."""
    entry = _entry(table, target)
    if entry is None:
        return [_blocker(f"{target} is not in {table_name}: record its EKS dates, add-on versions and kubectl layer")]
    if not entry.get("eks_release"):
        return [_blocker(f"EKS has not released {target} (as of the table's read_on {table.get('read_on')})")]
    return []


def table_findings(
    table: Mapping,
    addons: Iterable[str],
    helm: Any,
    target: str,
    table_name: str = "config/kubernetes-versions.yaml",
) -> list[Finding]:
    """Every installed add-on has a version for the target; every chart of config is recorded at config's
    version with a kubeVersion that admits `<target>.0`."""
    findings: list[Finding] = []
    entry = _entry(table, target)
    if entry is not None:  # a missing minor is release_findings' one line
        recorded = entry.get("addons") or {}
        for addon in sorted(addons):
            item = recorded.get(addon)
            version = item.get("version") if isinstance(item, dict) else None
            if not version:
                findings.append(
                    _blocker(f"add-on {addon} has no recorded version for {target} ({table_name}{_source(item)})")
                )
            else:
                findings.append(Finding("note", f"add-on {addon}: {version} for {target}"))
    charts = table.get("charts") or {}
    for field, version in sorted(_helm_dict(helm).items()):
        chart = chart_name(field)
        item = charts.get(chart)
        if not isinstance(item, dict):
            findings.append(
                _blocker(f"chart {chart} is not in {table_name}: record kubeVersion of chart {chart} version {version}")
            )
            continue
        if str(item.get("version")) != str(version):
            findings.append(
                _blocker(
                    f"chart {chart}: config has {version}, {table_name} recorded {item.get('version')}: "
                    f"record kubeVersion of chart {chart} version {version}"
                )
            )
            continue
        constraint = item.get("kube_version")
        try:
            ok = admits(constraint, f"{target}.0")
        except ValueError as exc:
            findings.append(_blocker(f"chart {chart} {version}: kube_version {constraint!r} in {table_name}: {exc}"))
            continue
        if not ok:
            findings.append(
                _blocker(
                    f"chart {chart} {version} does not admit {target}.0 (kubeVersion {constraint!r}{_source(item)})"
                )
            )
        else:
            said = f"kubeVersion {constraint!r} admits {target}.0" if constraint else "declares no kubeVersion"
            findings.append(Finding("note", f"chart {chart} {version}: {said}"))
    return findings


def config_changes(config_file: str, current: str, target: str, helm: Any, table: Mapping) -> list[Finding]:
    """The config fields the upgrade edits in one env file (a chart whose recorded kubeVersion refuses the
    target needs a newer chart version)."""
    changes = [Finding("change", f"{config_file}: cluster.kubernetes_version: {current} -> {target}")]
    charts = table.get("charts") or {}
    for field, version in sorted(_helm_dict(helm).items()):
        item = charts.get(chart_name(field))
        if not isinstance(item, dict) or str(item.get("version")) != str(version):
            continue
        try:
            ok = admits(item.get("kube_version"), f"{target}.0")
        except ValueError:
            continue
        if not ok:
            changes.append(
                Finding(
                    "change",
                    f"{config_file}: cluster.helm.{field}: {version} -> a {chart_name(field)} release whose "
                    f"kubeVersion admits {target}",
                )
            )
    return changes


# ------------------------------------------------------------------------------------- the kubectl layer


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def importable(module: str) -> bool:
    """importlib.util.find_spec without importing the parent package (importing aws_cdk starts jsii's node)."""
    parent, _, child = module.rpartition(".")
    spec = importlib.machinery.PathFinder.find_spec(parent or module)
    if spec is None or not parent:
        return spec is not None
    return importlib.machinery.PathFinder.find_spec(module, list(spec.submodule_search_locations or [])) is not None


def layer_findings(
    table: Mapping,
    target: str,
    requirements: Path = REQUIREMENTS_FILE,
    is_importable: Callable[[str], bool] = importable,
) -> list[Finding]:
    """The kubectl layer package of the target is pinned in requirements.txt and installed."""
    entry = _entry(table, target)
    layer = (entry or {}).get("kubectl_layer")
    if entry is None:
        return []  # release_findings says the minor is missing
    if not isinstance(layer, dict) or not layer.get("package"):
        return [_blocker(f"no kubectl layer recorded for {target} (kubectl_layer.package in the table)")]
    package, version = str(layer["package"]), layer.get("version")
    pip_line = f"{package}=={version}" if version else package
    req_name = _display(requirements)
    pins: dict[str, str] = {}
    text = Path(requirements).read_text(encoding="utf-8") if Path(requirements).is_file() else ""
    for raw in text.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)", raw)
        if match:
            pins[_normalize(match[1])] = match[2]
    module = package.replace("-", "_")
    findings: list[Finding] = []
    pinned = pins.get(_normalize(package))
    if pinned is None:
        findings.append(_blocker(f"add {pip_line} to {req_name} (the kubectl layer for {target}), then make setup"))
    else:
        if version and pinned != str(version):
            findings.append(Finding("note", f"{req_name} pins {package}=={pinned}; the table recorded {version}"))
        if not is_importable(module):
            findings.append(_blocker(f"{package} is pinned in {req_name} but {module} is not installed: make setup"))
    if not any(f.kind == "blocker" for f in findings):
        findings.append(Finding("note", f"kubectl layer {package}=={pinned} pinned and installed"))
    return findings


# --------------------------------------------------------------------------------------------- the calendar


def extended_support_line(clusters: int, prices: PriceBook | None = None) -> str:
    """What staying past standard support would cost these clusters: EKS bills extended support per cluster-hour
    (the cost estimate's price file). With UpgradePolicy STANDARD the platform never pays it: EKS upgrades instead."""
    book = prices or PriceBook()
    standard, extended = (book.get("eks", item).usd for item in ("control-plane-standard", "control-plane-extended"))
    extra = (extended - standard) * HOURS_PER_MONTH
    return (
        f"extended support: ${extended:.2f}/cluster-hour instead of ${standard:.2f}, +${extra:.2f}/month per cluster, "
        f"+${extra * clusters:.2f}/month for these {clusters} cluster(s) (tools/cost/prices-ap-northeast-2.yaml); "
        "UpgradePolicy STANDARD never pays it: EKS upgrades the control plane at the end of standard support"
    )


def support_lines(table: Mapping, currents: Mapping[str, str], today: date) -> tuple[list[str], list[Finding]]:
    """The support calendar of every minor in the table, each env's days of standard support left, and the
    warnings: standard support ending within 90 days, a table read more than 90 days ago."""
    minors = sorted(table.get("minors") or {}, key=parse_minor)
    on = {m: [env for env, cur in sorted(currents.items()) if cur == m] for m in minors}
    rows = [("minor", "EKS release", "end of standard", "end of extended", "environments")]
    for minor in minors:
        e = _entry(table, minor) or {}
        cells = [e.get("eks_release"), e.get("end_of_standard_support"), e.get("end_of_extended_support")]
        rows.append((minor, *("-" if c is None else str(c) for c in cells), ", ".join(on[minor])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for env, minor in sorted(currents.items()):
        end = table_date((_entry(table, minor) or {}).get("end_of_standard_support"))
        if end is not None:
            lines.append(f"{env}: {minor}, standard support until {end} ({(end - today).days} days left as of {today})")
    lines.append(f"table read on {table.get('read_on') or '?'}")
    lines.append(extended_support_line(len(currents)))
    findings = [Finding("warning", text) for text in support_warnings(currents, today, table)]
    return lines, findings


# --------------------------------------------------------------------------------------------------- main


def _minor_arg(value: str) -> str:
    try:
        major, minor = parse_minor(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{major}.{minor}"


def _today_arg(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-12-04") from None


def _prefixed(env: str, findings: Iterable[Finding]) -> list[Finding]:
    return [Finding(f.kind, f"{env}: {f.text}") for f in findings]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.upgrade_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, type=_minor_arg, help="the Kubernetes minor to rehearse, e.g. 1.37")
    parser.add_argument("--env", default="all", help="an environment (config/<env>.yaml) or all (default)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="cloud assembly (default: cdk.out)")
    parser.add_argument(
        "--versions", type=Path, default=TABLE_FILE, help=f"the table (default: {_display(TABLE_FILE)})"
    )
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help="config folder (default: config)")
    parser.add_argument(
        "--requirements",
        type=Path,
        default=REQUIREMENTS_FILE,
        help="where the kubectl layer must be pinned (default: requirements.txt)",
    )
    parser.add_argument("--today", type=_today_arg, default=None, help="YYYY-MM-DD for the support dates")
    args = parser.parse_args(argv)
    target, today = args.to, args.today or date.today()
    try:
        names = environment_names(args.config_dir) if args.env == "all" else [args.env]
        configs = {name: load_environment(name, args.config_dir) for name in names}
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    table, findings = load_table(args.versions)
    table_name = _display(args.versions)
    currents = {name: cfg.cluster.kubernetes_version for name, cfg in configs.items()}
    print(
        f"Kubernetes upgrade rehearsal to {target} (offline): {', '.join(f'{e} on {m}' for e, m in currents.items())}"
    )
    print(f"reads {args.cdk_out}, {table_name}, {_display(args.config_dir)}/, {_display(args.requirements)}")

    moving = [name for name in names if not check_step(currents[name], target)]
    no_schemas = schema_support(target)
    if moving:
        findings += no_schemas
    for name in names:
        cfg, current = configs[name], currents[name]
        step = check_step(current, target)
        if step:
            findings += _prefixed(name, step)
            continue
        prefix = cfg.resource_prefix
        env_findings: list[Finding] = []
        if not stacks_of(args.cdk_out, prefix):
            env_findings.append(
                _blocker(f"no stacks named {prefix}-* in {args.cdk_out}: synthesize first (make synth)")
            )
        else:
            synthesized = cluster_versions_of(args.cdk_out, prefix)
            if synthesized and synthesized != [current]:
                env_findings.append(
                    Finding(
                        "warning",
                        f"{args.cdk_out} was synthesized for {', '.join(synthesized)}, config says {current}: "
                        "synthesize again (make synth) for a faithful rehearsal",
                    )
                )
            if not no_schemas:
                env_findings += schema_findings(manifests_of(args.cdk_out, prefix), current, target)
            env_findings.append(
                Finding("note", "Helm charts are not rendered offline: the table's kubeVersion covers them")
            )
            extra = sorted(set(charts_of(args.cdk_out, prefix)) - {chart_name(f) for f in _helm_dict(cfg.cluster.helm)})
            for chart in extra:
                env_findings.append(
                    Finding("warning", f"chart {chart} is synthesized but not in cluster.helm: not checked")
                )
        if table:
            env_findings += table_findings(table, addons_of(args.cdk_out, prefix), cfg.cluster.helm, target, table_name)
        findings += _prefixed(name, env_findings)
        # named by their file, not prefixed with the env
        findings += config_changes(_display(args.config_dir / f"{name}.yaml"), current, target, cfg.cluster.helm, table)
    if moving and table:
        findings += release_findings(table, target, table_name)
        findings += layer_findings(table, target, args.requirements)
    if moving and target not in SUPPORTED_KUBERNETES:
        findings.append(
            Finding(
                "change",
                f'config/base.py: SUPPORTED_KUBERNETES gains "{target}": "v{parse_minor(target)[1]}" '
                f"(config refuses kubernetes_version {target} until then)",
            )
        )
    if table:
        calendar, warnings = support_lines(table, currents, today)
        print("\nsupport calendar:")
        for line in calendar:
            print(f"  {line}")
        findings += warnings
    for kind, title in (("note", "checked"), ("change", "config changes the upgrade needs"), ("warning", None)):
        selected = [f for f in findings if f.kind == kind]
        if selected:
            print(f"\n{title}:" if title else "")
            for f in selected:
                print(f"  {f.text}" if title else f.line())
    blockers = [f for f in findings if f.kind == "blocker"]
    print()
    for f in blockers:
        print(f.line())
    print(f"{len(blockers)} blocker(s) for {target}" if blockers else f"no blockers for {target}")
    return 1 if blockers else 0


if __name__ == "__main__":
    sys.exit(main())

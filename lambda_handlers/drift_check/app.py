"""Finds what changed behind the platform's back (issue 20, item 4) and tells the alarm topic.

Two checks, once a day (constructs_lib/observability/drift.py schedules it):

- CloudFormation drift detection on every stack of the environment, each in its own region (the edge stack
  lives in us-east-1): a console change to a security group shows up as a drifted resource with the property
  paths that differ. A stack whose detection cannot start (missing, mid-update) or does not finish in time is
  reported, never crashed on.
- Orphans in the cluster: objects carrying the platform's labels, in the namespaces the platform writes to,
  that no chart's inventory lists any more (left when a manifest's Delete failed: the kubectl handler logs and
  ignores delete errors, k8s_charts/manifests.py). The inventory is what the Workloads stack applied: one
  ConfigMap per chart (`platform-manifest-<chart>`, add_inventory). Only the kinds the charts ship are listed,
  and only those the function's EKS access policy (AmazonEKSViewPolicy, namespace scope) may read; the others
  are named in the report. Objects owned by another object are left to their owner's garbage collection.

Results: metrics DriftedStacks, OrphanedObjects and DriftCheckFailures every run; a message to the alarm topic
only when something drifted or could not be checked. The message is SNS JSON: `default` is an Amazon Q Developer
in chat applications custom notification, `email` a plain-text summary; both cut to fit SNS's 256 KB.

The Kubernetes API is read through kube_api.py, a link to lambda_handlers/kube_api.py: the token and client code
the workload health reporter and the scheduler use, bundled with this function.

Environment:
    ENVIRONMENT                  the environment's prefix, for titles (erp-dev)
    STACKS                       JSON [[stack name, region], ...]
    TOPIC_ARN                    the alarm topic
    MAX_WAIT_SECONDS             how long drift detection may run before the stacks still running are reported
    CLUSTER_NAME, ENDPOINT, CA_DATA   the cluster, its API endpoint and base64 CA bundle
    INVENTORY_NAMESPACE          where the inventory ConfigMaps live
    INVENTORY                    JSON [ConfigMap name, ...]: one per chart the Workloads stack applies
    NAMESPACES                   JSON [namespace, ...] the charts write to
    KINDS                        JSON ["apps/v1/Deployment", "v1/ConfigMap", ...]: the namespaced kinds they ship
    LABEL_SELECTOR               the labels every platform object carries (k=v,k=v)
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from kube_api import Fetch, KubeApi, KubeError, eks_token, http_fetch

logger = Logger()
metrics = Metrics()

POLL_SECONDS = 10
# Kept back from the function's timeout for the resource drifts, the message and the metrics.
RESERVE_SECONDS = 60
# SNS takes 262,144 bytes per message; the subject and attributes count too.
MAX_MESSAGE_BYTES = 250_000
MAX_PATHS = 20  # property paths listed per drifted resource
LIST_LIMIT = 500
DRIFT_STATES = ["MODIFIED", "DELETED"]
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
# What lets this function's role read the cluster (named when the API server refuses it).
ACCESS = (
    "its EKS access entry (AmazonEKSViewPolicy on the platform's namespaces, constructs_lib/observability/drift.py)"
)


# ---- CloudFormation drift ---------------------------------------------------------------------------------------


@dataclass
class ResourceDrift:
    logical_id: str
    resource_type: str
    status: str  # MODIFIED | DELETED
    differences: list[str]  # "<property path> (<difference type>)"


@dataclass
class StackResult:
    name: str
    region: str
    status: str = "NOT_CHECKED"  # CloudFormation's StackDriftStatus once detection ran
    drifts: list[ResourceDrift] = field(default_factory=list)
    problem: str | None = None  # why the stack, or some of its resources, could not be checked

    @property
    def drifted(self) -> bool:
        return self.status == "DRIFTED"


def _error(error: Exception) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code', 'Error')}: {detail.get('Message', str(error))}"
    return str(error)


def resource_drifts(client: Any, stack: str) -> list[ResourceDrift]:
    found, token = [], None
    while True:
        page = client.describe_stack_resource_drifts(
            StackName=stack,
            StackResourceDriftStatusFilters=DRIFT_STATES,
            MaxResults=100,
            **({"NextToken": token} if token else {}),
        )
        for drift in page.get("StackResourceDrifts", []):
            differences = [f"{d['PropertyPath']} ({d['DifferenceType']})" for d in drift.get("PropertyDifferences", [])]
            found.append(
                ResourceDrift(
                    drift["LogicalResourceId"], drift["ResourceType"], drift["StackResourceDriftStatus"], differences
                )
            )
        token = page.get("NextToken")
        if not token:
            return sorted(found, key=lambda d: d.logical_id)


def _finish(result: StackResult, client: Any, status: dict) -> None:
    result.status = status.get("StackDriftStatus", "UNKNOWN")
    if status["DetectionStatus"] == "DETECTION_FAILED":
        result.problem = f"drift detection failed for some resources: {status.get('DetectionStatusReason', '?')}"
    if result.drifted:
        try:
            result.drifts = resource_drifts(client, result.name)
        except (ClientError, BotoCoreError) as error:
            result.problem = f"its drifted resources could not be read: {_error(error)}"


def check_stacks(
    stacks: list[tuple[str, str]],
    client_for: Callable[[str], Any],
    wait_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[StackResult]:
    """Starts detection on every stack at once, then polls them all until done or `wait_seconds` passed."""
    results = [StackResult(name, region) for name, region in stacks]
    pending: dict[str, tuple[StackResult, str]] = {}
    for result in results:
        try:
            started = client_for(result.region).detect_stack_drift(StackName=result.name)
            pending[result.name] = (result, started["StackDriftDetectionId"])
        except (ClientError, BotoCoreError) as error:
            result.problem = f"drift detection could not start: {_error(error)}"
    deadline = clock() + wait_seconds
    while pending:
        for name, (result, detection_id) in list(pending.items()):
            client = client_for(result.region)
            try:
                status = client.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
            except (ClientError, BotoCoreError) as error:
                result.problem = f"drift detection status could not be read: {_error(error)}"
                del pending[name]
                continue
            if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
                _finish(result, client, status)
                del pending[name]
        if pending and clock() + POLL_SECONDS > deadline:
            for result, detection_id in pending.values():
                result.problem = (
                    f"drift detection did not finish within {wait_seconds:.0f} s (detection {detection_id} "
                    "may still complete: see the stack's drifts in the console)"
                )
            break
        if pending:
            sleep(POLL_SECONDS)
    return results


# ---- Orphans in the cluster ----------------------------------------------------------------------------------


@dataclass
class OrphanResult:
    orphans: list[str] = field(default_factory=list)  # "Kind namespace/name"
    unreadable: list[str] = field(default_factory=list)  # kinds the function could not list
    problem: str | None = None


def _group_version_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def read_inventory(api: KubeApi, namespace: str, configmaps: list[str]) -> set[str]:
    """Every object the charts' manifests hold ("Kind namespace/name"), the inventories themselves included."""
    expected = set()
    for name in configmaps:
        status, configmap = api.read(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        if status in (401, 403):
            raise KubeError(
                f"the Kubernetes API refused this function's role ({status}) reading the inventory {namespace}/"
                f"{name}: {api.access} must exist"
            )
        if status == 404:
            raise KubeError(f"the inventory ConfigMap {namespace}/{name} is missing (Workloads stack not deployed?)")
        if status != 200:
            raise KubeError(f"reading the inventory {namespace}/{name} answered {status}")
        lines = (configmap.get("data") or {}).get("objects", "").splitlines()
        expected |= {line.strip() for line in lines if line.strip()}
        expected.add(f"ConfigMap {namespace}/{name}")
    return expected


def resource_paths(api: KubeApi, kinds: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """(kind -> its namespaced collection path with `{ns}`, kinds the API server does not serve)."""
    by_group: dict[str, list[str]] = {}
    for entry in kinds:
        api_version, _, kind = entry.rpartition("/")
        by_group.setdefault(api_version, []).append(kind)
    paths, missing = {}, []
    for api_version, wanted in sorted(by_group.items()):
        prefix = _group_version_path(api_version)
        status, listing = api.read(prefix)
        served = {
            r["kind"]: r["name"]
            for r in (listing or {}).get("resources", [])
            if "/" not in r["name"] and r.get("namespaced") and "list" in r.get("verbs", [])
        }
        for kind in wanted:
            if kind in served:
                paths[kind] = f"{prefix}/namespaces/{{ns}}/{served[kind]}"
            else:
                missing.append(kind)
    return paths, missing


def list_labelled(api: KubeApi, path: str, selector: str) -> list[dict] | None:
    """Every object at `path` carrying the labels (all pages), or None when this role may not list them."""
    items, token = [], ""
    while True:
        query = {"labelSelector": selector, "limit": str(LIST_LIMIT), **({"continue": token} if token else {})}
        status, page = api.read(f"{path}?{urllib.parse.urlencode(query)}")
        if status in (401, 403, 404):
            return None
        if status != 200:
            raise KubeError(f"GET {path} answered {status}")
        items += page.get("items", [])
        token = page.get("metadata", {}).get("continue", "")
        if not token:
            return items


def find_orphans(
    api: KubeApi,
    *,
    inventory_namespace: str,
    inventory: list[str],
    namespaces: list[str],
    kinds: list[str],
    selector: str,
) -> OrphanResult:
    result = OrphanResult()
    try:
        expected = read_inventory(api, inventory_namespace, inventory)
        paths, result.unreadable = resource_paths(api, kinds)
        for kind, path in sorted(paths.items()):
            for namespace in namespaces:
                items = list_labelled(api, path.format(ns=namespace), selector)
                if items is None:
                    result.unreadable.append(kind)
                    break
                for item in items:
                    meta = item.get("metadata", {})
                    if meta.get("ownerReferences"):
                        continue  # garbage-collected with its owner
                    identity = f"{kind} {meta.get('namespace', namespace)}/{meta['name']}"
                    if identity not in expected:
                        result.orphans.append(identity)
    except KubeError as error:
        result.problem = str(error)
        result.orphans = []
    result.orphans.sort()
    result.unreadable = sorted(set(result.unreadable))
    return result


# ---- The message ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    section: str
    markdown: str
    text: str


SECTIONS = {
    "drift": ("*Drifted stacks* (changed outside CloudFormation)", "DRIFTED STACKS (changed outside CloudFormation)"),
    "unchecked": ("*Not fully checked*", "NOT FULLY CHECKED"),
    "orphans": (
        "*Orphaned cluster objects* (platform labels, in no chart's inventory)",
        "ORPHANED CLUSTER OBJECTS (platform labels, in no chart's inventory)",
    ),
}
NEXT_STEPS = [
    "Drifted resource: redeploy to restore the template's value, or put the change into the code.",
    "Orphaned object: `kubectl delete` it, or add it back to its chart.",
]


def report_lines(stacks: list[StackResult], cluster: OrphanResult) -> list[Line]:
    lines = []
    for stack in stacks:
        if not stack.drifted:
            continue
        lines.append(
            Line(
                "drift",
                f"• `{stack.name}` ({stack.region}): {len(stack.drifts)} resource(s)",
                f"- {stack.name} ({stack.region}): {len(stack.drifts)} resource(s)",
            )
        )
        for drift in stack.drifts:
            shown = drift.differences[:MAX_PATHS]
            more = len(drift.differences) - len(shown)
            paths = ", ".join(shown) + (f", +{more} more" if more else "")
            detail = f": {paths}" if paths else ""
            lines.append(
                Line(
                    "drift",
                    f"    ◦ `{drift.logical_id}` {drift.resource_type} {drift.status}{detail}",
                    f"    {drift.logical_id} {drift.resource_type} {drift.status}{detail}",
                )
            )
    for stack in stacks:
        if stack.problem:
            lines.append(
                Line(
                    "unchecked",
                    f"• `{stack.name}` ({stack.region}): {stack.problem}",
                    f"- {stack.name}: {stack.problem}",
                )
            )
    if cluster.problem:
        lines.append(
            Line("unchecked", f"• cluster objects: {cluster.problem}", f"- cluster objects: {cluster.problem}")
        )
    for orphan in cluster.orphans:
        lines.append(Line("orphans", f"• `{orphan}`", f"- {orphan}"))
    return lines


def headline(environment: str, stacks: list[StackResult], cluster: OrphanResult) -> str:
    drifted = sum(s.drifted for s in stacks)
    failed = sum(bool(s.problem) for s in stacks) + bool(cluster.problem)
    parts = [f"{drifted} stack(s) drifted", f"{len(cluster.orphans)} orphaned object(s)"]
    if failed:
        parts.append(f"{failed} check(s) incomplete")
    return f"Drift check of {environment}: " + ", ".join(parts)


def render(environment: str, title: str, lines: list[Line], shown: int, footnote: str) -> str:
    """The SNS message (MessageStructure=json) with the first `shown` lines and a count of the rest."""
    markdown, text, section = [], [title, ""], None
    for line in lines[:shown]:
        if line.section != section:
            section = line.section
            markdown.append(SECTIONS[section][0])
            text.append(SECTIONS[section][1])
        markdown.append(line.markdown)
        text.append(line.text)
    left_out = len(lines) - shown
    if left_out:
        markdown.append(f"_…and {left_out} more line(s) not shown: the drift function's log has all of them._")
        text.append(f"...and {left_out} more line(s) not shown: the drift function's log has all of them.")
    if footnote:
        markdown.append(f"_{footnote}_")
        text.append(footnote)
    text += ["", "Next steps:", *(f"- {step}" for step in NEXT_STEPS)]
    chat = {
        "version": "1.0",
        "source": "custom",
        "id": str(uuid.uuid4()),
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": "\n".join(markdown),
            "nextSteps": NEXT_STEPS,
            "keywords": [environment, "drift"],
        },
        "metadata": {"summary": title, "eventType": "DriftDetected"},
    }
    return json.dumps({"default": json.dumps(chat, ensure_ascii=False), "email": "\n".join(text)}, ensure_ascii=False)


def fit(environment: str, title: str, lines: list[Line], footnote: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """The longest message that fits `limit` bytes: whole lines are left out from the end, and counted."""
    low, high = 0, len(lines)
    while low < high:  # the largest `shown` whose message fits
        middle = (low + high + 1) // 2
        if len(render(environment, title, lines, middle, footnote).encode()) <= limit:
            low = middle
        else:
            high = middle - 1
    return render(environment, title, lines, low, footnote)


def subject(title: str) -> str:
    """SNS subjects: ASCII, under 100 characters."""
    ascii_title = title.encode("ascii", "replace").decode()
    return ascii_title if len(ascii_title) < 100 else ascii_title[:96] + "..."


# ---- The handler ------------------------------------------------------------------------------------------------


def _clients(factory: Callable[[str], Any] | None) -> Callable[[str], Any]:
    made: dict[str, Any] = {}

    def client_for(region: str) -> Any:
        if region not in made:
            made[region] = (
                factory(region) if factory else boto3.client("cloudformation", region_name=region, config=AWS_CONFIG)
            )
        return made[region]

    return client_for


def _wait_seconds(context: Any) -> float:
    wait = float(os.environ.get("MAX_WAIT_SECONDS", "600"))
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        wait = min(wait, remaining() / 1000 - RESERVE_SECONDS)
    return max(wait, 0.0)


def check_cluster(sts: Any, fetch: Fetch) -> OrphanResult:
    env = os.environ
    cluster = env["CLUSTER_NAME"]
    ca_pem = base64.b64decode(env["CA_DATA"]).decode()
    api = KubeApi(env["ENDPOINT"], ca_pem, lambda: eks_token(sts, cluster), fetch, access=ACCESS)
    return find_orphans(
        api,
        inventory_namespace=env["INVENTORY_NAMESPACE"],
        inventory=json.loads(env["INVENTORY"]),
        namespaces=json.loads(env["NAMESPACES"]),
        kinds=json.loads(env["KINDS"]),
        selector=env["LABEL_SELECTOR"],
    )


def handler(
    event,  # noqa: ARG001
    context,
    *,
    cloudformation: Callable[[str], Any] | None = None,
    sns=None,
    sts=None,
    fetch: Fetch = http_fetch,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    env = os.environ
    environment = env["ENVIRONMENT"]
    region = env["AWS_REGION"]
    # The regional STS endpoint, as `aws eks get-token` uses: the API server calls it with the token.
    sts = sts or boto3.client("sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com")
    sns = sns or boto3.client("sns", region_name=region, config=AWS_CONFIG)
    client_for = _clients(cloudformation)
    stacks = [(name, stack_region) for name, stack_region in json.loads(env["STACKS"])]
    try:
        # The cluster first (seconds); drift detection then gets whatever time is left.
        cluster = check_cluster(sts, fetch)
        stack_results = check_stacks(stacks, client_for, _wait_seconds(context), sleep=sleep, clock=clock)
        failures = sum(bool(s.problem) for s in stack_results) + bool(cluster.problem)
        counts = {
            "DriftedStacks": sum(s.drifted for s in stack_results),
            "OrphanedObjects": len(cluster.orphans),
            "DriftCheckFailures": failures,
        }
        for name, value in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    finally:
        metrics.flush_metrics()
    title = headline(environment, stack_results, cluster)
    report = {
        "title": title,
        **counts,
        "stacks": {
            s.name: {"status": s.status, "problem": s.problem, "drifts": [vars(d) for d in s.drifts]}
            for s in stack_results
        },
        "orphans": cluster.orphans,
        "unreadable_kinds": cluster.unreadable,
        "cluster_problem": cluster.problem,
    }
    lines = report_lines(stack_results, cluster)
    if not lines:
        logger.info("no drift, no orphans: nothing to report", extra={"report": report})
        return {**report, "published": False}
    footnote = (
        f"Not listed (the function's EKS access policy cannot read them): {', '.join(cluster.unreadable)}."
        if cluster.unreadable
        else ""
    )
    message = fit(environment, title, lines, footnote)
    sns.publish(TopicArn=env["TOPIC_ARN"], Subject=subject(title), Message=message, MessageStructure="json")
    logger.warning("drift reported to the alarm topic", extra={"report": report})
    return {**report, "published": True}

"""Image scan gate: the last check before the pipeline promotes service images to prod.

An image reaches prod only if its ECR scan finished and every finding at a blocking severity (CRITICAL and
HIGH always, more if asked) is either absent or accepted in the allow-list, with a reason and an end date.
The gate fails closed: an image it cannot prove clean (no scan, a scan still running when the wait budget is
spent, a failed scan, an AWS error, an unreadable allow-list) stops the deploy just as a finding does.

ECR scans images, not image indexes: a multi-arch image (every third-party one) has no scan of its index
digest. The gate reads the manifest of each reference (BatchGetImage, accepting index media types); an index
is resolved to the per-platform manifests of the platforms the node groups run (`--platforms`), and those
are what it judges. An index without one of those platforms fails: a pod on such a node could not run it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

DEFAULT_ALLOW_LIST = Path("config/scan-allowlist.yaml")
# Basic scanning uses FindingSeverity (… UNDEFINED); enhanced scanning (Inspector) adds UNTRIAGED.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED", "UNTRIAGED")
# Enhanced scanning reports a scanned, continuously monitored image as ACTIVE rather than COMPLETE.
FINISHED = frozenset({"COMPLETE", "ACTIVE"})
RUNNING = frozenset({"IN_PROGRESS", "PENDING"})
NO_SCAN = "NO_SCAN"
# CRITICAL and HIGH block whatever --fail-on says (issue 18 item 18).
ALWAYS_BLOCKING = frozenset({"CRITICAL", "HIGH"})
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
DEFAULT_PLATFORMS = "linux/amd64"


class GateError(Exception):
    """A problem that stops the gate before it can judge any image; the first line is the verdict reason."""


# --- images -------------------------------------------------------------------------------------

_REGISTRY_HOST = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None = None
    digest: str | None = None
    registry_id: str | None = None
    # Set on the per-platform image an index was resolved to: its platform and the reference it came from.
    platform: str | None = None
    of: str | None = None

    @property
    def image_id(self) -> dict[str, str]:
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or ""}

    def __str__(self) -> str:
        if self.of:
            return f"{self.of} [{self.platform} {self.digest}]"
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


def parse_image(text: str) -> ImageRef:
    """Take whatever the pipeline has at hand: `repo:tag`, `repo@sha256:…` or a full ECR image URI.

    A bare repository is refused: an implicit `latest` would check some other image than the one deployed.
    """
    ref, registry_id = text.strip(), None
    if host := _REGISTRY_HOST.match(ref):
        ref, registry_id = ref[host.end() :], host["account"]
    if "@" in ref:
        name, digest = ref.split("@", 1)
        repository = name.split(":", 1)[0]  # `repo:tag@digest`: the digest is what gets deployed
        if repository and _DIGEST.fullmatch(digest):
            return ImageRef(repository, digest=digest, registry_id=registry_id)
    else:
        repository, _, tag = ref.rpartition(":")
        if repository and tag and "/" not in tag:
            return ImageRef(repository, tag=tag, registry_id=registry_id)
    raise GateError(f"bad image reference {text!r}: expected repository:tag or repository@sha256:<64 hex digits>")


def collect_images(args: Sequence[str], images_file: Path | None) -> list[ImageRef]:
    texts = list(args)
    if images_file is not None:
        try:
            listed = yaml.safe_load(images_file.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise GateError(f"cannot read images file {images_file}: {error}") from error
        if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
            raise GateError(f"images file {images_file}: expected a JSON/YAML list of image references")
        texts += listed
    return list(dict.fromkeys(parse_image(text) for text in texts))


# --- allow-list ---------------------------------------------------------------------------------

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class AllowEntry(BaseModel):
    """One accepted risk. Reason and expiry are mandatory so that nothing is waived silently or forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\S+$")]
    reason: NonBlank
    expires: date
    images: Annotated[list[NonBlank], Field(min_length=1)] | None = None

    @field_validator("expires", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> date:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return date.fromisoformat(value.strip())  # a ValueError (2026-02-30) becomes a validation error
        raise ValueError(f"must be a date written YYYY-MM-DD, got {value!r}")

    def covers(self, finding_id: str, repository: str) -> bool:
        return self.id.upper() == finding_id.upper() and (self.images is None or repository in self.images)

    def expired(self, today: date) -> bool:
        """Valid through its expiry day."""
        return today > self.expires


class _TextDates(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: a bad date is then reported against its entry, not as a crash."""


_TextDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_allow_list(path: Path) -> list[AllowEntry]:
    try:
        data = yaml.load(path.read_text(), Loader=_TextDates)
    except OSError as error:
        raise GateError(f"cannot read allow-list {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise GateError(f"malformed allow-list {path}\n  {path}: not valid YAML: {error}") from error
    if data is None:  # a file holding only comments
        return []
    if not isinstance(data, list):
        raise GateError(
            f"malformed allow-list {path}\n  {path}: expected a list of entries, got a {type(data).__name__}"
        )
    entries, problems = [], []
    for number, raw in enumerate(data, 1):
        label = f"entry {number}" + (f" ({raw['id']})" if isinstance(raw, dict) and raw.get("id") else "")
        try:
            entries.append(AllowEntry.model_validate(raw))
        except ValidationError as error:
            problems += [f"{path}: {label}: {_explain(detail)}" for detail in error.errors()]
    if problems:
        raise GateError(f"malformed allow-list {path}\n  " + "\n  ".join(problems))
    return entries


def _explain(detail: Any) -> str:
    where = ".".join(str(part) for part in detail["loc"])
    if detail["type"] == "missing":
        return f"missing required key '{where}'"
    if detail["type"] == "extra_forbidden":
        return f"unknown key '{where}' (allowed: id, reason, expires, images)"
    return f"{where}: {detail['msg']}" if where else detail["msg"]


# --- scans --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    package: str = ""

    def __str__(self) -> str:
        return f"{self.id} ({', '.join(filter(None, (self.severity, self.package)))})"


@dataclass
class Scan:
    status: str
    description: str = ""
    findings: list[Finding] = field(default_factory=list)
    reported_counts: dict[str, int] = field(default_factory=dict)


def _basic_finding(raw: dict[str, Any]) -> Finding:
    attributes = {item.get("key"): item.get("value") for item in raw.get("attributes", [])}
    package = " ".join(filter(None, (attributes.get("package_name"), attributes.get("package_version"))))
    return Finding(raw.get("name") or "(unnamed finding)", str(raw.get("severity", "UNDEFINED")).upper(), package)


def _enhanced_finding(raw: dict[str, Any]) -> Finding:
    details = raw.get("packageVulnerabilityDetails", {})
    first_package = (details.get("vulnerablePackages") or [{}])[0]
    package = " ".join(filter(None, (first_package.get("name"), first_package.get("version"))))
    name = details.get("vulnerabilityId") or raw.get("title") or raw.get("findingArn") or "(unnamed finding)"
    return Finding(name, str(raw.get("severity", "UNDEFINED")).upper(), package)


def fetch_scan(client: Any, image: ImageRef) -> Scan:
    """The gate's only AWS call: the image's scan status and all its findings, basic and enhanced, every page."""
    request: dict[str, Any] = {"repositoryName": image.repository, "imageId": image.image_id}
    if image.registry_id:
        request["registryId"] = image.registry_id
    scan: Scan | None = None
    while True:
        try:
            page = client.describe_image_scan_findings(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ScanNotFoundException":
                return Scan(NO_SCAN, error.response["Error"].get("Message", ""))
            raise
        body = page.get("imageScanFindings", {})
        if scan is None:
            status = page.get("imageScanStatus", {})
            scan = Scan(
                status.get("status", "UNKNOWN"),
                status.get("description", ""),
                reported_counts=dict(body.get("findingSeverityCounts", {})),
            )
        scan.findings += [_basic_finding(raw) for raw in body.get("findings", [])]
        scan.findings += [_enhanced_finding(raw) for raw in body.get("enhancedFindings", [])]
        if not page.get("nextToken"):
            return scan
        request["nextToken"] = page["nextToken"]


class ImageMissing(Exception):
    """BatchGetImage reported the image as a failure (it raises only for a missing repository)."""


def resolve(client: Any, image: ImageRef, platforms: Sequence[str]) -> tuple[list[ImageRef], list[str]]:
    """(images to judge, problems) for `image`: itself, or for an image index the per-platform images of
    `platforms` (ECR scans those, never the index)."""
    request: dict[str, Any] = {
        "repositoryName": image.repository,
        "imageIds": [image.image_id],
        "acceptedMediaTypes": [*INDEX_TYPES, *MANIFEST_TYPES],
    }
    if image.registry_id:
        request["registryId"] = image.registry_id
    response = client.batch_get_image(**request)
    if not response.get("images"):
        failure = (response.get("failures") or [{}])[0]
        raise ImageMissing(f"{failure.get('failureCode', 'no image')}: {failure.get('failureReason', '')}".strip())
    found = response["images"][0]
    try:
        document = json.loads(found.get("imageManifest") or "{}")
    except ValueError as error:
        return [], [f"unreadable manifest: {error}"]
    media_type = found.get("imageManifestMediaType") or document.get("mediaType", "")
    if media_type not in INDEX_TYPES:
        return [image], []
    children: dict[str, str] = {}
    for entry in document.get("manifests", []):
        platform = entry.get("platform", {})
        children.setdefault(f"{platform.get('os')}/{platform.get('architecture')}", entry.get("digest", ""))
    problems = [
        f"the image index has no {platform} image, but the node groups run {platform}"
        for platform in platforms
        if platform not in children
    ]
    resolved = [
        ImageRef(image.repository, digest=children[p], registry_id=image.registry_id, platform=p, of=str(image))
        for p in platforms
        if p in children
    ]
    return resolved, problems


def wait_for_scan(
    client: Any, image: ImageRef, deadline: float, poll: float, now: Callable[[], float], sleep: Callable[[float], None]
) -> Scan:
    scan = fetch_scan(client, image)
    while scan.status in RUNNING and now() < deadline:
        sleep(min(poll, deadline - now()))
        scan = fetch_scan(client, image)
    return scan


# --- verdict ------------------------------------------------------------------------------------


@dataclass
class ImageVerdict:
    image: ImageRef
    scan: Scan | None = None
    problems: list[str] = field(default_factory=list)
    blocking: list[tuple[Finding, str]] = field(default_factory=list)  # finding, note
    allowed: list[tuple[Finding, AllowEntry]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and not self.blocking

    @property
    def reasons(self) -> list[str]:
        blocking = [f"{len(self.blocking)} blocking finding(s)"] if self.blocking else []
        return self.problems + blocking


def judge(
    image: ImageRef, scan: Scan, entries: Sequence[AllowEntry], fail_on: frozenset[str], today: date, max_wait: float
) -> ImageVerdict:
    verdict = ImageVerdict(image, scan)
    if scan.status == NO_SCAN:
        verdict.problems.append("no scan found (scan on push or enhanced scanning must cover this repository)")
    elif scan.status in RUNNING:
        verdict.problems.append(f"scan still {scan.status} after waiting {max_wait:g}s")
    elif scan.status not in FINISHED:
        verdict.problems.append(f"scan status {scan.status}" + (f": {scan.description}" if scan.description else ""))
    if verdict.problems:
        return verdict

    for finding in scan.findings:
        if finding.severity not in fail_on:
            continue
        covering = [entry for entry in entries if entry.covers(finding.id, image.repository)]
        valid = [entry for entry in covering if not entry.expired(today)]
        if valid:
            verdict.allowed.append((finding, valid[0]))
        else:
            expiries = ", ".join(entry.expires.isoformat() for entry in covering)
            verdict.blocking.append((finding, f"allow-list entry expired {expiries}" if covering else ""))

    listed = Counter(finding.severity for finding in scan.findings)
    for severity in sorted(fail_on, key=SEVERITIES.index):
        reported = scan.reported_counts.get(severity, 0)
        if reported > listed[severity]:
            verdict.problems.append(
                f"ECR counts {reported} {severity} finding(s) but lists only {listed[severity]}: "
                "the unlisted ones cannot be checked against the allow-list"
            )
    return verdict


# Preconditions of a first deploy, spelled out: the stage's Registry stack creates the repositories (the
# pipeline deploys it before the gate); the images must be pushed by whoever builds them. Third-party images
# (repositories under a pull-through cache prefix) are pulled into the cache by that stack's cache warmer.
PRECONDITIONS = {
    "RepositoryNotFoundException": (
        "repository {repository} does not exist: the stage's registry stack (erp-<env>-registry) creates it "
        "and runs before this gate; do not create it by hand (its name is fixed: the stack would then fail "
        "with 'already exists')"
    ),
    "ImageNotFoundException": (
        "image {image} is not in {repository}: push it (scan on push then scans it) and retry the stage "
        "(README: First deploy into fresh accounts)"
    ),
}
CACHED_PRECONDITION = (
    "{image} is not in the pull-through cache: the stage's registry stack (erp-<env>-registry) pulls every "
    "third-party image by tag when it deploys (its CacheWarmer trigger; its log says why a pull failed, e.g. "
    "a missing ecr-pullthroughcache/ secret); redeploy that stack and retry the stage"
)
DEFAULT_CACHE_PREFIXES = ("ecr-public", "docker-hub", "ghcr", "k8s")


def _cached(image: ImageRef, cache_prefixes: Sequence[str]) -> bool:
    return any(image.repository.startswith(f"{prefix}/") for prefix in cache_prefixes)


def _explain_client_error(image: ImageRef, error: ClientError, cache_prefixes: Sequence[str] = ()) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    if code in PRECONDITIONS:
        if _cached(image, cache_prefixes):
            return f"precondition: {CACHED_PRECONDITION.format(image=image)}"
        return f"precondition: {PRECONDITIONS[code].format(repository=image.repository, image=image)}"
    return f"AWS error: {error}"


def _explain_missing(image: ImageRef, missing: ImageMissing, cache_prefixes: Sequence[str]) -> str:
    if _cached(image, cache_prefixes):
        return f"precondition: {CACHED_PRECONDITION.format(image=image)} ({missing})"
    text = PRECONDITIONS["ImageNotFoundException"].format(repository=image.repository, image=image)
    return f"precondition: {text} ({missing})"


def run_gate(
    images: Sequence[ImageRef],
    client: Any,
    entries: Sequence[AllowEntry],
    fail_on: frozenset[str],
    today: date,
    max_wait: float,
    poll: float,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    platforms: Sequence[str] = (DEFAULT_PLATFORMS,),
    cache_prefixes: Sequence[str] = DEFAULT_CACHE_PREFIXES,
) -> list[ImageVerdict]:
    """One wait budget for the whole run: the prod deploy waits at most `max_wait`, however many images.
    An image index yields one verdict per platform image (its problems, e.g. a missing platform, one more)."""
    deadline = now() + max_wait
    verdicts = []
    for image in images:
        try:
            targets, problems = resolve(client, image, platforms)
        except ImageMissing as missing:
            verdicts.append(ImageVerdict(image, problems=[_explain_missing(image, missing, cache_prefixes)]))
            continue
        except ClientError as error:
            verdicts.append(ImageVerdict(image, problems=[_explain_client_error(image, error, cache_prefixes)]))
            continue
        except BotoCoreError as error:
            verdicts.append(ImageVerdict(image, problems=[f"AWS error: {error}"]))
            continue
        if problems:
            verdicts.append(ImageVerdict(image, problems=problems))
        for target in targets:
            try:
                scan = wait_for_scan(client, target, deadline, poll, now, sleep)
            except ClientError as error:
                verdicts.append(ImageVerdict(target, problems=[_explain_client_error(target, error, cache_prefixes)]))
                continue
            except BotoCoreError as error:
                verdicts.append(ImageVerdict(target, problems=[f"AWS error: {error}"]))
                continue
            verdicts.append(judge(target, scan, entries, fail_on, today, max_wait))
    return verdicts


# --- report -------------------------------------------------------------------------------------


def _table(rows: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    lines = [(key if index == 0 else "", text) for key, texts in rows for index, text in enumerate(texts or ["-"])]
    key_width = max(len(key) for key, _ in lines)
    value_width = max(len(text) for _, text in lines)
    rule = f"+-{'-' * key_width}-+-{'-' * value_width}-+"
    body = [f"| {key.ljust(key_width)} | {text.ljust(value_width)} |" for key, text in lines]
    return [rule, body[0], rule, *body[1:], rule]


def render(verdicts: Sequence[ImageVerdict], fail_on: frozenset[str]) -> list[str]:
    out = []
    for verdict in verdicts:
        image, scan = verdict.image, verdict.scan
        counts = Counter(finding.severity for finding in scan.findings) if scan else Counter()
        shown = [*SEVERITIES[:5], *(severity for severity in SEVERITIES[5:] if counts[severity])]
        rows: list[tuple[str, Sequence[str]]] = [
            ("image", [str(image)]),
            ("repository", [image.repository]),
            *([("platform", [image.platform])] if image.platform else []),
            ("digest" if image.digest else "tag", [image.digest or image.tag or ""]),
            ("scan status", [scan.status if scan else "not read"]),
            (
                "findings",
                [", ".join(f"{sev} {counts[sev]}" for sev in shown)] if scan and scan.status in FINISHED else [],
            ),
            (
                f"blocking ({_ordered(fail_on)})",
                [f"{finding}" + (f" - {note}" if note else "") for finding, note in verdict.blocking],
            ),
            (
                "allow-listed",
                [f"{finding}: {entry.reason} [expires {entry.expires}]" for finding, entry in verdict.allowed],
            ),
        ]
        if verdict.problems:
            rows.append(("problems", verdict.problems))
        rows.append(("result", ["PASS" if verdict.passed else "FAIL"]))
        out += _table(rows) + [""]
    return out


# --- CLI ----------------------------------------------------------------------------------------


def _ordered(severities: frozenset[str]) -> str:
    return ",".join(sorted(severities, key=SEVERITIES.index))


def parse_fail_on(text: str) -> frozenset[str]:
    severities = {part.strip().upper() for part in text.split(",") if part.strip()}
    unknown = severities - set(SEVERITIES)
    if unknown:
        raise GateError(f"--fail-on: unknown severity {', '.join(sorted(unknown))} (known: {', '.join(SEVERITIES)})")
    return frozenset(severities | ALWAYS_BLOCKING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="repository:tag, repository@sha256:… or a full ECR image URI")
    parser.add_argument("--images-file", type=Path, help="JSON or YAML list of image references")
    parser.add_argument("--region", help="ECR region (default: the AWS SDK's)")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=600,
        metavar="SECONDS",
        help="total time to wait for unfinished scans (default 600)",
    )
    parser.add_argument("--poll", type=float, default=15, metavar="SECONDS", help="poll interval (default 15)")
    parser.add_argument(
        "--fail-on",
        default="CRITICAL,HIGH",
        metavar="SEVERITIES",
        help="comma-separated blocking severities, e.g. CRITICAL,HIGH,MEDIUM (CRITICAL and HIGH always block)",
    )
    parser.add_argument(
        "--platforms",
        default=DEFAULT_PLATFORMS,
        metavar="PLATFORMS",
        help="comma-separated os/arch the node groups run, e.g. linux/amd64,linux/arm64: an image index is "
        f"judged by these platforms' images (default {DEFAULT_PLATFORMS})",
    )
    parser.add_argument(
        "--pull-through-prefixes",
        default=",".join(DEFAULT_CACHE_PREFIXES),
        metavar="PREFIXES",
        help="repository prefixes of the pull-through cache (their images are pulled in, not pushed)",
    )
    parser.add_argument(
        "--allow-list",
        type=Path,
        default=DEFAULT_ALLOW_LIST,
        metavar="PATH",
        help=f"accepted findings (default {DEFAULT_ALLOW_LIST})",
    )
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="date that allow-list expiries are checked against (default: today, UTC)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    client: Any = None,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    args = _parser().parse_args(argv)
    today = args.today or datetime.now(UTC).date()
    try:
        if args.max_wait < 0 or args.poll <= 0:
            raise GateError("--max-wait must be >= 0 and --poll > 0")
        fail_on = parse_fail_on(args.fail_on)
        entries = load_allow_list(args.allow_list)
        images = collect_images(args.images, args.images_file)
        if not images:
            raise GateError("no images given")
        platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
        if not platforms or not all(re.fullmatch(r"[a-z0-9]+/[a-z0-9]+", p) for p in platforms):
            raise GateError(f"--platforms: expected os/arch[,os/arch...], got {args.platforms!r}")
        client = client or boto3.client("ecr", region_name=args.region)
    except (GateError, BotoCoreError) as error:
        print(error)
        print(f"scan gate: FAIL ({str(error).splitlines()[0]})")
        return 1

    print(
        f"scan gate: {len(images)} image(s), blocking severities {_ordered(fail_on)}, platforms {args.platforms}, "
        f"allow-list {args.allow_list} ({len(entries)} entries), today {today}"
    )
    for entry in entries:
        if entry.expired(today):
            print(f"allow-list entry {entry.id} expired on {entry.expires} and no longer counts ({entry.reason})")
    print()
    prefixes = [p.strip() for p in args.pull_through_prefixes.split(",") if p.strip()]
    verdicts = run_gate(
        images, client, entries, fail_on, today, args.max_wait, args.poll, now, sleep, platforms, prefixes
    )
    print("\n".join(render(verdicts, fail_on)))
    failed = [f"{verdict.image}: {'; '.join(verdict.reasons)}" for verdict in verdicts if not verdict.passed]
    print(f"scan gate: FAIL ({' | '.join(failed)})" if failed else "scan gate: PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

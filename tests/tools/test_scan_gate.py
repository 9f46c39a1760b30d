"""The prod image scan gate must pass only proven-clean images, against moto's ECR where it can stand in.

moto 5.2.5 (moto/ecr/models.py): describe_image_scan_findings raises ScanNotFoundException until
start_image_scan ran; after that it returns one HIGH finding (CVE-9999-9999) unless a result was queued
through the moto API (`/moto-api/static/ecr/scan-finding-results`), which it then returns verbatim -
and keeps returning for that image, so a result queued as IN_PROGRESS never completes. moto ignores
nextToken, cannot change a scan's status over time and cannot deny access: those cases use botocore's
Stubber on a real client.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws

from tools import scan_gate

REPO = Path(__file__).resolve().parents[2]
REGION = "ap-northeast-2"
TODAY = "2026-06-01"
MOTO_SCAN_RESULTS = "http://motoapi.amazonaws.com/moto-api/static/ecr/scan-finding-results"


class FakeClock:
    """Sleeping advances time instantly, so the wait budget is exercised in microseconds."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ecr():
    with mock_aws():
        yield boto3.client("ecr", region_name=REGION)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def allow_list(tmp_path):
    """allow_list(yaml_text) -> path of an allow-list file holding it; empty by default."""

    def write(text: str = "[]\n") -> Path:
        path = tmp_path / "scan-allowlist.yaml"
        path.write_text(text)
        return path

    return write


def push(ecr, repository: str, tag: str = "1.0") -> str:
    """Push an image (a distinct manifest per tag) and return its digest."""
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + "1" * 64,
        },
        "layers": [],
        "annotations": {"tag": f"{repository}:{tag}"},
    }
    image = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    return image["image"]["imageId"]["imageDigest"]


def scanned(
    ecr,
    repository: str,
    tag: str = "1.0",
    status: str = "COMPLETE",
    findings=(),
    enhanced=(),
    counts: dict | None = None,
    description: str = "",
) -> None:
    """Push, start the scan, and queue the result moto returns for it (moto's default HIGH when nothing is given)."""
    push(ecr, repository, tag)
    ecr.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})
    if status == "COMPLETE" and not findings and not enhanced and counts is None:
        return
    everything = [*findings, *enhanced]
    result = {
        "registryId": "123456789012",
        "repositoryName": repository,
        "imageId": {"imageTag": tag},
        "imageScanStatus": {"status": status, "description": description or f"scan {status.lower()}"},
        "imageScanFindings": {
            "findings": list(findings),
            "enhancedFindings": list(enhanced),
            "findingSeverityCounts": counts
            if counts is not None
            else {sev: sum(f["severity"] == sev for f in everything) for sev in {f["severity"] for f in everything}},
        },
    }
    assert requests.post(MOTO_SCAN_RESULTS, json={"region": REGION, "results": [result]}).status_code == 201


def basic(cve: str, severity: str) -> dict:
    return {
        "name": cve,
        "severity": severity,
        "uri": f"https://nvd.nist.gov/vuln/detail/{cve}",
        "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.1"}],
    }


def enhanced(cve: str, severity: str) -> dict:
    return {
        "awsAccountId": "123456789012",
        "severity": severity,
        "status": "ACTIVE",
        "type": "PACKAGE_VULNERABILITY",
        "findingArn": f"arn:aws:inspector2:{REGION}:123456789012:finding/{cve.lower()}",
        "title": f"{cve} - glibc",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": cve,
            "source": "NVD",
            "vulnerablePackages": [{"name": "glibc", "version": "2.36"}],
        },
    }


def gate(capsys, *argv: str, allow: Path, clock: FakeClock | None = None, client=None) -> tuple[int, list[str]]:
    clock = clock or FakeClock()
    code = scan_gate.main(
        [*argv, "--region", REGION, "--today", TODAY, "--allow-list", str(allow)],
        client=client,
        now=clock.now,
        sleep=clock.sleep,
    )
    return code, capsys.readouterr().out.rstrip("\n").splitlines()


# --- verdicts on moto's ECR ---------------------------------------------------------------------


def test_clean_image_passes(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-0001", "LOW")])
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list())
    assert code == 0
    assert out[-1] == "scan gate: PASS"


def test_critical_finding_fails(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-6387", "CRITICAL"), basic("CVE-2024-0002", "LOW")])
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list())
    assert code == 1
    assert out[-1] == "scan gate: FAIL (erp/approval-api:1.0: 1 blocking finding(s))"
    assert any("CVE-2024-6387 (CRITICAL, openssl 3.0.1)" in line for line in out)


@pytest.mark.parametrize("fail_on", [(), ("--fail-on", "CRITICAL"), ("--fail-on", "CRITICAL,HIGH")])
def test_high_always_blocks(ecr, capsys, allow_list, fail_on):
    """Issue 18 item 18: the gate blocked CRITICAL only; HIGH blocks whatever --fail-on (or config) says."""
    scanned(ecr, "erp/approval-api")  # moto's own default result: CVE-9999-9999, HIGH
    code, out = gate(capsys, "erp/approval-api:1.0", *fail_on, allow=allow_list())
    assert code == 1
    assert any("CVE-9999-9999 (HIGH, moto_fake 9.9.9)" in line for line in out)
    assert "blocking severities CRITICAL,HIGH" in out[0]


def test_medium_blocks_only_when_asked(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-0003", "MEDIUM")])
    assert gate(capsys, "erp/approval-api:1.0", allow=allow_list())[0] == 0
    assert gate(capsys, "erp/approval-api:1.0", "--fail-on", "MEDIUM", allow=allow_list())[0] == 1


def test_allow_listed_critical_passes_and_is_reported(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-6387", "CRITICAL")])
    allow = allow_list(
        "- id: CVE-2024-6387\n  reason: sshd is not in the runtime image path\n"
        "  expires: 2026-06-01\n  images: [erp/approval-api]\n"
    )  # expiry day itself still counts
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow)
    assert code == 0
    assert any(
        "CVE-2024-6387 (CRITICAL, openssl 3.0.1): sshd is not in the runtime image path [expires 2026-06-01]" in line
        for line in out
    )
    assert out[-1] == "scan gate: PASS"


def test_expired_allow_list_entry_no_longer_counts(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-6387", "CRITICAL")])
    allow = allow_list("- id: CVE-2024-6387\n  reason: waiting for the base image\n  expires: 2026-05-31\n")
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow)
    assert code == 1
    assert (
        "allow-list entry CVE-2024-6387 expired on 2026-05-31 and no longer counts (waiting for the base image)" in out
    )
    assert any("CVE-2024-6387 (CRITICAL, openssl 3.0.1) - allow-list entry expired 2026-05-31" in line for line in out)
    assert out[-1].startswith("scan gate: FAIL (")


def test_allow_list_entry_scoped_to_other_images_does_not_apply(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-6387", "CRITICAL")])
    allow = allow_list("- {id: CVE-2024-6387, reason: only the worker, expires: 2026-12-31, images: [erp/worker]}\n")
    assert gate(capsys, "erp/approval-api:1.0", allow=allow)[0] == 1


def test_enhanced_scanning_findings_are_understood(ecr, capsys, allow_list):
    scanned(
        ecr,
        "erp/approval-api",
        status="ACTIVE",
        enhanced=[enhanced("CVE-2023-4911", "CRITICAL"), enhanced("CVE-2023-0001", "UNTRIAGED")],
    )
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list())
    assert code == 1
    assert any("CVE-2023-4911 (CRITICAL, glibc 2.36)" in line for line in out)
    assert any("CRITICAL 1, HIGH 0, MEDIUM 0, LOW 0, INFORMATIONAL 0, UNTRIAGED 1" in line for line in out)

    allow = allow_list("- {id: CVE-2023-4911, reason: no setuid binaries in the image, expires: 2026-07-01}\n")
    assert gate(capsys, "erp/approval-api:1.0", allow=allow)[0] == 0


def test_scan_that_never_completes_times_out(ecr, capsys, allow_list, clock):
    scanned(ecr, "erp/approval-api", status="IN_PROGRESS")
    code, out = gate(
        capsys, "erp/approval-api:1.0", "--max-wait", "30", "--poll", "10", allow=allow_list(), clock=clock
    )
    assert code == 1
    assert clock.sleeps == [10, 10, 10]
    assert out[-1] == "scan gate: FAIL (erp/approval-api:1.0: scan still IN_PROGRESS after waiting 30s)"


def test_wait_budget_is_shared_by_all_images(ecr, capsys, allow_list, clock):
    scanned(ecr, "erp/approval-api", status="IN_PROGRESS")
    scanned(ecr, "erp/worker", status="PENDING")
    code, _ = gate(
        capsys,
        "erp/approval-api:1.0",
        "erp/worker:1.0",
        "--max-wait",
        "25",
        "--poll",
        "10",
        allow=allow_list(),
        clock=clock,
    )
    assert code == 1
    assert sum(clock.sleeps) == 25


def test_missing_scan_fails(ecr, capsys, allow_list):
    push(ecr, "erp/approval-api")
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list())
    assert code == 1
    assert "no scan found" in out[-1]


@pytest.mark.parametrize("status", ["FAILED", "UNSUPPORTED_IMAGE", "SCAN_ELIGIBILITY_EXPIRED", "SOMETHING_NEW"])
def test_unfinished_or_unknown_scan_status_fails(ecr, capsys, allow_list, status):
    scanned(ecr, "erp/approval-api", status=status, description="the scanner gave up")
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list())
    assert code == 1
    assert out[-1] == f"scan gate: FAIL (erp/approval-api:1.0: scan status {status}: the scanner gave up)"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        # A first deploy: the repository is created by the stage's registry stack, never by hand.
        ("erp/nope:1.0", "precondition: repository erp/nope does not exist: the stage's registry stack"),
        ("erp/approval-api:2.0", "precondition: image erp/approval-api:2.0 is not in erp/approval-api: push it"),
    ],
)
def test_missing_repository_or_image_fails_with_the_precondition(ecr, capsys, allow_list, image, message):
    scanned(ecr, "erp/approval-api")
    code, out = gate(capsys, image, allow=allow_list())
    assert code == 1
    assert message in out[-1]


def test_findings_counted_but_not_listed_fail(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-6387", "CRITICAL")], counts={"CRITICAL": 2})
    allow = allow_list("- {id: CVE-2024-6387, reason: not reachable, expires: 2026-12-31}\n")
    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow)
    assert code == 1
    assert "ECR counts 2 CRITICAL finding(s) but lists only 1" in out[-1]


def test_digest_reference(ecr, capsys, allow_list):
    digest = push(ecr, "erp/approval-api")
    ecr.start_image_scan(repositoryName="erp/approval-api", imageId={"imageDigest": digest})
    code, out = gate(capsys, f"erp/approval-api@{digest}", "--fail-on", "CRITICAL,HIGH", allow=allow_list())
    assert code == 1
    assert any(digest in line and "digest" in line for line in out)


def test_summary_table_and_mixed_verdicts(ecr, capsys, allow_list):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-6387", "CRITICAL"), basic("CVE-2024-0002", "HIGH")])
    scanned(ecr, "erp/worker", findings=[basic("CVE-2024-0003", "MEDIUM")])
    allow = allow_list("- {id: CVE-2024-0002, reason: test-only dependency, expires: 2026-09-30}\n")
    code, out = gate(capsys, "erp/approval-api:1.0", "erp/worker:1.0", "--fail-on", "CRITICAL,HIGH", allow=allow)
    text = "\n".join(out)
    assert code == 1
    for expected in (
        "| repository",
        "erp/approval-api",
        "| tag ",
        "| scan status ",
        "COMPLETE",
        "CRITICAL 1, HIGH 1, MEDIUM 0, LOW 0, INFORMATIONAL 0",
        "| blocking (CRITICAL,HIGH) | CVE-2024-6387 (CRITICAL, openssl 3.0.1)",
        "CVE-2024-0002 (HIGH, openssl 3.0.1): test-only dependency [expires 2026-09-30]",
    ):
        assert expected in text
    assert text.count("| result ") == 2
    assert out[-1] == "scan gate: FAIL (erp/approval-api:1.0: 1 blocking finding(s))"


def test_images_file_json_and_yaml(ecr, capsys, allow_list, tmp_path):
    scanned(ecr, "erp/approval-api", findings=[basic("CVE-2024-0001", "LOW")])
    scanned(ecr, "erp/worker", findings=[basic("CVE-2024-0001", "LOW")])
    (tmp_path / "images.json").write_text(json.dumps(["erp/approval-api:1.0", "erp/worker:1.0"]))
    (tmp_path / "images.yaml").write_text("- erp/approval-api:1.0\n- erp/worker:1.0\n")
    for name in ("images.json", "images.yaml"):
        code, out = gate(capsys, "erp/approval-api:1.0", "--images-file", str(tmp_path / name), allow=allow_list())
        assert code == 0
        assert out[0].startswith("scan gate: 2 image(s)")  # the repeated image is checked once


# --- what moto cannot do: pagination, a scan finishing, access denied, no connection ---------------


def stubbed_ecr():
    client = boto3.client("ecr", region_name=REGION)
    return client, Stubber(client)


def page(status: str = "COMPLETE", findings=(), counts=None, next_token: str | None = None) -> dict:
    body = {"imageScanStatus": {"status": status}, "imageScanFindings": {"findings": list(findings)}}
    if counts:
        body["imageScanFindings"]["findingSeverityCounts"] = counts
    if next_token:
        body["nextToken"] = next_token
    return body


REQUEST = {"repositoryName": "erp/approval-api", "imageId": {"imageTag": "1.0"}}
MEDIA_TYPES = [*scan_gate.INDEX_TYPES, *scan_gate.MANIFEST_TYPES]
SINGLE = "application/vnd.docker.distribution.manifest.v2+json"


def manifest_request(repository: str = "erp/approval-api", **image_id) -> dict:
    return {
        "repositoryName": repository,
        "imageIds": [image_id or {"imageTag": "1.0"}],
        "acceptedMediaTypes": MEDIA_TYPES,
    }


def manifest_response(repository: str, image_id: dict, manifest: dict, media_type: str) -> dict:
    return {
        "images": [
            {
                "registryId": "123456789012",
                "repositoryName": repository,
                "imageId": image_id,
                "imageManifest": json.dumps(manifest),
                "imageManifestMediaType": media_type,
            }
        ],
        "failures": [],
    }


def single_image(stub, repository: str = "erp/approval-api") -> None:
    """The reference is one platform's image (as the service images are): judged as it is."""
    manifest = {"schemaVersion": 2, "mediaType": SINGLE, "config": {}, "layers": []}
    stub.add_response(
        "batch_get_image",
        manifest_response(repository, {"imageTag": "1.0"}, manifest, SINGLE),
        manifest_request(repository),
    )


def test_findings_on_a_later_page_are_seen(capsys, allow_list):
    client, stub = stubbed_ecr()
    single_image(stub)
    counts = {"HIGH": 1, "CRITICAL": 1}
    stub.add_response(
        "describe_image_scan_findings",
        page(findings=[basic("CVE-1", "HIGH")], counts=counts, next_token="page-2"),
        REQUEST,
    )
    stub.add_response(
        "describe_image_scan_findings",
        page(findings=[basic("CVE-2", "CRITICAL")], counts=counts),
        {**REQUEST, "nextToken": "page-2"},
    )
    with stub:
        code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list(), client=client)
    stub.assert_no_pending_responses()
    assert code == 1
    assert any("CVE-2 (CRITICAL, openssl 3.0.1)" in line for line in out)


def test_scan_that_completes_while_waiting_passes(capsys, allow_list, clock):
    client, stub = stubbed_ecr()
    single_image(stub)
    stub.add_response("describe_image_scan_findings", page(status="IN_PROGRESS"), REQUEST)
    stub.add_response("describe_image_scan_findings", page(findings=[basic("CVE-1", "LOW")]), REQUEST)
    with stub:
        code, out = gate(capsys, "erp/approval-api:1.0", "--poll", "5", allow=allow_list(), clock=clock, client=client)
    assert (code, clock.sleeps, out[-1]) == (0, [5], "scan gate: PASS")


def test_access_denied_fails(capsys, allow_list):
    client, stub = stubbed_ecr()
    single_image(stub)
    stub.add_client_error(
        "describe_image_scan_findings",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: ecr:DescribeImageScanFindings",
        http_status_code=403,
    )
    with stub:
        code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list(), client=client)
    assert code == 1
    assert "AccessDeniedException" in out[-1] and "ecr:DescribeImageScanFindings" in out[-1]


def test_connection_error_fails(capsys, allow_list):
    class Unreachable:
        def batch_get_image(self, **_):
            raise EndpointConnectionError(endpoint_url=f"https://api.ecr.{REGION}.amazonaws.com/")

    code, out = gate(capsys, "erp/approval-api:1.0", allow=allow_list(), client=Unreachable())
    assert code == 1
    assert "AWS error: Could not connect to the endpoint URL" in out[-1]


# --- multi-arch images: ECR scans the per-platform images, never the index (issue 18 item 5) --------

INDEX = "application/vnd.oci.image.index.v1+json"
KAFKA_REPO = "docker-hub/apache/kafka"
INDEX_DIGEST = "sha256:" + "a" * 64
AMD64, ARM64, ATTESTATION = ("sha256:" + c * 64 for c in "bcd")


def index_manifest(*platforms: tuple[str, str, str]) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1, "platform": {"os": o, "architecture": a}}
            for d, o, a in platforms
        ],
    }  # fmt: skip


def stub_index(stub, *platforms) -> None:
    stub.add_response(
        "batch_get_image",
        manifest_response(KAFKA_REPO, {"imageDigest": INDEX_DIGEST}, index_manifest(*platforms), INDEX),
        manifest_request(KAFKA_REPO, imageDigest=INDEX_DIGEST),
    )


def stub_scan(stub, digest: str, findings=()) -> None:
    stub.add_response(
        "describe_image_scan_findings",
        page(findings=list(findings)),
        {"repositoryName": KAFKA_REPO, "imageId": {"imageDigest": digest}},
    )


BOTH = ("--platforms", "linux/amd64,linux/arm64")
NODE_PLATFORMS = ((AMD64, "linux", "amd64"), (ARM64, "linux", "arm64"), (ATTESTATION, "unknown", "unknown"))


def test_an_image_index_is_judged_by_the_images_of_the_node_platforms(capsys, allow_list):
    """Today's gate asked for findings of the index digest, which ECR never scans: every multi-arch image failed."""
    client, stub = stubbed_ecr()
    stub_index(stub, *NODE_PLATFORMS)
    stub_scan(stub, AMD64, [basic("CVE-2024-0001", "LOW")])
    stub_scan(stub, ARM64)
    with stub:
        code, out = gate(capsys, f"{KAFKA_REPO}@{INDEX_DIGEST}", *BOTH, allow=allow_list(), client=client)
    stub.assert_no_pending_responses()  # no findings asked of the index or the attestation manifest
    assert code == 0, out
    text = "\n".join(out)
    assert re.search(r"\| platform +\| linux/amd64", text) and re.search(r"\| platform +\| linux/arm64", text)
    assert text.count("| result ") == 2


def test_a_finding_in_one_platform_image_blocks_and_names_the_platform(capsys, allow_list):
    client, stub = stubbed_ecr()
    stub_index(stub, *NODE_PLATFORMS)
    stub_scan(stub, AMD64)
    stub_scan(stub, ARM64, [basic("CVE-2024-9999", "HIGH")])
    with stub:
        code, out = gate(capsys, f"{KAFKA_REPO}@{INDEX_DIGEST}", *BOTH, allow=allow_list(), client=client)
    assert code == 1
    assert out[-1] == f"scan gate: FAIL ({KAFKA_REPO}@{INDEX_DIGEST} [linux/arm64 {ARM64}]: 1 blocking finding(s))"


def test_only_the_node_platforms_are_scanned(capsys, allow_list):
    client, stub = stubbed_ecr()
    stub_index(stub, *NODE_PLATFORMS)
    stub_scan(stub, AMD64)
    with stub:
        code, _ = gate(
            capsys, f"{KAFKA_REPO}@{INDEX_DIGEST}", "--platforms", "linux/amd64", allow=allow_list(), client=client
        )
    stub.assert_no_pending_responses()
    assert code == 0


def test_an_index_without_a_node_platform_fails(capsys, allow_list):
    client, stub = stubbed_ecr()
    stub_index(stub, (AMD64, "linux", "amd64"))
    stub_scan(stub, AMD64)
    with stub:
        code, out = gate(capsys, f"{KAFKA_REPO}@{INDEX_DIGEST}", *BOTH, allow=allow_list(), client=client)
    assert code == 1
    assert "the image index has no linux/arm64 image, but the node groups run linux/arm64" in out[-1]


def test_a_third_party_image_missing_from_the_cache_names_the_cache_warmer(capsys, allow_list):
    client, stub = stubbed_ecr()
    stub.add_response(
        "batch_get_image",
        {"images": [], "failures": [{"imageId": {"imageDigest": INDEX_DIGEST}, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"}]},
        manifest_request(KAFKA_REPO, imageDigest=INDEX_DIGEST),
    )  # fmt: skip
    stub.add_client_error(
        "batch_get_image",
        service_error_code="RepositoryNotFoundException",
        expected_params=manifest_request("ghcr/external-secrets/external-secrets", imageTag="v2.9.0"),
    )
    with stub:
        code, out = gate(
            capsys,
            f"{KAFKA_REPO}@{INDEX_DIGEST}",
            "ghcr/external-secrets/external-secrets:v2.9.0",
            allow=allow_list(),
            client=client,
        )
    assert code == 1
    failures = out[-1].split(" | ")
    assert len(failures) == 2
    assert all("is not in the pull-through cache" in f and "CacheWarmer" in f for f in failures)


# --- inputs that stop the gate before any AWS call ----------------------------------------------


class NoCalls:
    def __getattr__(self, name):
        raise AssertionError(f"unexpected AWS call {name}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- {id: CVE-1, expires: 2026-12-31}\n", "entry 1 (CVE-1): missing required key 'reason'"),
        ("- {id: CVE-1, reason: later}\n", "entry 1 (CVE-1): missing required key 'expires'"),
        (
            "- {id: CVE-1, reason: ok, expires: 2026-12-31}\n- {id: CVE-2, reason: later, expires: 2026-13-01}\n",
            "entry 2 (CVE-2): expires: Value error, month must be in 1..12",
        ),
        (
            "- {id: CVE-1, reason: later, expires: 31/12/2026}\n",
            "expires: Value error, must be a date written YYYY-MM-DD",
        ),
        ("- {id: CVE-1, reason: later, expires: 2026-12-31, owner: kim}\n", "entry 1 (CVE-1): unknown key 'owner'"),
        (
            "- {id: CVE-1, reason: '  ', expires: 2026-12-31}\n",
            "entry 1 (CVE-1): reason: String should have at least 1",
        ),
        ("- {id: CVE-1, reason: ok, expires: 2026-12-31, images: []}\n", "images: List should have at least 1 item"),
        ("- {reason: ok, expires: 2026-12-31}\n", "entry 1: missing required key 'id'"),
        ("id: CVE-1\nreason: ok\n", "expected a list of entries, got a dict"),
        ("- id: [CVE-1\n", "not valid YAML"),
    ],
)
def test_malformed_allow_list_fails(capsys, allow_list, text, expected):
    path = allow_list(text)
    code, out = gate(capsys, "erp/approval-api:1.0", allow=path, client=NoCalls())
    assert code == 1
    assert any(expected in line and str(path) in line for line in out[:-1])
    assert out[-1] == f"scan gate: FAIL (malformed allow-list {path})"


def test_missing_allow_list_fails(capsys, tmp_path):
    code, out = gate(capsys, "erp/approval-api:1.0", allow=tmp_path / "absent.yaml", client=NoCalls())
    assert code == 1
    assert out[-1].startswith("scan gate: FAIL (cannot read allow-list")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        ((), "no images given"),
        (("erp/approval-api",), "bad image reference 'erp/approval-api'"),
        (("erp/approval-api@sha256:short",), "bad image reference"),
        (("erp/approval-api:1.0", "--fail-on", "CRITICAL,SEVERE"), "--fail-on: unknown severity SEVERE"),
        (("erp/approval-api:1.0", "--platforms", "amd64"), "--platforms: expected os/arch"),
    ],
)
def test_bad_input_fails(capsys, allow_list, argv, reason):
    code, out = gate(capsys, *argv, allow=allow_list(), client=NoCalls())
    assert code == 1
    assert out[-1].startswith(f"scan gate: FAIL ({reason}")


def test_image_references():
    digest = "sha256:" + "0123456789abcdef" * 4
    uri = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/erp/approval-api"
    assert scan_gate.parse_image(f"{uri}:1.4.2") == scan_gate.ImageRef(
        "erp/approval-api", tag="1.4.2", registry_id="123456789012"
    )
    assert scan_gate.parse_image(f"erp/approval-api:1.4.2@{digest}") == scan_gate.ImageRef(
        "erp/approval-api", digest=digest
    )


def test_fail_on_always_includes_critical_and_high():
    assert scan_gate.parse_fail_on("critical") == {"CRITICAL", "HIGH"}
    assert scan_gate.parse_fail_on("medium") == {"CRITICAL", "HIGH", "MEDIUM"}


def test_shipped_allow_list_is_valid():
    assert isinstance(scan_gate.load_allow_list(REPO / "config" / "scan-allowlist.yaml"), list)


def test_cli_exit_code_and_last_line():
    """The real entry point, as CodeBuild runs it (no image given, so no AWS call)."""
    run = subprocess.run(
        [sys.executable, "tools/scan_gate.py", "--allow-list", "config/scan-allowlist.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stdout.splitlines()[-1] == "scan gate: FAIL (no images given)"

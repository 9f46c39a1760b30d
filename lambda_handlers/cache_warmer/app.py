"""Fills the stage registry's pull-through cache BY TAG and proves each pinned digest (issue 18 item 5).

ECR's pull-through cache imports an image when it is pulled by tag; a first pull by digest finds nothing
(aws/containers-roadmap#2837), so a digest-pinned pod (Kafka, the X-Ray daemon) would sit in
ImagePullBackOff in a fresh account. The Registry stack runs this once whenever the image list changes
(a CDK Trigger, before the Cluster and Workloads stacks pull anything). For every third-party image it does
what a node's container runtime does for `repository:tag`, through the registry's HTTP API:

1. GET /v2/<repository>/manifests/<tag> (this creates the cached repository and imports the tag);
2. checks that the digest the tag resolved to is the pinned one: a pin that is not what the tag means
   (upstream re-pushed the tag, or the pin is a per-platform digest) fails the deploy here, not as an
   ImagePullBackOff later;
3. for an image index, GETs the manifest of every platform the node groups run and every blob of it, so
   each per-platform image is in the cache (and scanned on push: the prod scan gate reads those scans);
4. sets the cached repository's tags IMMUTABLE if it was created before the repository creation template.

Every image is tried; the invocation fails afterwards with one line per problem, which fails the deploy.

Environment:
    REGISTRY    <account>.dkr.ecr.<region>.amazonaws.com
    IMAGES      JSON [{"name": "kafka", "repository": "docker-hub/apache/kafka", "tag": "3.9.1",
                       "digest": "sha256:..." or null}]
    PLATFORMS   JSON ["linux/amd64", "linux/arm64"]: the node groups' platforms
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import boto3

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
CHUNK = 1 << 20
TIMEOUT_SECONDS = 60


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Iterable[bytes]

    def read(self) -> bytes:
        return b"".join(self.body)


# (url, headers) -> Response; redirects are returned, not followed (the handler follows them itself).
Fetch = Callable[[str, dict[str, str]], Response]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http_fetch(url: str, headers: dict[str, str]) -> Response:
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _OPENER.open(request, timeout=TIMEOUT_SECONDS)  # noqa: S310 (https URLs built here)
    except urllib.error.HTTPError as error:  # 3xx (not followed) and 4xx/5xx
        return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, [error.read()])
    headers_ = {k.lower(): v for k, v in response.headers.items()}
    return Response(response.status, headers_, iter(lambda: response.read(CHUNK), b""))


@dataclass
class Warmed:
    name: str
    reference: str
    resolved: str = ""
    platforms: dict[str, str] = field(default_factory=dict)  # platform -> manifest digest
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)


class Registry:
    """The stage registry's HTTP API (the Docker Registry v2 API), with an ECR authorization token."""

    def __init__(self, host: str, token: str, fetch: Fetch = http_fetch) -> None:
        self.host, self.fetch = host, fetch
        self.auth = {"Authorization": f"Basic {token}"}

    def manifest(self, repository: str, reference: str) -> tuple[str, str, dict]:
        """(digest, media type, manifest) of `reference` (a tag or a digest)."""
        url = f"https://{self.host}/v2/{repository}/manifests/{reference}"
        response = self.fetch(url, {**self.auth, "Accept": ACCEPT})
        body = response.read()
        if response.status != 200:
            raise RegistryError(f"GET {repository}:{reference} answered {response.status}: {_short(body)}")
        digest = response.headers.get("docker-content-digest", "")
        document = json.loads(body)
        media_type = response.headers.get("content-type", "").split(";")[0] or document.get("mediaType", "")
        return digest, media_type, document

    def blob(self, repository: str, digest: str) -> int:
        """Reads a blob to the end (as a pull does) and returns its size; follows ECR's redirect to S3."""
        response = self.fetch(f"https://{self.host}/v2/{repository}/blobs/{digest}", dict(self.auth))
        if response.status in (301, 302, 303, 307, 308):
            location = response.headers.get("location", "")
            response = self.fetch(location, {})  # a presigned URL: no registry credentials to another host
        if response.status != 200:
            raise RegistryError(f"GET blob {repository}@{digest} answered {response.status}")
        return sum(len(chunk) for chunk in response.body)


class RegistryError(Exception):
    pass


def _short(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace").strip()


def platform_of(entry: dict) -> str:
    platform = entry.get("platform", {})
    return f"{platform.get('os', '')}/{platform.get('architecture', '')}"


def warm(registry: Registry, image: dict, platforms: list[str]) -> Warmed:
    repository, tag, pinned = image["repository"], image["tag"], image.get("digest")
    result = Warmed(image["name"], f"{repository}:{tag}" + (f"@{pinned}" if pinned else ""))
    try:
        digest, media_type, document = registry.manifest(repository, tag)
        result.resolved = digest
        if pinned and digest != pinned:
            result.problems.append(
                f"{image['name']}: {repository}:{tag} resolves to {digest or 'no digest'}, but {pinned} is pinned "
                "(k8s_charts/images.py): the upstream tag moved or the pin is not this tag's index; pods pulling "
                "the pinned digest would not find it"
            )
            return result
        if media_type in INDEX_TYPES:
            children = {platform_of(m): m["digest"] for m in document.get("manifests", [])}
            missing = [p for p in platforms if p not in children]
            if missing:
                result.problems.append(
                    f"{image['name']}: {repository}:{tag} has no {', '.join(missing)} image, but node groups run it"
                )
            manifests = [(p, children[p]) for p in platforms if p in children]
        else:
            manifests = [("single-platform", digest)]
        for platform, child in manifests:
            result.platforms[platform] = child
            child_document = document if child == digest else registry.manifest(repository, child)[2]
            blobs = [child_document.get("config", {}), *child_document.get("layers", [])]
            for blob in blobs:
                if blob.get("digest"):
                    result.bytes_read += registry.blob(repository, blob["digest"])
    except (RegistryError, OSError, ValueError, KeyError) as error:
        result.problems.append(f"{image['name']}: {repository}:{tag}: {error}")
    return result


def make_immutable(ecr, repository: str) -> str | None:
    """Repositories cached before the creation template existed keep mutable tags: change them."""
    described = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
    if described.get("imageTagMutability") == "MUTABLE":
        ecr.put_image_tag_mutability(repositoryName=repository, imageTagMutability="IMMUTABLE")
        return f"{repository}: tags made immutable"
    return None


def authorization_token(ecr) -> str:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    base64.b64decode(token, validate=True)  # "AWS:<password>", sent as HTTP Basic credentials
    return token


def handler(event, context, *, ecr=None, fetch: Fetch = http_fetch) -> dict:  # noqa: ARG001
    images = json.loads(os.environ["IMAGES"])
    platforms = json.loads(os.environ["PLATFORMS"])
    ecr = ecr or boto3.client("ecr")
    registry = Registry(os.environ["REGISTRY"], authorization_token(ecr), fetch)
    results = [warm(registry, image, platforms) for image in images]
    notes = []
    for image, result in zip(images, results, strict=True):
        if not result.problems:
            try:
                if note := make_immutable(ecr, image["repository"]):
                    notes.append(note)
            except Exception as error:  # noqa: BLE001 - reported with the rest
                result.problems.append(f"{image['name']}: {image['repository']}: {error}")
    for result in results:
        listed = ", ".join(f"{p} {d}" for p, d in result.platforms.items())
        print(f"{result.reference} -> {result.resolved} [{listed}] {result.bytes_read} bytes")
    for note in notes:
        print(note)
    problems = [problem for result in results for problem in result.problems]
    if problems:
        raise RuntimeError("pull-through cache not warmed:\n" + "\n".join(problems))
    return {"warmed": {r.name: r.platforms for r in results}}

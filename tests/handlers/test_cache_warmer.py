"""The pull-through cache warmer (issue 18 item 5) against a fake registry HTTP layer and botocore's Stubber.

What it must do is what a node's runtime does for `repository:tag` - the only pull that fills ECR's cache -
and refuse a pin that is not what the tag resolves to.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tests.handlers.conftest import load_function

APP = Path(__file__).resolve().parents[2] / "lambda_handlers" / "cache_warmer" / "app.py"
HOST = "111111111111.dkr.ecr.ap-northeast-2.amazonaws.com"
TOKEN = base64.b64encode(b"AWS:secret-password").decode()
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX_DIGEST = "sha256:" + "a" * 64
AMD64, ARM64 = "sha256:" + "b" * 64, "sha256:" + "c" * 64
REPO = "docker-hub/apache/kafka"


app = load_function(APP.parent).app  # imported as Lambda would (tests/handlers/conftest.py)


class FakeRegistry:
    """Registry v2 API of the stage registry: manifests by tag or digest, blobs redirected to 'S3'."""

    def __init__(self, manifests: dict[str, tuple[str, str, dict]], blobs: dict[str, bytes]) -> None:
        self.manifests = manifests  # "<repo>:<reference>" -> (digest, media type, document)
        self.blobs = blobs
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, url: str, headers: dict[str, str]):
        self.calls.append((url, headers))
        if url.startswith("https://s3.example/"):
            assert "Authorization" not in headers, "registry credentials must not go to the redirect target"
            data = self.blobs.get(url.rsplit("/", 1)[1], b"cfg")  # image configs: 3 bytes
            return app.Response(200, {}, [data[:3], data[3:]])
        assert headers.get("Authorization") == f"Basic {TOKEN}"
        path = url.removeprefix(f"https://{HOST}/v2/")
        if "/manifests/" in path:
            repository, reference = path.split("/manifests/")
            assert "application/vnd.oci.image.index.v1+json" in headers["Accept"]
            if f"{repository}:{reference}" not in self.manifests:
                return app.Response(404, {}, [b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'])
            digest, media_type, document = self.manifests[f"{repository}:{reference}"]
            return app.Response(
                200, {"docker-content-digest": digest, "content-type": media_type}, [json.dumps(document).encode()]
            )
        repository, digest = path.split("/blobs/")
        return app.Response(307, {"location": f"https://s3.example/{digest}"}, [b""])

    def manifest_gets(self) -> list[str]:
        return [url.removeprefix(f"https://{HOST}/v2/") for url, _ in self.calls if "/manifests/" in url]


def image_manifest(*layers: str) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"digest": "sha256:config-of-" + layers[0].removeprefix("sha256:"), "size": 3},
        "layers": [{"digest": layer, "size": 5} for layer in layers],
    }


def kafka_registry(tag_digest: str = INDEX_DIGEST, platforms=("amd64", "arm64")) -> FakeRegistry:
    entries = [
        {"mediaType": MANIFEST, "digest": {"amd64": AMD64, "arm64": ARM64}[arch], "platform": {"os": "linux", "architecture": arch}}
        for arch in platforms
    ] + [{"mediaType": MANIFEST, "digest": "sha256:" + "e" * 64, "platform": {"os": "unknown", "architecture": "unknown"}}]  # fmt: skip
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
    manifests = {
        f"{REPO}:3.9.1": (tag_digest, INDEX, index),
        f"{REPO}:{AMD64}": (AMD64, MANIFEST, image_manifest("sha256:layer-amd-1", "sha256:layer-amd-2")),
        f"{REPO}:{ARM64}": (ARM64, MANIFEST, image_manifest("sha256:layer-arm-1")),
    }
    blobs = {
        "sha256:layer-amd-1": b"aaaaaaa",
        "sha256:layer-amd-2": b"bbbbb",
        "sha256:layer-arm-1": b"ccccccccc",
    }
    return FakeRegistry(manifests, blobs)


KAFKA = {"name": "kafka", "repository": REPO, "tag": "3.9.1", "digest": INDEX_DIGEST}


@pytest.fixture
def env(monkeypatch):
    def set_env(images=(KAFKA,), platforms=("linux/amd64", "linux/arm64")):
        monkeypatch.setenv("REGISTRY", HOST)
        monkeypatch.setenv("IMAGES", json.dumps(list(images)))
        monkeypatch.setenv("PLATFORMS", json.dumps(list(platforms)))

    return set_env


def stubbed_ecr(repositories: dict[str, str]):
    """repositories: name -> its current imageTagMutability (each is described after a good warm)."""
    ecr = boto3.client("ecr", region_name="ap-northeast-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(ecr)
    stub.add_response("get_authorization_token", {"authorizationData": [{"authorizationToken": TOKEN}]}, {})
    for name, mutability in repositories.items():
        stub.add_response(
            "describe_repositories",
            {"repositories": [{"repositoryName": name, "imageTagMutability": mutability}]},
            {"repositoryNames": [name]},
        )
        if mutability == "MUTABLE":
            stub.add_response(
                "put_image_tag_mutability",
                {"repositoryName": name, "imageTagMutability": "IMMUTABLE"},
                {"repositoryName": name, "imageTagMutability": "IMMUTABLE"},
            )
    return ecr, stub


def test_pulls_by_tag_first_then_every_node_platform_image_and_its_blobs(env, capsys):
    env()
    registry = kafka_registry()
    ecr, stub = stubbed_ecr({REPO: "MUTABLE"})
    with stub:
        result = app.handler({}, None, ecr=ecr, fetch=registry)
    stub.assert_no_pending_responses()
    # The first request names the tag: only a pull by tag fills ECR's cache (aws/containers-roadmap#2837).
    assert registry.manifest_gets() == [
        f"{REPO}/manifests/3.9.1",
        f"{REPO}/manifests/{AMD64}",
        f"{REPO}/manifests/{ARM64}",
    ]
    blobs = [url for url, _ in registry.calls if url.startswith("https://s3.example/")]
    assert len(blobs) == 5  # two configs, three layers; the attestation manifest is not pulled
    assert result == {"warmed": {"kafka": {"linux/amd64": AMD64, "linux/arm64": ARM64}}}
    out = capsys.readouterr().out
    assert f"{REPO}: tags made immutable" in out and "27 bytes" in out  # 7 + 5 + 9 layer bytes, two 3-byte configs


def test_a_pin_that_is_not_what_the_tag_resolves_to_fails_the_deploy(env):
    env()
    moved = "sha256:" + "f" * 64
    ecr, stub = stubbed_ecr({})
    with stub, pytest.raises(RuntimeError) as error:
        app.handler({}, None, ecr=ecr, fetch=kafka_registry(tag_digest=moved))
    message = str(error.value)
    assert f"kafka: {REPO}:3.9.1 resolves to {moved}, but {INDEX_DIGEST} is pinned" in message
    assert "k8s_charts/images.py" in message


def test_an_index_without_a_node_platform_fails(env):
    env()
    ecr, stub = stubbed_ecr({})
    with stub, pytest.raises(RuntimeError, match="has no linux/arm64 image, but node groups run it"):
        app.handler({}, None, ecr=ecr, fetch=kafka_registry(platforms=("amd64",)))


def test_every_image_is_tried_and_every_problem_reported(env):
    """An upstream that refuses (e.g. no ecr-pullthroughcache/ secret) is one line; the other images still warm."""
    reloader = {"name": "reloader", "repository": "docker-hub/stakater/reloader", "tag": "v1.4.21", "digest": None}
    env(images=(reloader, KAFKA))
    ecr, stub = stubbed_ecr({REPO: "IMMUTABLE"})
    registry = kafka_registry()
    with stub, pytest.raises(RuntimeError) as error:
        app.handler({}, None, ecr=ecr, fetch=registry)
    lines = str(error.value).splitlines()
    assert lines[0] == "pull-through cache not warmed:"
    assert lines[1].startswith("reloader: docker-hub/stakater/reloader:v1.4.21: GET")
    assert "answered 404" in lines[1] and len(lines) == 2
    assert f"{REPO}/manifests/{ARM64}" in registry.manifest_gets()


def test_a_single_platform_image_is_pulled_as_it_is(env):
    env(images=({"name": "proxy", "repository": "ecr-public/x/proxy", "tag": "1.0", "digest": None},))
    single = image_manifest("sha256:layer-one")
    registry = FakeRegistry(
        {"ecr-public/x/proxy:1.0": ("sha256:" + "9" * 64, MANIFEST, single)},
        {"sha256:layer-one": b"x"},
    )
    ecr, stub = stubbed_ecr({"ecr-public/x/proxy": "IMMUTABLE"})
    with stub:
        result = app.handler({}, None, ecr=ecr, fetch=registry)
    assert registry.manifest_gets() == ["ecr-public/x/proxy/manifests/1.0"]
    assert result["warmed"]["proxy"] == {"single-platform": "sha256:" + "9" * 64}

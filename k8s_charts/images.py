"""Every third-party image the cluster runs, in ONE place, pulled from the stage account's own ECR.

Nothing is pulled from Docker Hub or ECR Public directly: ECR pull-through cache rules
(constructs_lib/delivery/pull_through_cache.py) mirror them under a prefix of the stage registry, where
scan-on-push scans them and the prod scan gate checks them like the service images
(constructs_lib/delivery/registry.deployed_images). Docker Hub's anonymous pull rate limit no longer applies.

A digest is used only where a public source gives it for that exact tag AND it is the multi-arch index
(the nodes are arm64 Graviton; a per-architecture manifest digest would not run there). The source is
recorded beside it. Where no such digest was found the image stays pinned to a release tag (still through
the cache, still scanned) and `digest_candidate` notes what was found, to verify with
`docker buildx imagetools inspect <image>:<tag>` before switching.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.models import EnvironmentConfig

# Pull-through cache prefixes in the stage registry (constructs_lib/delivery/pull_through_cache.py creates the rules).
ECR_PUBLIC_PREFIX = "ecr-public"
DOCKER_HUB_PREFIX = "docker-hub"
UPSTREAMS = {ECR_PUBLIC_PREFIX: "public.ecr.aws", DOCKER_HUB_PREFIX: "registry-1.docker.io"}


@dataclass(frozen=True)
class ThirdPartyImage:
    cache_prefix: str  # which pull-through cache rule serves it
    path: str  # repository path upstream (Docker Hub official images need `library/`)
    tag: str
    digest: str | None  # sha256 of the multi-arch index for `tag`, or None (tag-pinned, see module doc)
    source: str  # where the digest (or the reason for none) comes from
    digest_candidate: str | None = None

    @property
    def upstream(self) -> str:
        return f"{UPSTREAMS[self.cache_prefix]}/{self.path}:{self.tag}"

    def repository(self) -> str:
        """The ECR repository the pull-through cache creates for it."""
        return f"{self.cache_prefix}/{self.path}"

    def reference(self) -> str:
        return f"@{self.digest}" if self.digest else f":{self.tag}"


def registry_host(env: EnvironmentConfig) -> str:
    return f"{env.account}.dkr.ecr.{env.region}.amazonaws.com"


def image_uri(image: ThirdPartyImage, env: EnvironmentConfig, host: str | None = None) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<path>@sha256:...` (or `:<tag>`).

    Charts pass `host` (PlatformValues.registry_host, CloudFormation pseudo-parameters), so no account id is
    typed into a manifest; the scan gate uses the literal host from config (the same registry)."""
    return f"{host or registry_host(env)}/{image.repository()}{image.reference()}"


KAFKA = ThirdPartyImage(
    cache_prefix=DOCKER_HUB_PREFIX,
    path="apache/kafka",
    tag="3.9.1",
    digest="sha256:4ceccc577f03f51f6af8dbfda55194d0d892f4fa7913ffbded567ce3895622ed",
    source="apache/kafka:3.9.1@sha256:4ceccc57... pinned in several public repositories' compose files and tests",
)
XRAY_DAEMON = ThirdPartyImage(
    cache_prefix=ECR_PUBLIC_PREFIX,
    path="xray/aws-xray-daemon",
    tag="3.7.0",
    digest="sha256:b67576293f4d3a0a155f807244957ed0aa4bc945df1573d62d81380a1d548071",
    source="docker-content-digest of public.ecr.aws/v2/xray/aws-xray-daemon/manifests/3.7.0 (the image index, "
    "amd64 + arm64), quoted in public repositories; 3.6.6 had no published digest",
)
FLUENT_BIT = ThirdPartyImage(
    cache_prefix=ECR_PUBLIC_PREFIX,
    path="aws-observability/aws-for-fluent-bit",
    tag="2.34.3.20260623",
    digest=None,
    source="no digest found for 2.34.3.20260623; tag-pinned (release tags of this repository are not re-pushed)",
    digest_candidate="2.34.3.20260901@sha256:e6b6b5c03c7912d10757e721641046db83c80ac05796dfbdb2c16cabf7b9a331 "
    "(one public test; not stated to be the multi-arch index)",
)
# Used by the in-cluster SigV4 proxy (hosting helper's chart); same rules.
SIGV4_PROXY = ThirdPartyImage(
    cache_prefix=ECR_PUBLIC_PREFIX,
    path="aws-observability/aws-sigv4-proxy",
    tag="1.11",
    digest=None,
    source="no digest found for 1.11; tag-pinned",
    digest_candidate="1.11.1@sha256:34bbec3cb98403d3e040ec1dadb53bb02285f70d2f0ead2d16435fd30980abaa "
    "(public ECS task definitions; not stated to be the multi-arch index)",
)

# Stakater Reloader (constructs_lib/cluster/reloader.py). Docker Hub and GHCR builds differ (separate pushes in
# its release workflow), so the GHCR digest found publicly does not apply to Docker Hub's image.
RELOADER = ThirdPartyImage(
    cache_prefix=DOCKER_HUB_PREFIX,
    path="stakater/reloader",
    tag="v1.4.21",
    digest=None,
    source="no digest found for docker.io stakater/reloader:v1.4.21 (appVersion of chart 2.2.16); tag-pinned",
    digest_candidate="ghcr.io/stakater/reloader:v1.4.21@sha256:b253579350a835082cdad8d8736671cedaa0f8309437c894bd1bf1c2f0e0d45e "
    "(GHCR, a separate build)",
)

THIRD_PARTY = {
    "kafka": KAFKA,
    "xray-daemon": XRAY_DAEMON,
    "fluent-bit": FLUENT_BIT,
    "sigv4-proxy": SIGV4_PROXY,
    "reloader": RELOADER,
}


def third_party_images(env: EnvironmentConfig) -> list[str]:
    """Every third-party image URI of a stage, for the scan gate (same strings the charts use)."""
    return [image_uri(image, env) for image in THIRD_PARTY.values()]

"""Every third-party image the cluster runs, in ONE place, pulled from the stage account's own ECR.

Nothing is pulled from Docker Hub, ECR Public, GHCR or registry.k8s.io directly: ECR pull-through cache rules
(constructs_lib/delivery/pull_through_cache.py) mirror them under a prefix of the stage registry, where
scan-on-push scans them and the prod scan gate checks them like the service images
(constructs_lib/delivery/registry.deployed_images). Docker Hub's anonymous pull rate limit no longer applies.
The controllers' images (Load Balancer Controller, External Secrets, Reloader, Cluster Autoscaler) are pinned
here too and passed to their Helm charts explicitly: a chart's default tag (its appVersion) would change with a
chart bump without passing the gate's list.

A digest is used only where a public source gives it for that exact tag AND it is the multi-arch index (the
node groups mix amd64 and arm64, config `cluster.node_groups`; a per-architecture manifest digest would not run
on the other). The source is recorded beside it. Where no such digest was found the image stays pinned to a
release tag (still through the cache, still scanned) and `digest_candidate` notes what was found, to verify
with `docker buildx imagetools inspect <image>:<tag>` before switching.

ECR's pull-through cache is filled by a pull BY TAG only (aws/containers-roadmap#2837): a pod asking for
`@sha256:...` of an image nobody pulled by tag yet sits in ImagePullBackOff. The stage's Registry stack
therefore pulls every image here by tag when the list changes and fails its deploy when a pinned digest is
not what the tag resolves to (constructs_lib/delivery/cache_warmer.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from config.models import EnvironmentConfig

# Pull-through cache prefixes in the stage registry (constructs_lib/delivery/pull_through_cache.py creates the rules).
ECR_PUBLIC_PREFIX = "ecr-public"
DOCKER_HUB_PREFIX = "docker-hub"
GHCR_PREFIX = "ghcr"
K8S_PREFIX = "k8s"  # registry.k8s.io (Kubernetes' own images: Cluster Autoscaler); anonymous, no credential
UPSTREAMS = {
    ECR_PUBLIC_PREFIX: "public.ecr.aws",
    DOCKER_HUB_PREFIX: "registry-1.docker.io",
    GHCR_PREFIX: "ghcr.io",
    K8S_PREFIX: "registry.k8s.io",
}
CACHE_PREFIXES = tuple(UPSTREAMS)


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

    def helm_values(self, env: EnvironmentConfig, host: str | None = None) -> dict[str, str]:
        """`{repository, tag}` for a chart whose template writes `repository:tag` (digest-pinned: `tag@digest`)."""
        tag = f"{self.tag}@{self.digest}" if self.digest else self.tag
        return {"repository": f"{host or registry_host(env)}/{self.repository()}", "tag": tag}


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
# AWS Distro for OpenTelemetry collector (k8s_charts/tracing.py, k8s_charts/kafka_metrics.py: one image, two configs;
# contract k8s_charts/contracts/aws-otel-collector.yaml, a section per config).
ADOT_COLLECTOR = ThirdPartyImage(
    cache_prefix=ECR_PUBLIC_PREFIX,
    path="aws-observability/aws-otel-collector",
    tag="v0.49.0",
    digest="sha256:d2bdfff2c377c3d71d78bd5d9ce9862fd535b12134a5739d87a07801297cf9fd",
    source="public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0@sha256:d2bdfff2... quoted in public "
    "repositories' Terraform modules as the OCI index digest (amd64 + arm64), and the same digest for "
    "amazon/aws-otel-collector:v0.49.0 (Docker Hub) in a third",
)
# Kafka's broker, partition and consumer-group metrics for the collector (k8s_charts/kafka_metrics.py; contract
# k8s_charts/contracts/kafka-exporter.yaml). `make push` of danielqsj/kafka_exporter v1.9.0 (8ec24078) pushes
# danielqsj/kafka-exporter:<tag> for linux/amd64, arm64, s390x and ppc64le (Makefile DOCKER_PLATFORMS).
KAFKA_EXPORTER = ThirdPartyImage(
    cache_prefix=DOCKER_HUB_PREFIX,
    path="danielqsj/kafka-exporter",
    tag="v1.9.0",
    digest=None,
    source="no digest found for danielqsj/kafka-exporter:v1.9.0; tag-pinned",
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

# AWS Load Balancer Controller (constructs_lib/cluster/load_balancer_controller.py), chart 3.5.0: its values.yaml
# sets image.repository public.ecr.aws/eks/aws-load-balancer-controller, image.tag v3.5.0 (= appVersion) and the
# template writes `repository:tag` (kubernetes-sigs/aws-load-balancer-controller v3.5.0, 11eb202c).
LOAD_BALANCER_CONTROLLER = ThirdPartyImage(
    cache_prefix=ECR_PUBLIC_PREFIX,
    path="eks/aws-load-balancer-controller",
    tag="v3.5.0",
    digest=None,
    source="no digest found for public.ecr.aws/eks/aws-load-balancer-controller:v3.5.0 (the tag of chart 3.5.0); "
    "tag-pinned",
)
# External Secrets Operator (constructs_lib/cluster/external_secrets.py), chart 2.9.0: controller, webhook and
# cert-controller all run ghcr.io/external-secrets/external-secrets:<appVersion v2.9.0>; published on GHCR only
# (its release workflow pushes nowhere else), so it comes through the `ghcr` cache rule
# (external-secrets/external-secrets helm-chart-2.9.0, cc5bfbc2).
EXTERNAL_SECRETS = ThirdPartyImage(
    cache_prefix=GHCR_PREFIX,
    path="external-secrets/external-secrets",
    tag="v2.9.0",
    digest=None,
    source="no digest found for ghcr.io/external-secrets/external-secrets:v2.9.0 (appVersion of chart 2.9.0); "
    "tag-pinned",
)
# Cluster Autoscaler (constructs_lib/cluster/cluster_autoscaler.py), chart 9.59.0: the newest chart (2026-07-21)
# still defaults to v1.35.0 (its appVersion); CA must match the control plane's minor (1.36), so the release
# runs the 1.36 patch release cluster-autoscaler-1.36.1 (kubernetes/autoscaler, 35e8a280). Published on
# registry.k8s.io only (amd64, arm64, s390x manifest list: its Makefile's ALL_ARCH), so it comes through the
# `k8s` cache rule. Bump it with the cluster's minor (README: Node autoscaling).
CLUSTER_AUTOSCALER = ThirdPartyImage(
    cache_prefix=K8S_PREFIX,
    path="autoscaling/cluster-autoscaler",
    tag="v1.36.1",
    digest=None,
    source="no digest found for registry.k8s.io/autoscaling/cluster-autoscaler:v1.36.1; tag-pinned",
)

# Every third-party image a pod of the platform runs: the prod scan gate checks each, the Registry stack warms
# each (cache_warmer.py). A new image in a chart or a Helm release must be added here.
THIRD_PARTY = {
    "kafka": KAFKA,
    "adot-collector": ADOT_COLLECTOR,
    "kafka-exporter": KAFKA_EXPORTER,
    "fluent-bit": FLUENT_BIT,
    "sigv4-proxy": SIGV4_PROXY,
    "reloader": RELOADER,
    "aws-load-balancer-controller": LOAD_BALANCER_CONTROLLER,
    "external-secrets": EXTERNAL_SECRETS,
    "cluster-autoscaler": CLUSTER_AUTOSCALER,
}


def third_party_images(env: EnvironmentConfig) -> list[str]:
    """Every third-party image URI of a stage, for the scan gate (same strings the charts use)."""
    return [image_uri(image, env) for image in THIRD_PARTY.values()]


def node_platforms(env: EnvironmentConfig) -> list[str]:
    """`linux/<arch>` of every node group: the per-platform images a multi-arch third-party image must have (and
    the ones the cache is warmed with and the scan gate checks)."""
    return sorted({f"linux/{'arm64' if group.arm64 else 'amd64'}" for group in env.cluster.node_groups})

"""Service image repositories, and the one place that turns a service's image config into an image URI."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Aws, DefaultStackSynthesizer, Duration, Stage
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from config.base import CI_TAG_PREFIX
from config.models import EnvironmentConfig
from config.sections import ServiceConfig
from constructs_lib.common.policies import retain_fixed_name
from k8s_charts.images import registry_host, third_party_images

REPO_ROOT = Path(__file__).resolve().parents[2]
# CI-only tags (prefix CI_TAG_PREFIX, which config refuses to pin): the newest this many are kept.
KEEP_IMAGES = 50
# Untagged images (layers of a pushed-over digest) go after this long. Release tags never expire:
# an environment may pin any of them, and an expired pinned tag breaks the next rollout.
UNTAGGED_DAYS = 14
# A built image runs where its service's pods are placed: `image.architectures` (amd64 by default: the apps
# node groups are x86 because the ERP's own images are amd64-only).
PLATFORMS = {"amd64": ecr_assets.Platform.LINUX_AMD64, "arm64": ecr_assets.Platform.LINUX_ARM64}


def repository_name(project: str, service: ServiceConfig) -> str:
    """The old system's `erp/<service>` unless config names another repository."""
    return service.image.repository or f"{project}/{service.name}"


class ServiceRepositories(Construct):
    """One immutable, scan-on-push ECR repository per service.

    ``repositories`` (what the stage's other stacks use) refers to each repository by name, with an ARN
    made of the consuming stack's own AWS::AccountId/Region: a manifest then holds
    `{AccountId}.dkr.ecr.{Region}.{URLSuffix}/erp/<service>:<tag>` - no typed account id, and no
    cross-stack reference (cfn-lint cannot follow Fn::GetStackOutput inside Fn::Join). The price:
    no implicit stack dependency, so the stage orders Workloads after Registry explicitly.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        services: list[ServiceConfig],
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        self.created: dict[str, ecr.Repository] = {}
        self.repositories: dict[str, ecr.IRepository] = {}
        for service in services:
            name = repository_name(project, service)
            repo = ecr.Repository(
                self,
                service.name,
                repository_name=name,
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                encryption=ecr.RepositoryEncryption.AES_256,
                # Images are rebuilt from source; prod still keeps what a rollback may need.
                removal_policy=retain_fixed_name(production),
                empty_on_delete=None if production else True,
            )
            repo.add_lifecycle_rule(
                description=f"expire untagged images after {UNTAGGED_DAYS} days",
                tag_status=ecr.TagStatus.UNTAGGED,
                max_image_age=Duration.days(UNTAGGED_DAYS),
            )
            repo.add_lifecycle_rule(
                description=f"keep the last {KEEP_IMAGES} CI-only ({CI_TAG_PREFIX}*) images",
                tag_status=ecr.TagStatus.TAGGED,
                tag_prefix_list=[CI_TAG_PREFIX],
                max_image_count=KEEP_IMAGES,
            )
            self.created[service.name] = repo
            self.repositories[service.name] = ecr.Repository.from_repository_attributes(
                self,
                f"{service.name}-by-name",
                repository_name=name,
                repository_arn=f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{Aws.ACCOUNT_ID}:repository/{name}",
            )


def lifecycle_may_expire(tag: str, rules: list[dict]) -> bool:
    """Whether any ECR lifecycle rule (as in LifecyclePolicyText) can select an image carrying `tag`.

    ECR semantics: `any` selects every image; `tagged` selects images with a tag starting with one of
    tagPrefixList or matching one of tagPatternList (`*` wildcards); `untagged` never selects a tagged image.
    """
    for rule in rules:
        selection = rule["selection"]
        status = selection["tagStatus"]
        if status == "any":
            return True
        if status != "tagged":
            continue
        if any(tag.startswith(prefix) for prefix in selection.get("tagPrefixList", [])):
            return True
        for pattern in selection.get("tagPatternList", []):
            if re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), tag):
                return True
    return False


def image_uri(
    scope: Construct,
    service: ServiceConfig,
    repositories: Mapping[str, ecr.IRepository],
    *,
    root: Path = REPO_ROOT,
) -> str:
    """Pinned tag/digest -> that image in the service's repository; build_dir -> a content-addressed asset.

    The asset's tag is the hash of its build context (honouring .dockerignore), so an image is rebuilt
    and redeployed exactly when its context changes, however many commits a push holds.
    """
    image = service.image
    if image.build_dir is not None:
        asset = ecr_assets.DockerImageAsset(
            scope,
            f"{service.name}-image",
            directory=str(root / image.build_dir),
            platform=PLATFORMS[image.architectures[0]],
        )
        return asset.image_uri
    repo = repositories[service.name]
    if image.digest is not None:
        return repo.repository_uri_for_digest(image.digest)
    return repo.repository_uri_for_tag(image.tag)


def deployed_images(stage: Stage, config: EnvironmentConfig) -> list[str]:
    """Every image a stage deploys, as plain ECR URIs the scan gate can read before the deploy.

    Pinned images come from config; built ones are the stage's DockerImageAssets, which CDK publishes
    to the stage account's bootstrap container-asset repository tagged with their content hash.
    """
    host = registry_host(config)
    images = []
    for service in config.services:
        image = service.image
        if image.build_dir is None:
            ref = f"@{image.digest}" if image.digest else f":{image.tag}"
            images.append(f"{host}/{repository_name(config.project, service)}{ref}")
    asset_repo = f"cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}-container-assets-{config.account}-{config.region}"
    for construct in stage.node.find_all():
        if isinstance(construct, ecr_assets.DockerImageAsset):
            images.append(f"{host}/{asset_repo}:{construct.asset_hash}")
    images += third_party_images(config)  # through the pull-through cache, scanned like the rest
    return list(dict.fromkeys(images))

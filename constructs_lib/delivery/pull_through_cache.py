"""ECR pull-through cache rules: every third-party image comes from the stage's own registry (issue 12 item 6).

`<account>.dkr.ecr.<region>.amazonaws.com/ecr-public/...` mirrors ECR Public, `.../docker-hub/...` mirrors
Docker Hub and `.../ghcr/...` GitHub's container registry (both authenticated with an operator-created secret
`ecr-pullthroughcache/...`, so Docker Hub's anonymous rate limit no longer applies); `.../k8s/...` mirrors
registry.k8s.io (anonymous; Cluster Autoscaler's image). The registry scans every
repository on push - the mirrored ones, the service repositories and CDK's asset repository - so the prod
scan gate finds a scan for each image it checks.

The repositories the cache creates on a first pull take their settings from a repository creation template
per prefix (issue 18 item 18): immutable tags (a tag, once cached, keeps meaning the digest that was scanned
and gated; ECR's daily re-sync cannot move it) and AES-256 encryption, like the service repositories.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.sections import RegistryConfig
from constructs_lib.common.nag import acknowledge
from k8s_charts.images import CACHE_PREFIXES, DOCKER_HUB_PREFIX, ECR_PUBLIC_PREFIX, GHCR_PREFIX, K8S_PREFIX, UPSTREAMS

# ECR's name of each upstream (PullThroughCacheRule.UpstreamRegistry).
UPSTREAM_REGISTRY = {
    ECR_PUBLIC_PREFIX: "ecr-public",
    DOCKER_HUB_PREFIX: "docker-hub",
    GHCR_PREFIX: "github-container-registry",
    K8S_PREFIX: "k8s",
}


class PullThroughCache(Construct):
    def __init__(self, scope: Construct, id: str, *, config: RegistryConfig) -> None:
        super().__init__(scope, id)
        credentials = {
            ECR_PUBLIC_PREFIX: None,
            DOCKER_HUB_PREFIX: config.docker_hub_credential_arn,
            GHCR_PREFIX: config.github_credential_arn,
            K8S_PREFIX: None,  # registry.k8s.io is anonymous (Cluster Autoscaler's image)
        }
        construct_ids = {
            ECR_PUBLIC_PREFIX: "EcrPublic",
            DOCKER_HUB_PREFIX: "DockerHub",
            GHCR_PREFIX: "Ghcr",
            K8S_PREFIX: "K8s",
        }
        self.rules: dict[str, ecr.CfnPullThroughCacheRule] = {}
        self.templates: dict[str, ecr.CfnRepositoryCreationTemplate] = {}
        for prefix in CACHE_PREFIXES:
            self.rules[prefix] = ecr.CfnPullThroughCacheRule(
                self,
                construct_ids[prefix],
                ecr_repository_prefix=prefix,
                upstream_registry=UPSTREAM_REGISTRY[prefix],
                upstream_registry_url=UPSTREAMS[prefix],
                credential_arn=credentials[prefix],
            )
            self.templates[prefix] = ecr.CfnRepositoryCreationTemplate(
                self,
                f"{construct_ids[prefix]}Repositories",
                prefix=prefix,
                applied_for=["PULL_THROUGH_CACHE"],
                description=f"Repositories the {UPSTREAMS[prefix]} pull-through cache creates: immutable tags",
                image_tag_mutability="IMMUTABLE",
                encryption_configuration=ecr.CfnRepositoryCreationTemplate.EncryptionConfigurationProperty(
                    encryption_type="AES256"
                ),
            )
            # The template must exist before the rule can create a repository.
            self.rules[prefix].node.add_dependency(self.templates[prefix])
        self.ecr_public, self.docker_hub, self.ghcr, self.k8s = (
            self.rules[p] for p in (ECR_PUBLIC_PREFIX, DOCKER_HUB_PREFIX, GHCR_PREFIX, K8S_PREFIX)
        )
        # Basic scanning is free; one registry-wide rule also covers repositories created on first pull.
        self.scanning = ecr.CfnRegistryScanningConfiguration(
            self,
            "ScanOnPush",
            scan_type="BASIC",
            rules=[
                ecr.CfnRegistryScanningConfiguration.ScanningRuleProperty(
                    scan_frequency="SCAN_ON_PUSH",
                    repository_filters=[
                        ecr.CfnRegistryScanningConfiguration.RepositoryFilterProperty(
                            filter="*", filter_type="WILDCARD"
                        )
                    ],
                )
            ],
        )


def cache_repository_arns(stack: Stack) -> list[str]:
    """Every repository the cache may create in `stack`'s account and region (one wildcard per prefix)."""
    return [
        stack.format_arn(service="ecr", resource="repository", resource_name=f"{prefix}/*") for prefix in CACHE_PREFIXES
    ]


def grant_pull_through(role: iam.IRole) -> None:
    """A node's first pull of a mirrored image creates the repository and imports the image."""
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="PullThroughCache",
            actions=["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
            resources=cache_repository_arns(stack),
        )
    )
    acknowledge_cache_repositories(role)


def acknowledge_cache_repositories(construct: Construct) -> None:
    stack = Stack.of(construct)
    for prefix in CACHE_PREFIXES:
        acknowledge(
            construct,
            f"AwsSolutions-IAM5[Resource::arn:aws:ecr:{stack.region}:{stack.account}:repository/{prefix}/*]",
            "The cache creates one repository per upstream image on first pull; names are known only then.",
        )

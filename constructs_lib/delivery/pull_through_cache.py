"""ECR pull-through cache rules: every third-party image comes from the stage's own registry (issue 12 item 6).

`<account>.dkr.ecr.<region>.amazonaws.com/ecr-public/...` mirrors ECR Public, `.../docker-hub/...` mirrors
Docker Hub (authenticated with the operator-created secret `ecr-pullthroughcache/...`, so Docker Hub's
anonymous rate limit no longer applies). The registry scans every repository on push - the mirrored
ones, the service repositories and CDK's asset repository - so the prod scan gate finds a scan for
each image it checks.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.sections import RegistryConfig
from constructs_lib.common.nag import acknowledge
from k8s_charts.images import DOCKER_HUB_PREFIX, ECR_PUBLIC_PREFIX, UPSTREAMS


class PullThroughCache(Construct):
    def __init__(self, scope: Construct, id: str, *, config: RegistryConfig) -> None:
        super().__init__(scope, id)
        # construct id, repository prefix, upstream registry, credentials (Docker Hub only)
        self.ecr_public, self.docker_hub = (
            ecr.CfnPullThroughCacheRule(
                self,
                rule_id,
                ecr_repository_prefix=prefix,
                upstream_registry=registry,
                upstream_registry_url=UPSTREAMS[prefix],
                credential_arn=credential_arn,
            )
            for rule_id, prefix, registry, credential_arn in (
                ("EcrPublic", ECR_PUBLIC_PREFIX, "ecr-public", None),
                ("DockerHub", DOCKER_HUB_PREFIX, "docker-hub", config.docker_hub_credential_arn),
            )
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


def grant_pull_through(role: iam.IRole) -> None:
    """A node's first pull of a mirrored image creates the repository and imports the image."""
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="PullThroughCache",
            actions=["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
            resources=[
                stack.format_arn(service="ecr", resource="repository", resource_name=f"{prefix}/*")
                for prefix in (ECR_PUBLIC_PREFIX, DOCKER_HUB_PREFIX)
            ],
        )
    )
    for prefix in (ECR_PUBLIC_PREFIX, DOCKER_HUB_PREFIX):
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:aws:ecr:{stack.region}:{stack.account}:repository/{prefix}/*]",
            "The cache creates one repository per upstream image on first pull; names are known only then.",
        )

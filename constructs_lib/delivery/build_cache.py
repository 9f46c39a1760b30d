"""The Build stage's dependency cache: an S3 bucket both of its CodeBuild projects (Synth and Test) share.

S3, not CodeBuild's local cache: a local cache lives on one build host and only helps when the next build lands on
that host soon after (CodeBuild docs, "Local caching"); a pipeline that runs a few times a day would almost always
start cold. The S3 cache is restored on any host (CodeBuild docs, "Amazon S3 caching").

Keyed on the dependency files (`codebuild-hash-files`), so a change of requirements or of package-lock.json writes a
new cache instead of reusing a stale venv; a keyed cache is saved once and not re-uploaded on every build. The key
also names the build image and Python and the month: an image update cannot pin a venv built for another
interpreter for good, and the Lambda bundles (.build, content-addressed) are refreshed at least monthly. On a miss,
`fallback-keys` restores the newest older cache, whose pip and npm downloads make the rebuild cheap
(constructs_lib/delivery/dependency_cache.py decides what of it to keep).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.common.nag import acknowledge
from constructs_lib.delivery.dependency_cache import DEPENDENCY_FILES, cache_paths

# Objects older than this are gone; the key rolls monthly, so the current key's cache is never older than a month.
CACHE_DAYS = 45
CACHE_PREFIX = "build-deps"
# One namespace: Synth and Test restore and save the same key (whichever finishes first on a new key saves it).
CACHE_NAMESPACE = "erp-build-deps"
RESTORE = "python3 -m constructs_lib.delivery.dependency_cache restore"
SAVE = "python3 -m constructs_lib.delivery.dependency_cache save"


def cache_key_prefix(build_image: codebuild.IBuildImage, python: str) -> str:
    image = build_image.image_id.removeprefix("aws/codebuild/").replace(":", "-").replace("/", "-")
    return f"deps-v1-{image}-py{python}-"


def cache_spec(build_image: codebuild.IBuildImage, python: str) -> dict:
    """The buildspec's `cache` section (key, fallback key, paths)."""
    prefix = cache_key_prefix(build_image, python)
    return {
        "key": f"{prefix}$(date +%Y-%m)-$(codebuild-hash-files {' '.join(DEPENDENCY_FILES)})",
        "fallback-keys": [prefix],
        "paths": cache_paths(),
    }


class BuildCache(Construct):
    def __init__(self, scope: Construct, id: str, *, access_logs: s3.IBucket) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # Public wheels, npm packages and our own Lambda bundles: nothing the artifact CMK must guard.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="build-cache/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(CACHE_DAYS), abort_incomplete_multipart_upload_after=Duration.days(1)
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.cache = codebuild.Cache.bucket(self.bucket, prefix=CACHE_PREFIX, cache_namespace=CACHE_NAMESPACE)

    def acknowledge_grants(self, role: iam.IRole) -> None:
        """Cache.bucket grants the project read and write on the cache bucket (CDK's grantReadWrite wildcards)."""
        stack = Stack.of(self)
        bucket = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/*]",
            "Objects of the build's own dependency-cache bucket; CodeBuild names them after the cache key.",
        )
        for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK's read/write grant on the dependency-cache bucket (and the artifact bucket), no other bucket.",
            )

"""Where the pipeline keeps its artifacts: one customer-managed key, an SSL-only bucket, and its access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.common.nag import acknowledge

ACCESS_LOG_DAYS = 365


class PipelineArtifactStore(Construct):
    """A CMK (not the AWS-managed key) so the dev/prod accounts' deploy roles can be granted decrypt on it."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            description="erp-platform pipeline artifacts",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(ACCESS_LOG_DAYS))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket is the access-log destination of the artifact bucket; logging it again would only recurse.",
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="artifacts/",
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(90), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def encrypt_build_projects(self) -> None:
        """CDK Pipelines exposes no key for its CodeBuild projects: point every one of them at the artifact CMK."""
        stack = Stack.of(self)
        for construct in stack.node.find_all():
            if isinstance(construct, codebuild.Project) and Stack.of(construct).node.path == stack.node.path:
                cfn = construct.node.default_child
                cfn.encryption_key = self.key.key_arn
                self.key.grant_encrypt_decrypt(construct)

"""Where the built frontend lives: a private bucket only the distribution can read, and the edge's log bucket."""

from __future__ import annotations

from aws_cdk import Duration, PhysicalName, RemovalPolicy, Tags
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.common.nag import acknowledge

# The cost estimate prices each bucket by this tag (tools/cost/pricers.py) from the usage assumptions.
USAGE_TAG = "erp:usage"


class SiteBuckets(Construct):
    """`site`: versioned, TLS only, no public access; `make frontend` publishes into it and the distribution reads
    it through Origin Access Control (the bucket policy names the distribution). `logs`: S3 server access logs of
    `site` and CloudFront's standard logs, expired after `log_days`."""

    def __init__(self, scope: Construct, id: str, *, log_days: int, noncurrent_version_days: int) -> None:
        super().__init__(scope, id)
        # Kept when the stack goes, in every environment: CloudFormation cannot delete a bucket that still holds
        # objects (versions included), and emptying one needs a Lambda that would run with delete rights on it.
        removal = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
        self.logs = s3.Bucket(
            self,
            "Logs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # CloudFront's standard logs are delivered with an ACL grant to the awslogsdelivery account.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(log_days))],
            removal_policy=removal,
        )
        Tags.of(self.logs).add(USAGE_TAG, "edge-logs")
        acknowledge(
            self.logs,
            "AwsSolutions-S1",
            "This is the access-log bucket of the edge; logging it into itself would loop.",
        )
        self.site = s3.Bucket(
            self,
            "Site",
            # Read from the environment's region (the Frontend stack's parameters): a name fixed at synth.
            bucket_name=PhysicalName.GENERATE_IF_NEEDED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="s3/site/",
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(noncurrent_version_days)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
            removal_policy=removal,
        )
        Tags.of(self.site).add(USAGE_TAG, "frontend")

"""The yardstick of `make bench`: a minimal three-stack CDK app, synthesized in the same run as ours.

What any small production app has, and nothing of ours: the same Python binding, aws-cdk-lib and jsii
runtime, the project's feature flags (read from its cdk.json, so a flag that changes synth work changes
both sides), and per stack a few resources that exercise what CDK does for every app - L2 defaults, IAM
grants, cross-stack references (exports), an alarm. The function's code is inline: asset bundling is a
cost of our own app, which the ratio is there to show. Synth time of this app is almost all fixed cost
(Python imports, the node kernel loading aws-cdk-lib, the built-in template validation), so the ratio
`our synth / this synth` measures what our app adds on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PROJECT_CDK_JSON = Path(__file__).resolve().parents[3] / "cdk.json"

HANDLER = """
import json, os

def handler(event, context):
    for record in event.get("Records", []):
        print(json.dumps({"bucket": os.environ["BUCKET"], "body": record["body"]}))
"""


class StorageStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.bucket = s3.Bucket(
            self,
            "Uploads",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
        )
        dead_letters = sqs.Queue(self, "DeadLetters", enforce_ssl=True, retention_period=cdk.Duration.days(14))
        self.queue = sqs.Queue(
            self,
            "Jobs",
            enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(60),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=3),
        )


class WorkerStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, storage: StorageStack, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.function = lambda_.Function(
            self,
            "Worker",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=lambda_.Code.from_inline(HANDLER),
            environment={"BUCKET": storage.bucket.bucket_name},
            timeout=cdk.Duration.seconds(30),
            tracing=lambda_.Tracing.ACTIVE,
        )
        self.function.add_event_source(sources.SqsEventSource(storage.queue, batch_size=10))
        storage.bucket.grant_read_write(self.function)


class MonitoringStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, storage: StorageStack, worker: WorkerStack, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        topic = sns.Topic(self, "Alarms", enforce_ssl=True)
        for name, metric in (
            ("QueueAge", storage.queue.metric_approximate_age_of_oldest_message()),
            ("WorkerErrors", worker.function.metric_errors()),
        ):
            alarm = cloudwatch.Alarm(
                self, name, metric=metric, threshold=300 if name == "QueueAge" else 1, evaluation_periods=1
            )
            alarm.add_alarm_action(actions.SnsAction(topic))


def main() -> None:
    flags = json.loads(PROJECT_CDK_JSON.read_text())["context"]
    app = cdk.App(context=flags)
    env = cdk.Environment(account="111111111111", region="us-east-1")
    storage = StorageStack(app, "RefStorage", env=env)
    worker = WorkerStack(app, "RefWorker", storage=storage, env=env)
    MonitoringStack(app, "RefMonitoring", storage=storage, worker=worker, env=env)
    app.synth()


if __name__ == "__main__":
    main()

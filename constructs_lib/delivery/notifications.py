"""Tell people when the pipeline fails or waits for them: a KMS-encrypted topic fed by a notification rule."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_codestarnotifications as notifications
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

NOTIFY_ON = (
    "codepipeline-pipeline-pipeline-execution-failed",
    "codepipeline-pipeline-manual-approval-needed",
)
_SERVICE = "codestar-notifications.amazonaws.com"


class PipelineNotifications(Construct):
    """Create before the pipeline (approval steps take the topic); call ``watch`` once it is built."""

    def __init__(self, scope: Construct, id: str, *, emails: Sequence[str]) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(self, "Key", description="erp-platform pipeline notifications", enable_key_rotation=True)
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        # The notification service publishes into an encrypted topic only if the key lets it.
        self.key.grant(iam.ServicePrincipal(_SERVICE), "kms:Decrypt", "kms:GenerateDataKey*")

    def watch(self, source: notifications.INotificationRuleSource) -> notifications.NotificationRule:
        return notifications.NotificationRule(
            self,
            "Rule",
            source=source,
            events=list(NOTIFY_ON),
            targets=[self.topic],
            detail_type=notifications.DetailType.BASIC,
        )

"""The one SNS topic every alarm notifies: humans subscribe to it by its name."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

# The only callers allowed to publish: CloudWatch alarms and (for later rules) EventBridge.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class AlarmTopic(Construct):
    """Encrypted with a key of its own: CloudWatch cannot use the AWS-managed SNS key, and alarms
    publishing to a topic they cannot encrypt for fail without a trace."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topic_name: str,
        emails: Sequence[str],
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        account = Stack.of(self).account
        same_account = {"StringEquals": {"aws:SourceAccount": account}}

        self.key = kms.Key(
            self,
            "Key",
            description=f"{topic_name}: SNS server-side encryption",
            enable_key_rotation=True,
            # A retained key in prod keeps any message still in flight readable; dev cleans up.
            removal_policy=RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY,
            pending_window=Duration.days(30 if production else 7),
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmPublishersEncrypt",
                principals=[iam.ServicePrincipal(p) for p in PUBLISHERS],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=same_account,
            )
        )

        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name,
            display_name=topic_name,
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmPublishers",
                principals=[iam.ServicePrincipal(p) for p in PUBLISHERS],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=same_account,
            )
        )
        for email in emails:
            # Each address gets a confirmation mail; nothing is delivered until it is confirmed.
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.action = cw_actions.SnsAction(self.topic)

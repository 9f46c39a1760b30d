"""Signals reach people where they work: a Slack channel of Amazon Q Developer in chat applications (formerly AWS
Chatbot) subscribed to SNS topics. E-mail subscriptions on the same topics stay: chat is an extra path, not the only.

Notifications only. The channel role holds what the service's "Notification permissions" template grants (CloudWatch
Describe/Get/List: the alarm's details and its graph), and CloudWatchReadOnlyAccess as the channel guardrail caps
whatever a channel member could try (without a guardrail the service applies AdministratorAccess).

SNS decrypts before it delivers to the service's HTTPS endpoint, so an encrypted topic needs nothing for chat: only
its publishers need the key. A configuration is account-wide (its name too) though created in a region; it may take
topics of several regions, but each stack here gets its own configuration for its own topics, so no stack reads
another region's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from config.sections import SlackChannelConfig
from constructs_lib.common.nag import acknowledge

# The "Notification permissions" policy template (AWS-Chatbot-NotificationsOnly-Policy).
NOTIFICATION_ACTIONS = ("cloudwatch:Describe*", "cloudwatch:Get*", "cloudwatch:List*")
GUARDRAIL = "CloudWatchReadOnlyAccess"
# CreateSlackChannelConfiguration: ConfigurationName.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class ChatChannel(Construct):
    def __init__(
        self, scope: Construct, id: str, *, name: str, channel: SlackChannelConfig, topics: Sequence[sns.ITopic]
    ) -> None:
        super().__init__(scope, id)
        if not _NAME.match(name):
            raise ValueError(f"chat configuration name {name!r}: 1-128 of A-Z a-z 0-9 - _ (unique in the account)")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("chatbot.amazonaws.com"),
            description=f"{name}: read alarms and graphs to render notifications in chat",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=list(NOTIFICATION_ACTIONS), resources=["*"]))
        for action in NOTIFICATION_ACTIONS:
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Action::{action}]",
                "The service's notifications-only template: reads any alarm and graph that reaches the channel.",
            )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "GetMetricWidgetImage and GetMetricData take no resource; alarms are named by whichever topic publishes.",
        )
        self.configuration = chatbot.SlackChannelConfiguration(
            self,
            "Channel",
            slack_channel_configuration_name=name,
            slack_workspace_id=channel.workspace_id,
            slack_channel_id=channel.channel_id,
            role=self.role,
            guardrail_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(GUARDRAIL)],
            logging_level=chatbot.LoggingLevel.ERROR,
            notification_topics=list(topics),
            # Nobody runs commands from the channel: no user role to choose.
            user_role_required=False,
        )


def chat_channel(
    scope: Construct, id: str, *, name: str, channel: SlackChannelConfig | None, topics: Sequence[sns.ITopic]
) -> ChatChannel | None:
    """None (and nothing synthesized) when the environment has no chat channel configured."""
    if channel is None:
        return None
    return ChatChannel(scope, id, name=name, channel=channel, topics=topics)

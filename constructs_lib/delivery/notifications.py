"""Tell people when the pipeline fails, waits for them or has deployed to production: a KMS-encrypted topic (e-mail,
and the chat channel when one is configured) fed by a notification rule and an EventBridge rule."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codestarnotifications as notifications
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from config.sections import SlackChannelConfig
from constructs_lib.observability.chat import chat_channel

NOTIFY_ON = (
    # A failing stage fails the execution too; the stage's event is the one that says which stage.
    "codepipeline-pipeline-stage-execution-failed",
    "codepipeline-pipeline-manual-approval-needed",
)
# A notification rule cannot filter by stage: success in production is an EventBridge rule on the stage's name.
STAGE_CHANGE = "CodePipeline Stage Execution State Change"
_SERVICE = "codestar-notifications.amazonaws.com"


class PipelineNotifications(Construct):
    """Create before the pipeline (approval steps take the topic); call ``watch`` once it is built.

    Every signal goes through the one topic; the chat channel subscribes to it (rather than being a second target
    of the rules), so each event reaches chat once, the production message included."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        emails: Sequence[str],
        chat: SlackChannelConfig | None = None,
        chat_name: str = "erp-pipeline",
    ) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(self, "Key", description="erp-platform pipeline notifications", enable_key_rotation=True)
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        # The notification service publishes into an encrypted topic only if the key lets it.
        self.key.grant(iam.ServicePrincipal(_SERVICE), "kms:Decrypt", "kms:GenerateDataKey*")
        self.chat = chat_channel(self, "Chat", name=chat_name, channel=chat, topics=[self.topic])
        self.deployed: events.Rule | None = None

    def watch(
        self, pipeline: codepipeline.IPipeline, *, production_stages: Sequence[str] = ()
    ) -> notifications.NotificationRule:
        if production_stages:
            self.deployed = events.Rule(
                self,
                "Deployed",
                description="A production stage of the pipeline succeeded: the build is live and smoke-tested",
                event_pattern=events.EventPattern(
                    source=["aws.codepipeline"],
                    detail_type=[STAGE_CHANGE],
                    resources=[pipeline.pipeline_arn],
                    detail={"stage": list(production_stages), "state": ["SUCCEEDED"]},
                ),
                # SNS target grants EventBridge sns:Publish and, for the encrypted topic, the key.
                targets=[targets.SnsTopic(self.topic, message=deployed_message())],
            )
        return notifications.NotificationRule(
            self,
            "Rule",
            source=pipeline,
            events=list(NOTIFY_ON),
            targets=[self.topic],
            detail_type=notifications.DetailType.BASIC,
        )


def deployed_message() -> events.RuleTargetInput:
    """A custom notification (version 1.0, source custom): the form the chat service renders from an input
    transformer; e-mail subscribers read the same JSON."""
    pipeline = events.EventField.from_path("$.detail.pipeline")
    stage = events.EventField.from_path("$.detail.stage")
    execution = events.EventField.from_path("$.detail.execution-id")
    return events.RuleTargetInput.from_object(
        {
            "version": "1.0",
            "source": "custom",
            "id": execution,
            "content": {
                "textType": "client-markdown",
                "title": f":white_check_mark: {pipeline}: {stage} deployed",
                "description": f"Stage *{stage}* succeeded (execution `{execution}`): deployed and smoke-tested.",
            },
            "metadata": {"eventType": "StageDeployed"},
        }
    )

"""One way to acknowledge a cdk-nag finding: always on a specific construct, always with a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    if len(reason.split()) < 5:
        raise ValueError(f"acknowledging {rule} needs a specific reason, not {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


LAMBDA_BASIC_EXECUTION = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
)


def acknowledge_log_retention(stack: Stack) -> None:
    """CDK's log-retention singleton (used where a service names the log group, e.g. RDS exports)."""
    for child in stack.node.children:
        if child.node.id.startswith("LogRetention"):
            acknowledge(child, LAMBDA_BASIC_EXECUTION, "CDK's log-retention handler: basic logging policy only.")
            acknowledge(
                child,
                "AwsSolutions-IAM5[Resource::*]",
                "CDK's log-retention handler sets retention on log groups named by the service at deploy time.",
            )

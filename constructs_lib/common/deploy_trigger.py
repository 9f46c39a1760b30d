"""A CDK Trigger whose provider function (CDK's own, one per stack) logs into a log group with retention.

Lambda would otherwise create `/aws/lambda/<provider>` on first run with no retention: owning that group
first bounds what deploy-time logs cost, as every other log group here does.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Fn, Stack, triggers
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.common.policies import log_removal, retention

PROVIDER_ID = "AWSCDK.TriggerCustomResourceProviderCustomResourceProvider"


def deploy_trigger(
    scope: Construct,
    id: str,
    *,
    handler: lambda_.Function,
    timeout: Duration,
    log_retention_days: int,
    production: bool,
    execute_after: Sequence[Construct] = (),
) -> triggers.Trigger:
    """Invokes `handler` synchronously when it changes; an error fails the deploy."""
    trigger = triggers.Trigger(
        scope,
        id,
        handler=handler,
        execute_after=list(execute_after),
        execute_on_handler_change=True,
        timeout=timeout,
        invocation_type=triggers.InvocationType.REQUEST_RESPONSE,
    )
    stack = Stack.of(scope)
    provider = stack.node.find_child(PROVIDER_ID).node.find_child("Handler")
    if stack.node.try_find_child("TriggerProviderLogs") is None:
        group = logs.LogGroup(
            stack,
            "TriggerProviderLogs",
            log_group_name=Fn.join("", ["/aws/lambda/", provider.ref]),
            retention=retention(log_retention_days),
            removal_policy=log_removal(production),
        )
        # Before the provider first runs, or Lambda creates the group itself (without retention).
        trigger.node.add_dependency(group)
    else:
        trigger.node.add_dependency(stack.node.find_child("TriggerProviderLogs"))
    return trigger

"""Backup and restore-drill alarms (issue 21), built in the Observability stack like every alarm, paging the one topic.

The drill (constructs_lib/data/restore_drill.py, Backup stack) is addressed by its fixed state machine name and its
metric namespace: no export ties the two stacks.

- restore-drill-failed: an execution failed, timed out or was aborted (AWS/States), or a run reported
  DrillSucceeded 0. One alarm for both: a check failure shows in both at once and should page once.
- restore-drill-rto / -rpo: the last run's RestoreMinutes / RecoveryPointAgeHours above config's target.
- restore-drill-overdue (scheduled environments only): no drill has passed for OVERDUE_DAYS. A metric the drill
  writes once a week cannot say "missing": CloudWatch evaluates at most 7 days (period x evaluation periods),
  a sliding window, so a weekly result falls out of it just before the next arrives and any run that takes a
  few minutes longer than last week's would page. So a daily heartbeat (same function) writes
  DaysSinceLastDrill from Step Functions' own history; the alarm reads it over 2 days, and treats no data as
  breaching: a silent heartbeat pages too.
- Backup job failures: an EventBridge rule for AWS Backup's backup, copy and restore job state changes to FAILED,
  ABORTED or EXPIRED, to the alarm topic, rather than alarms on the
  AWS/Backup job counts: each event names the job, the resource and the reason, which a count does not, and
  Amazon Q Developer in chat applications renders AWS Backup events as they come. They are account- and
  region-wide: every job here belongs to the platform (the copy jobs run in this region, where they start).
  The job's state is `state` in some events and `status` in others, as in AWS Backup's API (its EventBridge
  guide says so; restore jobs have Status): the rule matches either.
Missing data elsewhere is NOT_BREACHING: no drill ran, nothing to say (dev runs on demand).
"""

from __future__ import annotations

import jsii
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.data.restore_drill import (
    METRIC_NAMES,
    SERVICE_NAME,
    metrics_namespace,
    state_machine_arn,
    state_machine_name,
)
from constructs_lib.observability.alarms import paging_alarm

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
QUIET = cloudwatch.TreatMissingData.NOT_BREACHING
# A weekly drill plus a day for a slow or retried run.
OVERDUE_DAYS = 8
HOUR = Duration.hours(1)
EXECUTION_ENDS = {"failed": "ExecutionsFailed", "timed_out": "ExecutionsTimedOut", "aborted": "ExecutionsAborted"}
JOB_EVENTS = ["Backup Job State Change", "Copy Job State Change", "Restore Job State Change"]
FAILED_JOB_STATES = ["FAILED", "ABORTED", "EXPIRED"]


def drill_metric(config: EnvironmentConfig, name: str, statistic: str, period: Duration = HOUR) -> cloudwatch.Metric:
    """One of the drill's metrics as its function writes it (Powertools adds the `service` dimension)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"{name}: the restore drill writes {', '.join(METRIC_NAMES)}")
    return cloudwatch.Metric(
        namespace=metrics_namespace(config),
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic=statistic,
        period=period,
    )


def backup_alarms(
    scope: Construct, config: EnvironmentConfig, action: cloudwatch.IAlarmAction, topic: sns.ITopic
) -> list[cloudwatch.Alarm]:
    """The drill's alarms (returned, for the dashboard) and the rules sending AWS Backup job failures to `topic`."""
    drill = config.backup.drill
    prefix = config.resource_prefix
    name = state_machine_name(config)

    def alarm(id: str, what: str, **props) -> cloudwatch.Alarm:
        return paging_alarm(
            scope,
            id,
            action=action,
            alarm_name=f"{prefix}-{id}",
            alarm_description=f"{what} (state machine {name}; README: Backups and restore)",
            evaluation_periods=1,
            **props,
        )

    ends = {
        key: cloudwatch.Metric(
            namespace="AWS/States",
            metric_name=metric,
            dimensions_map={"StateMachineArn": state_machine_arn(scope, config)},
            statistic="Sum",
            period=HOUR,
        )
        for key, metric in EXECUTION_ENDS.items()
    }
    failed = cloudwatch.MathExpression(
        expression="FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0) + IF(FILL(result, 1) < 1, 1, 0)",
        using_metrics={**ends, "result": drill_metric(config, "DrillSucceeded", "Minimum")},
        label="failed restore drills",
        period=HOUR,
    )
    alarms = [
        alarm(
            "restore-drill-failed",
            "A restore drill failed, timed out or was aborted: the latest recovery point may not restore; the "
            "execution's history names the step and the error",
            metric=failed,
            threshold=1,
            comparison_operator=GTE,
            treat_missing_data=QUIET,
        ),
        alarm(
            "restore-drill-rto",
            f"The last restore drill took longer than the RTO target of {drill.rto_target_minutes} minutes "
            "(restore request to passed check)",
            metric=drill_metric(config, "RestoreMinutes", "Maximum"),
            threshold=drill.rto_target_minutes,
            comparison_operator=GT,
            treat_missing_data=QUIET,
        ),
        alarm(
            "restore-drill-rpo",
            f"The newest database recovery point was older than the RPO target of {drill.rpo_target_hours} hours "
            "when the drill ran: backups are missing or late",
            metric=drill_metric(config, "RecoveryPointAgeHours", "Maximum"),
            threshold=drill.rpo_target_hours,
            comparison_operator=GT,
            treat_missing_data=QUIET,
        ),
    ]
    if drill.schedule is not None:
        alarms.append(
            alarm(
                "restore-drill-overdue",
                f"No restore drill has passed for {OVERDUE_DAYS} days (schedule {drill.schedule}), or the daily "
                "heartbeat that counts them stopped",
                metric=drill_metric(config, "DaysSinceLastDrill", "Maximum", period=Duration.days(2)),
                threshold=OVERDUE_DAYS,
                comparison_operator=GT,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
        )
    events.Rule(
        scope,
        "BackupJobFailed",
        description=f"AWS Backup jobs that failed, aborted or expired, to {prefix}'s alarm topic",
        event_pattern=events.EventPattern(
            source=["aws.backup"],
            detail_type=JOB_EVENTS,
            detail={"$or": [{"state": FAILED_JOB_STATES}, {"status": FAILED_JOB_STATES}]},
        ),
        targets=[_AlarmTopicTarget(topic)],
    )
    return alarms


@jsii.implements(events.IRuleTarget)
class _AlarmTopicTarget:
    """The topic as a rule's target without the policy statements events_targets.SnsTopic adds: the alarm topic's
    own policy and key already admit EventBridge of this account (constructs_lib/observability/alarm_topic.py)."""

    def __init__(self, topic: sns.ITopic) -> None:
        self.topic = topic

    def bind(self, _rule: events.IRule, _id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self.topic.topic_arn)

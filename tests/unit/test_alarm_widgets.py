"""The dashboard's alarm status: every alarm shown, at most 100 per widget (CloudWatch's cap)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from constructs_lib.observability.dashboard import MAX_ALARMS_PER_WIDGET, alarm_status_widgets


def shown(count: int) -> list[list[str]]:
    stack = cdk.Stack(cdk.App(), "Widgets")
    alarms = [
        cloudwatch.Alarm.from_alarm_arn(stack, f"A{i}", f"arn:aws:cloudwatch:ap-northeast-2:111111111111:alarm:a-{i}")
        for i in range(count)
    ]
    return [
        [str(arn) for arn in widget.to_json()[0]["properties"]["alarms"]] for widget in alarm_status_widgets(alarms)
    ]


def test_a_hundred_alarms_fit_one_widget():
    assert [len(w) for w in shown(MAX_ALARMS_PER_WIDGET)] == [100]


def test_more_alarms_continue_in_further_widgets_without_loss_or_repeat():
    widgets = shown(2 * MAX_ALARMS_PER_WIDGET + 7)
    assert [len(w) for w in widgets] == [100, 100, 7]
    every = [arn for widget in widgets for arn in widget]
    assert len(set(every)) == len(every) == 207

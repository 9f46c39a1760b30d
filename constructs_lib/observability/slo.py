"""The API's service-level objectives as multi-window, multi-burn-rate alarms (Google SRE workbook, "Alerting on
SLOs"), measured on the HTTP API's access log (constructs_lib/api/http_api.py, ACCESS_LOG_FIELDS).

SLIs. Per objective (config.observability.slo.objectives), three metric filters on the access-log group:
``<objective>-requests`` (every request whose ``path`` is one of the objective's prefixes or under one),
``<objective>-errors`` (those answered 5xx) and ``<objective>-slow`` (those whose ``responseLatency`` is over
the objective's p99 latency). The access log writes every value as a JSON *string* (``"status":"502"``,
``"responseLatency":"2345"``); a numeric comparison (``$.responseLatency > 2000``) is only documented for JSON
numbers, so the patterns compare strings: ``$.status = "5*"`` (a trailing wildcard) and a regex that matches
exactly the decimal numbers above the threshold (``greater_than_regex``). Paths match ``"/p"`` or ``"/p/*"``,
never ``"/p*"``: ``/api/process*`` would also count ``/api/processing``. The stage is ``$default``, so
``$context.path`` is the request path without a stage segment. Filters have no dimensions and default to 0, so
every access-log event gives each metric a data point and "no error" is data.

Quotas: CloudWatch allows 5 filter patterns with a regex per log group (one per objective here: config refuses a
sixth objective) and 100 filters per log group.

Burn rate = (bad / total) / budget, budget = 1 - objective (availability: 1 - availability_pct / 100; latency:
0.01, the 1 % of requests a p99 lets be slower). Each window is ONE data point: the alarm's period is the window
and CloudWatch's default sliding evaluation window re-reads it every minute, so the ratio is over exactly the
last N minutes. (Several 5-minute points with "M of N" would judge each 5 minutes apart: one bad 5-minute burst
in an hour would not count as the hour's ratio.) Below ``min_requests`` in a window the burn is 0.

Alarms. Per objective, SLI and speed (fast, slow): two metric alarms (long and short window, burn > burn_rate)
WITHOUT actions, and one composite alarm ALARM(long) AND ALARM(short) that notifies the alarm topic (ALARM and
OK): the long window says the budget really burns, the short one that it still burns now (so the page clears
soon after the fix). Only composites page, so one incident pages once per speed.

The filters live in the Observability stack on the log group addressed by its name (as Fluent Bit addresses the
application log group): no export from the Api stack, so the Api stack stays free to replace its resources.
The Observability stack is ordered after the Api stack (stacks/observability.py): the log group must exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.models import EnvironmentConfig
from config.sections import BurnWindow, SloConfig, SloObjective

SLIS = ("availability", "latency")
SPEEDS = ("fast", "slow")
# The latency objective is a p99: 1 % of requests may be slower than p99_latency_ms.
LATENCY_BUDGET = 0.01
GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
QUIET = cloudwatch.TreatMissingData.NOT_BREACHING
# CloudWatch Logs: filter patterns holding a regex, per log group (each objective's latency filter holds one).
MAX_REGEX_FILTERS_PER_LOG_GROUP = 5
MAX_PATTERN_LENGTH = 1024


def access_log_group_name(resource_prefix: str) -> str:
    """The HTTP API's access-log group (constructs_lib/api/http_api.py names it so; tests/infra/test_slo.py
    checks both agree)."""
    return f"/aws/apigateway/{resource_prefix}-http-api"


def greater_than_regex(threshold: int) -> str:
    """A regex matching exactly the decimal integers (no sign, no leading zero) greater than ``threshold``.

    CloudWatch regexes have no groups, so it is a top-level alternation of anchored branches: any longer
    number, then for each digit of the threshold, the same prefix followed by a greater digit.
    """
    digits = str(threshold)
    width = len(digits)
    branches = [f"^[1-9][0-9]{{{width},}}$"]
    for i, digit in enumerate(digits):
        if digit == "9":
            continue
        low = int(digit) + 1
        rest = width - i - 1
        tail = f"[0-9]{{{rest}}}" if rest else ""
        branches.append(f"^{digits[:i]}[{low}-9]{tail}$")
    return "|".join(branches)


def _paths(objective: SloObjective) -> str:
    return " || ".join(f'$.path = "{p}" || $.path = "{p}/*"' for p in objective.paths)


@dataclass(frozen=True)
class SliFilter:
    """One metric filter as CloudWatch sees it (the tests run the synthesized ones against access-log lines)."""

    objective: str
    kind: str  # requests, errors, slow
    pattern: str

    @property
    def metric_name(self) -> str:
        return f"{self.objective}-{self.kind}"


def sli_filters(objective: SloObjective) -> list[SliFilter]:
    paths = f"({_paths(objective)})"
    filters = [
        SliFilter(objective.name, "requests", f"{{ {paths} }}"),
        SliFilter(objective.name, "errors", f'{{ {paths} && $.status = "5*" }}'),
        SliFilter(
            objective.name,
            "slow",
            f"{{ {paths} && $.responseLatency = %{greater_than_regex(objective.p99_latency_ms)}% }}",
        ),
    ]
    longest = max(len(f.pattern) for f in filters)
    if longest > MAX_PATTERN_LENGTH:
        # Refused at synth rather than by CloudWatch halfway through a deploy.
        raise ValueError(
            f"observability.slo.objectives[{objective.name}]: a filter pattern of {longest} characters; CloudWatch "
            f"allows {MAX_PATTERN_LENGTH} (fewer or shorter paths, e.g. a common prefix)"
        )
    return filters


def budget(objective: SloObjective, sli: str) -> float:
    """The share of requests the objective lets fail (availability) or be slow (latency)."""
    if sli == "availability":
        return round(1 - objective.availability_pct / 100, 10)
    return LATENCY_BUDGET


def _number(value: float) -> str:
    return f"{value:.10g}"


def budget_spent_fraction(slo: SloConfig, window: BurnWindow) -> float:
    """Share of the period's budget that burning at exactly `burn_rate` for the long window spends."""
    return window.burn_rate * window.long_minutes / (slo.period_days * 24 * 60)


class ApiSlo(Construct):
    """Filters, burn-rate alarms and the metrics the dashboard shows, for every objective.

    ``alarms``: the composite alarms (the ones that page); ``windows``: their child metric alarms.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        action: cloudwatch.IAlarmAction,
    ) -> None:
        super().__init__(scope, id)
        self.slo = config.observability.slo
        self.namespace = f"{config.project}/{config.name}/slo"
        self.log_group_name = access_log_group_name(config.resource_prefix)
        self._prefix = config.resource_prefix
        self.alarms: list[cloudwatch.CompositeAlarm] = []
        self.windows: list[cloudwatch.Alarm] = []
        access_logs = logs.LogGroup.from_log_group_name(self, "AccessLogs", self.log_group_name)
        for objective in self.slo.objectives:
            for spec in sli_filters(objective):
                logs.MetricFilter(
                    self,
                    f"{objective.name}-{spec.kind}",
                    log_group=access_logs,
                    filter_name=f"slo-{spec.metric_name}",
                    filter_pattern=logs.FilterPattern.literal(spec.pattern),
                    metric_namespace=self.namespace,
                    metric_name=spec.metric_name,
                    metric_value="1",
                    default_value=0,
                    unit=cloudwatch.Unit.COUNT,
                )
            for sli in SLIS:
                for speed in SPEEDS:
                    self._burn_alarm(objective, sli, speed, getattr(self.slo, speed), action)

    def _metric(self, name: str, period: Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace, metric_name=name, statistic=cloudwatch.Stats.SUM, period=period
        )

    def _counts(
        self, objective: SloObjective, sli: str, period: Duration, tag: str = ""
    ) -> tuple[str, str, dict[str, cloudwatch.Metric]]:
        """Ids of the request and bad-request counts (`tag` keeps ids unique within one dashboard widget)."""
        bad = "errors" if sli == "availability" else "slow"
        requests_id, bad_id = f"requests{tag}", f"{bad}{tag}"
        return (
            requests_id,
            bad_id,
            {
                requests_id: self._metric(f"{objective.name}-requests", period),
                bad_id: self._metric(f"{objective.name}-{bad}", period),
            },
        )

    def burn_rate(
        self, objective: SloObjective, sli: str, minutes: int, *, label: str | None = None, tag: str = ""
    ) -> cloudwatch.MathExpression:
        """(bad / requests) / budget over one `minutes` window; 0 below min_requests (too few to judge)."""
        period = Duration.minutes(minutes)
        total, bad, metrics = self._counts(objective, sli, period, tag)
        return cloudwatch.MathExpression(
            expression=f"IF(FILL({total}, 0) >= {self.slo.min_requests}, "
            f"FILL({bad}, 0) / {total} / {_number(budget(objective, sli))}, 0)",
            using_metrics=metrics,
            period=period,
            label=label or f"{objective.name} {sli} burn rate, {minutes} min",
        )

    def budget_remaining(self, objective: SloObjective, sli: str) -> cloudwatch.MathExpression:
        """% of the period's error budget left: 100 × (1 - (bad / requests) / budget); 100 with no traffic,
        negative once overspent."""
        period = Duration.days(self.slo.period_days)
        total, bad, metrics = self._counts(objective, sli, period)
        return cloudwatch.MathExpression(
            expression=f"IF(FILL({total}, 0) > 0, 100 * (1 - FILL({bad}, 0) / {total} / "
            f"{_number(budget(objective, sli))}), 100)",
            using_metrics=metrics,
            period=period,
            label=f"{objective.name} {sli} budget left (%)",
        )

    def _burn_alarm(
        self,
        objective: SloObjective,
        sli: str,
        speed: str,
        window: BurnWindow,
        action: cloudwatch.IAlarmAction,
    ) -> None:
        name = f"slo-{objective.name}-{sli}-{speed}"
        target = (
            f"{objective.availability_pct} % without 5xx"
            if sli == "availability"
            else f"99 % faster than {objective.p99_latency_ms} ms"
        )
        children = []
        for which, minutes in (("long", window.long_minutes), ("short", window.short_minutes)):
            # No actions: the composite pages; each window alone would page twice for one incident.
            children.append(
                cloudwatch.Alarm(
                    self,
                    f"{name}-{which}",
                    alarm_name=f"{self._prefix}-{name}-{which}",
                    alarm_description=f"{objective.name} {sli} ({target}): burn rate over {minutes} min > "
                    f"{window.burn_rate}. No actions: {self._prefix}-{name} pages when both windows burn.",
                    metric=self.burn_rate(objective, sli, minutes),
                    threshold=window.burn_rate,
                    comparison_operator=GT,
                    evaluation_periods=1,
                    datapoints_to_alarm=1,
                    treat_missing_data=QUIET,
                )
            )
        self.windows.extend(children)
        spent = 100 * budget_spent_fraction(self.slo, window)
        composite = cloudwatch.CompositeAlarm(
            self,
            name,
            composite_alarm_name=f"{self._prefix}-{name}",
            alarm_description=f"{objective.name} {sli} SLO ({target}, paths {', '.join(objective.paths)}): the "
            f"error budget burns over {window.burn_rate}x its even pace in the last {window.long_minutes} min AND "
            f"the last {window.short_minutes} min ({spent:.3g} % of the {self.slo.period_days}-day budget in "
            f"{window.long_minutes} min). Access log: {self.log_group_name}.",
            alarm_rule=cloudwatch.AlarmRule.all_of(
                *(cloudwatch.AlarmRule.from_alarm(child, cloudwatch.AlarmState.ALARM) for child in children)
            ),
        )
        composite.add_alarm_action(action)
        composite.add_ok_action(action)
        self.alarms.append(composite)

    def objective_metrics(self) -> Sequence[tuple[SloObjective, list, list]]:
        """Per objective: its budget-left metrics (one per SLI) and its long-window burn rates (per SLI and
        speed), for the dashboard."""
        rows = []
        for objective in self.slo.objectives:
            budgets = [self.budget_remaining(objective, sli) for sli in SLIS]
            burns = [
                self.burn_rate(
                    objective,
                    sli,
                    getattr(self.slo, speed).long_minutes,
                    label=f"{sli} {speed} ({getattr(self.slo, speed).long_minutes} min)",
                    tag=f"_{getattr(self.slo, speed).long_minutes}",
                )
                for sli in SLIS
                for speed in SPEEDS
            ]
            rows.append((objective, budgets, burns))
        return rows

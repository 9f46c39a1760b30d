"""Every alarm of one environment, on every tier, each paging with ALARM and OK to the one topic.

Missing data is chosen per alarm, for what silence means there:
  * counts and rates of failures (errors, restarts, throttles, 5xx, latency, CPU, connections,
    evictions, unhealthy targets): NOT_BREACHING — no data means nothing happened (no traffic, no
    logs, a sleeping dev environment), and silence is not an outage;
  * "no healthy target behind a service": BREACHING — if the NLB reports nothing healthy, the
    service is down whatever the reason;
  * free database storage: IGNORE — storage does not recover by going quiet; keep the last state.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.reference_fingerprint import fingerprint
from constructs_lib.observability import container_insights
from constructs_lib.observability.log_metrics import ErrorLineMetrics
from constructs_lib.observability.metrics import FIVE_MINUTES, cache_metric, percent_of, target_group_metric
from constructs_lib.observability.watched import Watched

GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
QUIET = cloudwatch.TreatMissingData.NOT_BREACHING
DOWN = cloudwatch.TreatMissingData.BREACHING
HOLD = cloudwatch.TreatMissingData.IGNORE
GIB = 1024**3


def paging_alarm(scope: Construct, id: str, *, action: cloudwatch.IAlarmAction, **props) -> cloudwatch.Alarm:
    """An alarm that pages on ALARM and gives the all-clear on OK (whoever was paged learns it is over)."""
    alarm = cloudwatch.Alarm(scope, id, **props)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm


class PlatformAlarms(Construct):
    """Alarms named `{project}-{env}-<what>`; thresholds come from config.observability.thresholds."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        action: cloudwatch.IAlarmAction,
        watched: Watched,
    ) -> None:
        super().__init__(scope, id)
        self._prefix = config.resource_prefix
        self._action = action
        self.alarms: list[cloudwatch.Alarm] = []
        w = watched
        self._application(config, w.errors)
        self._api(config, w.function, w.load_balancer, w.target_groups)
        self._data(config, w.database, w.cache_node_ids)

    def add(
        self,
        name: str,
        *,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        missing: cloudwatch.TreatMissingData,
        comparison: cloudwatch.ComparisonOperator = GTE,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
    ) -> cloudwatch.Alarm:
        alarm = paging_alarm(
            self,
            name,
            action=self._action,
            alarm_name=f"{self._prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=missing,
        )
        self.alarms.append(alarm)
        return alarm

    def _application(self, config: EnvironmentConfig, errors: ErrorLineMetrics) -> None:
        t = config.observability.thresholds
        self.add(
            "high-error-rate",
            metric=errors.total,
            threshold=t.application_errors_5m,
            description=f"ERROR lines in {config.application_log_group} (every container of {config.namespace}), per 5 min",
            missing=QUIET,
        )
        if config.observability.container_insights:
            self.add(
                "pod-restarts",
                metric=container_insights.restarts_in_namespace(config, Duration.minutes(10)),
                threshold=t.pod_restarts_10m,
                description=f"Container restarts of every pod in namespace {config.namespace} (services, Kafka, X-Ray, ...), "
                "per 10 min",
                missing=QUIET,
            )
        # Without Container Insights (dev) there is no restart metric: the alarm is not created.

    def _api(
        self,
        config: EnvironmentConfig,
        function: lambda_.IFunction,
        load_balancer: elbv2.NetworkLoadBalancer,
        target_groups: Mapping[str, elbv2.NetworkTargetGroup],
    ) -> None:
        t = config.observability.thresholds
        sum5 = {"statistic": cloudwatch.Stats.SUM, "period": FIVE_MINUTES}
        self.add(
            "lambda-error-rate",
            metric=percent_of(
                function.metric_errors(**sum5), function.metric_invocations(**sum5), label="employee Lambda errors %"
            ),
            threshold=t.lambda_error_rate_pct,
            description="Employee Lambda: Errors / Invocations (%), per 5 min",
            missing=QUIET,
        )
        self.add(
            "lambda-throttles",
            metric=function.metric_throttles(**sum5),
            threshold=t.lambda_throttles_5m,
            description="Employee Lambda throttled invocations (reserved concurrency reached), per 5 min",
            missing=QUIET,
        )
        # The API's 5xx and latency are SLOs with burn-rate alarms (constructs_lib/observability/slo.py).
        for service, group in target_groups.items():
            nlb = {"target_group": group, "load_balancer": load_balancer}
            # Changes when the target group or NLB would be replaced, so the alarm re-reads their new names.
            follows = f" [targets {fingerprint([group, load_balancer])}]"
            self.add(
                f"{service}-unhealthy-hosts",
                metric=target_group_metric("UnHealthyHostCount", **nlb, statistic=cloudwatch.Stats.MAXIMUM),
                threshold=t.nlb_unhealthy_hosts,
                description=f"NLB targets of {service} failing health checks, 3 minutes running{follows}",
                missing=QUIET,
                evaluation_periods=3,
            )
            self.add(
                f"{service}-no-healthy-hosts",
                metric=target_group_metric("HealthyHostCount", **nlb, statistic=cloudwatch.Stats.MINIMUM),
                threshold=1,
                comparison=LT,
                description=f"No healthy NLB target for {service} (or no data), 3 minutes running: the route is down"
                f"{follows}",
                missing=DOWN,
                evaluation_periods=3,
            )

    def _sustained(self, name: str, metric: cloudwatch.IMetric, threshold: float, what: str, periods: int) -> None:
        """A five-minute metric at or over its threshold for `periods` periods running; no data is no alarm."""
        self.add(
            name,
            metric=metric,
            threshold=threshold,
            description=f"{what}, {periods * 5} minutes running",
            missing=QUIET,
            evaluation_periods=periods,
        )

    def _data(self, config: EnvironmentConfig, database: rds.IDatabaseInstance, cache_node_ids: list[str]) -> None:
        t = config.observability.thresholds
        self._sustained(
            "rds-cpu",
            database.metric_cpu_utilization(statistic=cloudwatch.Stats.AVERAGE, period=FIVE_MINUTES),
            t.rds_cpu_pct,
            "MySQL CPU (%)",
            3,
        )
        self.add(
            "rds-free-storage",
            metric=database.metric_free_storage_space(statistic=cloudwatch.Stats.MINIMUM, period=FIVE_MINUTES),
            threshold=t.rds_free_storage_gib * GIB,
            comparison=LT,
            description=f"MySQL free storage below {t.rds_free_storage_gib} GiB (bytes); autoscaling may be at its cap",
            missing=HOLD,
        )
        self._sustained(
            "rds-connections",
            database.metric_database_connections(statistic=cloudwatch.Stats.MAXIMUM, period=FIVE_MINUTES),
            t.rds_connections,
            "MySQL connections",
            2,
        )
        utilisation = {"node_ids": cache_node_ids, "combine": "MAX", "statistic": cloudwatch.Stats.AVERAGE}
        # name, ElastiCache metric, threshold, what it says, five-minute periods running
        for name, metric, threshold, what, periods in (
            ("cache-cpu", "CPUUtilization", t.cache_cpu_pct, "Cache host CPU (%, busiest node)", 3),
            (
                "cache-engine-cpu",
                "EngineCPUUtilization",
                t.cache_cpu_pct,
                "Cache engine thread CPU (%, busiest node)",
                3,
            ),
            (
                "cache-memory",
                "DatabaseMemoryUsagePercentage",
                t.cache_memory_pct,
                "Cache memory used of maxmemory (%, fullest node)",
                2,
            ),
        ):
            self._sustained(name, cache_metric(metric, **utilisation), threshold, what, periods)
        self.add(
            "cache-evictions",
            metric=cache_metric("Evictions", node_ids=cache_node_ids, combine="SUM", statistic=cloudwatch.Stats.SUM),
            threshold=t.cache_evictions_5m,
            description="Keys evicted for memory (all nodes), per 5 min",
            missing=QUIET,
        )

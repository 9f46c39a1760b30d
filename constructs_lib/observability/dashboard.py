"""The `{project}-{env}` dashboard: one page from the front door to the data, with every alarm's state on top."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.observability import container_insights as ci
from constructs_lib.observability.drift import METRIC_NAMES as DRIFT_METRICS
from constructs_lib.observability.drift import drift_metric
from constructs_lib.observability.kafka_health import KafkaHealth
from constructs_lib.observability.log_metrics import PLAIN_TEXT_ERROR_REGEX
from constructs_lib.observability.metrics import FIVE_MINUTES, cache_metric, target_group_metric
from constructs_lib.observability.slo import ApiSlo
from constructs_lib.observability.watched import Watched

SUM = cloudwatch.Stats.SUM
FULL, HALF, THIRD = 24, 12, 8
MAX_ALARMS_PER_WIDGET = 100


def _graph(title: str, left: Sequence[cloudwatch.IMetric], *, width: int = THIRD, **extra) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(left), width=width, height=6, **extra)


def _pod_graphs(config: EnvironmentConfig, pods: Sequence[str], *, cpu: str, restarts: str) -> list:
    """CPU, memory and restarts of these pods (Container Insights), one graph each."""
    return [
        _graph(f"{cpu} CPU (% of node)", [ci.pod_metric(ci.CPU, config=config, pod=p) for p in pods]),
        _graph(f"{cpu} memory (% of node)", [ci.pod_metric(ci.MEMORY, config=config, pod=p) for p in pods]),
        _graph(f"{restarts} (5 min)", [ci.pod_metric(ci.RESTARTS, config=config, pod=p, statistic=SUM) for p in pods]),
    ]


def alarm_status_widgets(alarms: Sequence[cloudwatch.IAlarm]) -> list[cloudwatch.AlarmStatusWidget]:
    """One full-width status widget per 100 alarms (CloudWatch's cap per widget; each service adds 2)."""
    return [
        cloudwatch.AlarmStatusWidget(
            title="Alarms" if start == 0 else f"Alarms (from {start + 1})",
            alarms=list(alarms[start : start + MAX_ALARMS_PER_WIDGET]),
            width=FULL,
            height=4,
            sort_by=cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
        )
        for start in range(0, len(alarms), MAX_ALARMS_PER_WIDGET)
    ]


def _slo_widgets(slo: ApiSlo) -> list[cloudwatch.IWidget]:
    """Per objective: the budget left over the SLO period and the long-window burn rates the alarms read (the
    lines are the burn-rate thresholds); then the state of every window alarm behind the composites."""
    days = slo.slo.period_days
    widgets: list[cloudwatch.IWidget] = []
    for objective, budgets, burns in slo.objective_metrics():
        widgets.append(
            cloudwatch.SingleValueWidget(
                title=f"SLO {objective.name}: error budget left, last {days} days (%)",
                metrics=budgets,
                start=f"-P{days}D",
                set_period_to_time_range=True,
                width=FULL // 4,
                height=6,
            )
        )
        widgets.append(
            _graph(
                f"SLO {objective.name}: burn rate (x even pace)",
                burns,
                width=FULL - FULL // 4,
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=window.burn_rate, label=f"{speed} page")
                    for speed, window in (("fast", slo.slo.fast), ("slow", slo.slo.slow))
                ],
            )
        )
    widgets.append(
        cloudwatch.AlarmStatusWidget(
            title="SLO burn-rate windows (no actions: the composite alarms above page when both windows burn)",
            alarms=list(slo.windows),
            width=FULL,
            height=4,
        )
    )
    return widgets


class PlatformDashboard(Construct):
    """Widgets only read metrics; nothing here can change the platform."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        alarms: Sequence[cloudwatch.IAlarm],
        watched: Watched,
        slo: ApiSlo | None = None,
        kafka: KafkaHealth | None = None,
    ) -> None:
        super().__init__(scope, id)
        # The SLO composites page like every other alarm: they are in the status widget on top.
        alarms = [*alarms, *(slo.alarms if slo else []), *(kafka.alarms if kafka else [])]
        errors, http_api, function = watched.errors, watched.http_api, watched.function
        load_balancer, target_groups = watched.load_balancer, watched.target_groups
        database, cache_node_ids = watched.database, watched.cache_node_ids
        self.dashboard_name = config.resource_prefix
        sum5 = {"statistic": SUM, "period": FIVE_MINUTES}
        services = [s.name for s in config.services]
        insights_note = (
            ""
            if config.observability.container_insights
            else " **Container Insights is off in this environment** (`observability.container_insights`): "
            "the pod CPU, memory, restart and Kafka graphs stay empty and there is no restart alarm."
        )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self.dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {self.dashboard_name}\nEvery alarm below notifies the SNS topic `{self.dashboard_name}-alarms`. "
                "The HTTP API has no X-Ray tracing (HTTP APIs do not support it): traces start at the "
                f"services and the employee Lambda; see the X-Ray group `{self.dashboard_name}`.{insights_note}",
                width=FULL,
                height=2,
            )
        )
        for widget in alarm_status_widgets(alarms):
            self.dashboard.add_widgets(widget)
        # Front door.
        self.dashboard.add_widgets(
            _graph("API requests", [http_api.metric_count(**sum5)]),
            _graph("API errors", [http_api.metric_client_error(**sum5), http_api.metric_server_error(**sum5)]),
            _graph(
                "API latency (ms)",
                [
                    http_api.metric_latency(statistic="p50", period=FIVE_MINUTES),
                    http_api.metric_latency(statistic="p99", period=FIVE_MINUTES),
                    http_api.metric_integration_latency(statistic="p99", period=FIVE_MINUTES),
                ],
            ),
        )
        if slo is not None:
            self.dashboard.add_widgets(*_slo_widgets(slo))
        # Services: their errors, their pods, their load-balancer targets.
        self.dashboard.add_widgets(
            _graph(
                "ERROR lines per service (5 min)",
                [errors.per_service[s].with_(label=s) for s in services] + [errors.total.with_(label="all containers")],
                width=HALF,
            ),
            _graph(
                "Healthy / unhealthy NLB targets",
                [
                    metric
                    for service, group in target_groups.items()
                    for metric in (
                        target_group_metric(
                            "HealthyHostCount",
                            target_group=group,
                            load_balancer=load_balancer,
                            statistic="Minimum",
                            label=f"{service} healthy",
                        ),
                        target_group_metric(
                            "UnHealthyHostCount",
                            target_group=group,
                            load_balancer=load_balancer,
                            statistic="Maximum",
                            label=f"{service} unhealthy",
                        ),
                    )
                ],
                width=HALF,
            ),
        )
        self.dashboard.add_widgets(*_pod_graphs(config, services, cpu="Pod", restarts="Container restarts"))
        # Kafka: one PodName per broker (StatefulSet pods keep their names).
        brokers = ci.kafka_pods(config)
        self.dashboard.add_widgets(*_pod_graphs(config, brokers, cpu="Kafka broker", restarts="Kafka broker restarts"))
        if kafka is not None:  # lag, brokers and partitions, volumes: what the Kafka alarms read
            self.dashboard.add_widgets(*kafka.widgets())
        # The daily drift check: what it found (its report goes to the alarm topic; a failed run pages).
        self.dashboard.add_widgets(
            _graph("Drift check (daily)", [drift_metric(config, name) for name in DRIFT_METRICS])
        )
        # Employee Lambda.
        self.dashboard.add_widgets(
            _graph(
                "Lambda invocations / errors / throttles",
                [
                    function.metric_invocations(**sum5),
                    function.metric_errors(**sum5),
                    function.metric_throttles(**sum5),
                ],
            ),
            _graph(
                "Lambda duration (ms)",
                [
                    function.metric_duration(statistic="p50", period=FIVE_MINUTES),
                    function.metric_duration(statistic="p99", period=FIVE_MINUTES),
                ],
            ),
            _graph(
                "Lambda concurrency",
                [function.metric("ConcurrentExecutions", statistic="Maximum", period=FIVE_MINUTES)],
            ),
        )
        # Data tier.
        avg5 = {"statistic": cloudwatch.Stats.AVERAGE, "period": FIVE_MINUTES}
        self.dashboard.add_widgets(
            _graph("MySQL CPU (%)", [database.metric_cpu_utilization(**avg5)]),
            _graph(
                "MySQL connections", [database.metric_database_connections(statistic="Maximum", period=FIVE_MINUTES)]
            ),
            _graph(
                "MySQL free storage (bytes)",
                [database.metric_free_storage_space(statistic="Minimum", period=FIVE_MINUTES)],
            ),
        )
        cache_avg = {"node_ids": cache_node_ids, "combine": "MAX", "statistic": cloudwatch.Stats.AVERAGE}
        self.dashboard.add_widgets(
            _graph(
                "Cache CPU (%)",
                [cache_metric("CPUUtilization", **cache_avg), cache_metric("EngineCPUUtilization", **cache_avg)],
            ),
            _graph("Cache memory (% of maxmemory)", [cache_metric("DatabaseMemoryUsagePercentage", **cache_avg)]),
            _graph(
                "Cache evictions (5 min)",
                [cache_metric("Evictions", node_ids=cache_node_ids, combine="SUM", statistic=SUM)],
            ),
        )
        # The lines behind the error counts, same definition as the metric filters.
        self.dashboard.add_widgets(
            cloudwatch.LogQueryWidget(
                title="Latest ERROR lines",
                log_group_names=[config.application_log_group],
                query_lines=[
                    "fields @timestamp, kubernetes.container_name as container, kubernetes.pod_name as pod, "
                    "coalesce(message, log) as line",
                    f'filter level = "ERROR" or log like /{PLAIN_TEXT_ERROR_REGEX}/',
                    "sort @timestamp desc",
                    "limit 50",
                ],
                width=FULL,
                height=8,
            )
        )

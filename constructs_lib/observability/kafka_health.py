"""Kafka's alarms, on the metrics the `kafka-metrics` collector writes (k8s_charts/kafka_metrics.py), and its log group.

Namespace `<project>/<env>/kafka`; the metric names and dimensions are the collector's `SERIES` (its awsemf exporter
declares exactly those, tests/infra/test_kafka_health.py checks each alarm against the rendered collector config).

Each alarm pages with ALARM and OK on the alarm topic. Periods are one minute (the collector scrapes every 30 s)
except the volume's (five: disks fill slowly). What each watches, and what no data means there:

  * consumer lag, per configured group: over `lag_messages` and not shrinking for `lag_growing_minutes`. Each minute
    counts when the minute's smallest lag is above the threshold AND RATE(lag) >= 0 (it did not fall since the minute
    before): a consumer that is stuck (lag flat while approvals wait) or falling behind (lag rising) pages; one that
    is working through a backlog (lag falling in any minute) does not. Not "rising every minute": approvals arrive
    a few a minute at most, so a stuck consumer's lag is flat most minutes. RATE has no value for the first point it
    sees: FILL(..., 0) lets that minute count. No data: NOT_BREACHING (the group has no commits yet; a dead collector
    is the brokers alarm's).
  * under-replicated partitions > 0 for 5 minutes (a broker restart catches up within that). Only with a replication
    factor above 1: with one broker (dev) each partition has one replica, which is its leader and the whole ISR, so
    nothing can be under-replicated and the alarm could never fire. No data: NOT_BREACHING.
  * offline partitions > 0 for 3 minutes: partitions - partitions with a leader (kafka-exporter has no offline
    count; see k8s_charts/kafka_metrics.py). No data: NOT_BREACHING.
  * brokers up < replicas for 5 minutes (the exporter's view of the metadata: kafka-exporter has no active-controller
    metric, and in combined KRaft mode a broker out of the metadata is also a voter out of the quorum). No data:
    BREACHING where the environment never sleeps: no broker count for 5 minutes means the exporter, the collector
    or Kafka itself is down. In an environment with office hours (config `schedule`) the nodes stop every night,
    so there no data is NOT_BREACHING (silence at night is the plan, not an outage).
  * volume used % (max over the brokers' `data-kafka-<n>` claims) > `disk_used_pct` for 15 minutes. No data: as the
    brokers alarm (the kubelet scrape is the collector's second job: a broken one must not hide a filling disk).
"""

from __future__ import annotations

import re

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.policies import owned_log_group
from constructs_lib.observability.alarms import paging_alarm
from k8s_charts import names
from k8s_charts.kafka import replication_factor
from k8s_charts.kafka_metrics import (
    BROKERS,
    CLAIM_DIMENSION,
    GROUP_DIMENSION,
    LAG,
    LED_PARTITIONS,
    PARTITIONS,
    UNDER_REPLICATED,
    VOLUME_CAPACITY,
    VOLUME_USED,
    Series,
    data_claims,
)

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
QUIET = cloudwatch.TreatMissingData.NOT_BREACHING
DOWN = cloudwatch.TreatMissingData.BREACHING
MINUTE = Duration.minutes(1)
VOLUME_PERIOD = Duration.minutes(5)
UNDER_REPLICATED_MINUTES = 5
OFFLINE_MINUTES = 3
BROKERS_MINUTES = 5
VOLUME_PERIODS = 3


def slug(value: str) -> str:
    """A group name as part of an alarm name (`erp-<env>-[a-z0-9-]+`) and a construct id."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


class KafkaHealth(Construct):
    """The collector's log group (the environment's retention) and the Kafka alarms (module docstring)."""

    def __init__(
        self, scope: Construct, id: str, *, config: EnvironmentConfig, action: cloudwatch.IAlarmAction
    ) -> None:
        super().__init__(scope, id)
        self._config = config
        self._prefix = config.resource_prefix
        self._action = action
        self.namespace = names.kafka_metrics_namespace(config)
        self.health = config.observability.kafka
        self.replicas = config.kafka.replicas
        # Before the collector writes to it (Workloads deploys after Observability); its role may not create it.
        self.log_group: logs.LogGroup = owned_log_group(
            self, "MetricsLogs", log_group_name=names.kafka_metrics_log_group(config), config=config
        )
        self.alarms: list[cloudwatch.Alarm] = []
        # No data where the environment never sleeps is an outage; in one with office hours it is the night.
        self._silence = DOWN if config.schedule is None else QUIET

        for group in self.health.consumer_groups:
            self._lag_alarm(group)
        if replication_factor(self.replicas) > 1:
            self._add(
                "kafka-under-replicated-partitions",
                metric=self.metric(UNDER_REPLICATED, cloudwatch.Stats.MAXIMUM),
                threshold=0,
                comparison=GT,
                periods=UNDER_REPLICATED_MINUTES,
                missing=QUIET,
                description=f"Kafka partitions whose in-sync replicas are fewer than their replicas, "
                f"{UNDER_REPLICATED_MINUTES} minutes running: a broker is down or cannot keep up",
            )
        self._add(
            "kafka-offline-partitions",
            metric=self.offline_partitions(),
            threshold=0,
            comparison=GT,
            periods=OFFLINE_MINUTES,
            missing=QUIET,
            description=f"Kafka partitions without a leader, {OFFLINE_MINUTES} minutes running: nothing can be "
            "produced to or consumed from them",
        )
        self._add(
            "kafka-brokers-down",
            metric=self.metric(BROKERS, cloudwatch.Stats.MINIMUM),
            threshold=self.replicas,
            comparison=LT,
            periods=BROKERS_MINUTES,
            missing=self._silence,
            description=f"Kafka brokers in the cluster metadata below {self.replicas}, {BROKERS_MINUTES} minutes "
            "running"
            + (" (or no data: the kafka-metrics collector or Kafka is down)" if self._silence == DOWN else ""),
        )
        self._add(
            "kafka-volume-used",
            metric=self.volume_used_pct(),
            threshold=self.health.disk_used_pct,
            comparison=GT,
            periods=VOLUME_PERIODS,
            missing=self._silence,
            description=f"Fullest Kafka data volume over {self.health.disk_used_pct:g} % used, "
            f"{VOLUME_PERIODS * 5} minutes running: retention.bytes keeps the topics within "
            f"{config.kafka.topic_disk_share_pct} %, so something else fills it"
            + (" (or no data: the kubelet scrape or the collector is down)" if self._silence == DOWN else ""),
        )

    # --- metrics --------------------------------------------------------------------------------------------

    def metric(
        self,
        series: Series,
        statistic: str,
        *,
        dimensions: dict[str, str] | None = None,
        period: Duration = MINUTE,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        assert set(dimensions or {}) == set(series.dimensions), series.name
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=series.name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
            label=label,
        )

    def lag(self, group: str, statistic: str = cloudwatch.Stats.MINIMUM) -> cloudwatch.Metric:
        return self.metric(LAG, statistic, dimensions={GROUP_DIMENSION: group}, label=f"{group} lag")

    def lag_growing(self, group: str) -> cloudwatch.MathExpression:
        """1 for a minute whose lag is over the threshold and did not fall since the minute before, else 0."""
        return cloudwatch.MathExpression(
            expression=f"IF((lag > {self.health.lag_messages}) AND (FILL(RATE(lag), 0) >= 0), 1, 0)",
            using_metrics={"lag": self.lag(group)},
            label=f"{group}: lag over {self.health.lag_messages} and not falling",
            period=MINUTE,
        )

    def offline_partitions(self) -> cloudwatch.MathExpression:
        """Partitions minus partitions with a leader; FILL: with every partition offline no leader series exists."""
        return cloudwatch.MathExpression(
            expression="partitions - FILL(led, 0)",
            using_metrics={
                "partitions": self.metric(PARTITIONS, cloudwatch.Stats.MAXIMUM),
                "led": self.metric(LED_PARTITIONS, cloudwatch.Stats.MINIMUM),
            },
            label="offline partitions",
            period=MINUTE,
        )

    def volume_pct(self, claim: str, index: int) -> cloudwatch.MathExpression:
        dimensions = {CLAIM_DIMENSION: claim}
        return cloudwatch.MathExpression(
            expression=f"100 * used{index} / capacity{index}",
            using_metrics={
                f"used{index}": self.metric(
                    VOLUME_USED, cloudwatch.Stats.MAXIMUM, dimensions=dimensions, period=VOLUME_PERIOD
                ),
                f"capacity{index}": self.metric(
                    VOLUME_CAPACITY, cloudwatch.Stats.MINIMUM, dimensions=dimensions, period=VOLUME_PERIOD
                ),
            },
            label=f"{claim} used %",
            period=VOLUME_PERIOD,
        )

    def volume_used_pct(self) -> cloudwatch.MathExpression:
        """The fullest broker volume (an alarm's math reads at most 10 metrics: 2 per broker, 5 brokers at most)."""
        volumes = {f"pct{i}": self.volume_pct(claim, i) for i, claim in enumerate(data_claims(self._config))}
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(volumes)}])",
            using_metrics=volumes,
            label="fullest Kafka volume used %",
            period=VOLUME_PERIOD,
        )

    # --- alarms ---------------------------------------------------------------------------------------------

    def _lag_alarm(self, group: str) -> None:
        minutes = self.health.lag_growing_minutes
        self._add(
            f"kafka-consumer-lag-{slug(group)}",
            metric=self.lag_growing(group),
            threshold=1,
            comparison=GTE,
            periods=minutes,
            missing=QUIET,
            description=f"Consumer group {group}: lag over {self.health.lag_messages} messages and not falling, "
            f"{minutes} minutes running (its consumer is stuck or falling behind)",
        )

    def _add(
        self,
        name: str,
        *,
        metric: cloudwatch.IMetric,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        periods: int,
        missing: cloudwatch.TreatMissingData,
        description: str,
    ) -> None:
        alarm = paging_alarm(
            self,
            name,
            action=self._action,
            alarm_name=f"{self._prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=missing,
        )
        self.alarms.append(alarm)

    # --- dashboard ------------------------------------------------------------------------------------------

    def widgets(self) -> list[cloudwatch.IWidget]:
        """Lag per group, brokers and partitions, volume use: the series the alarms read, their thresholds drawn."""
        claims = data_claims(self._config)
        return [
            cloudwatch.GraphWidget(
                title="Kafka consumer lag (messages)",
                left=[self.lag(g, cloudwatch.Stats.MAXIMUM) for g in self.health.consumer_groups],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=self.health.lag_messages, label="alarm")],
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="Kafka brokers up / partitions not healthy",
                left=[self.metric(BROKERS, cloudwatch.Stats.MINIMUM, label="brokers up")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=self.replicas, label="replicas")],
                right=[
                    self.metric(UNDER_REPLICATED, cloudwatch.Stats.MAXIMUM, label="under-replicated"),
                    self.offline_partitions(),
                ],
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="Kafka volumes used (%)",
                left=[self.volume_pct(claim, i) for i, claim in enumerate(claims)],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=self.health.disk_used_pct, label="alarm")],
                width=8,
                height=6,
            ),
        ]

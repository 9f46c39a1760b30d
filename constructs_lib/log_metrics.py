"""ERROR-line counts from the application log group: one metric per service and one in total.

The patterns are written for what Fluent Bit actually ships (k8s_charts/logging.py): every container
line of the erp namespace becomes one JSON event. The kubernetes filter adds a ``kubernetes`` object
(``namespace_name``, ``pod_name``, ``container_name``, ...; labels and annotations are off, so
``kubernetes.labels.app`` is *not* there). With ``Merge_Log On`` / ``Keep_Log Off`` a JSON log line's
keys are lifted to the top level and the raw line dropped; a plain-text line stays in ``log``.

An event is an ERROR line when either
  * it was a JSON log line whose ``level`` is exactly ``"ERROR"`` (logstash-logback-encoder, Spring Boot
    structured logging), or
  * its plain-text ``log`` starts with an ISO date and time (optionally in ``[...]``, Kafka's log4j
    layout) followed by the level token ``ERROR`` (Spring Boot's default console layout).
Matching is case-sensitive and positional: ``"level": "error"``, WARN/INFO lines, and lines that only
mention error/ERROR in their message are not counted; nor are stack-trace continuation lines (each is
its own event without a timestamp), so one logged error counts once. FATAL is not counted.

A service is picked out by ``kubernetes.container_name`` (each microservice's container carries the
service's name): metric filters cannot filter on the log stream. The total counts every container in
the namespace (services, Kafka, the X-Ray daemon). tests/unit/test_metric_filter.py runs these patterns
against sample events with an evaluator checked against CloudWatch's documented examples.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

# Leading ISO date, the rest of the timestamp, then the level token. CloudWatch regexes allow no
# spaces or parentheses: \s stands in for the space, and there is no group to alternate in.
PLAIN_TEXT_ERROR_REGEX = r"^\[?\d{4}-\d{2}-\d{2}[T\s]\S+\s+ERROR\s"
ERROR_CONDITION = f'$.level = "ERROR" || $.log = %{PLAIN_TEXT_ERROR_REGEX}%'
# CloudWatch quota: at most 5 metric filters with a regex per log group.
MAX_REGEX_FILTERS_PER_LOG_GROUP = 5
TOTAL_METRIC = "ErrorLines"


def error_pattern(container: str | None = None) -> str:
    """The filter pattern for ERROR lines of one container (by name), or of every container."""
    if container is None:
        return f"{{ {ERROR_CONDITION} }}"
    return f'{{ $.kubernetes.container_name = "{container}" && ({ERROR_CONDITION}) }}'


def service_metric_name(service: str) -> str:
    return f"{TOTAL_METRIC}-{service}"


class ErrorLineMetrics(Construct):
    """Metric filters on the application log group; ``total`` and ``per_service`` are 5-minute sums."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        log_group: logs.ILogGroup,
        services: Sequence[str],
        metric_namespace: str,
    ) -> None:
        super().__init__(scope, id)
        if len(services) + 1 > MAX_REGEX_FILTERS_PER_LOG_GROUP:
            raise ValueError(
                f"{len(services)} services + the total need {len(services) + 1} regex metric filters on one log "
                f"group; CloudWatch allows {MAX_REGEX_FILTERS_PER_LOG_GROUP}"
            )
        self.metric_namespace = metric_namespace
        self.total = self._filter("Total", log_group, error_pattern(), TOTAL_METRIC, "all-containers-errors")
        self.per_service: dict[str, cloudwatch.Metric] = {
            service: self._filter(
                service, log_group, error_pattern(service), service_metric_name(service), f"{service}-errors"
            )
            for service in services
        }

    def _filter(
        self, id: str, log_group: logs.ILogGroup, pattern: str, metric_name: str, filter_name: str
    ) -> cloudwatch.Metric:
        metric_filter = logs.MetricFilter(
            self,
            id,
            log_group=log_group,
            filter_name=filter_name,
            filter_pattern=logs.FilterPattern.literal(pattern),
            metric_namespace=self.metric_namespace,
            metric_name=metric_name,
            metric_value="1",
            # 0 for every non-matching event: "no errors" is data, only "no logs at all" is missing.
            default_value=0,
            unit=cloudwatch.Unit.COUNT,
        )
        return metric_filter.metric(statistic=cloudwatch.Stats.SUM, period=Duration.minutes(5))

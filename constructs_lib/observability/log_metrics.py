"""ERROR-line counts from the application log group: one total, and the same count per container.

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

Two filters, whatever the number of services (CloudWatch allows 5 regex filters per log group, and the
plain-text condition needs a regex):
  * ``ErrorLines`` without dimensions: every container of the namespace (services, Kafka, the X-Ray
    daemon), 0 for every other event, so "no errors" is data and the alarm reads it;
  * ``ErrorLines`` with the dimension ``Container`` = ``kubernetes.container_name`` (each microservice's
    container carries the service's name; metric filters cannot see the log stream). CloudWatch allows no
    default value on a filter with dimensions, so a container without errors has no data point; the
    dimension's values are bounded by the namespace's containers (CloudWatch disables a filter at 1000).
tests/unit/test_metric_filter.py runs the pattern and the dimension against sample events with an
evaluator checked against CloudWatch's documented examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.observability.metrics import FIVE_MINUTES

# Leading ISO date, the rest of the timestamp, then the level token. CloudWatch regexes allow no
# spaces or parentheses: \s stands in for the space, and there is no group to alternate in.
PLAIN_TEXT_ERROR_REGEX = r"^\[?\d{4}-\d{2}-\d{2}[T\s]\S+\s+ERROR\s"
ERROR_PATTERN = f'{{ $.level = "ERROR" || $.log = %{PLAIN_TEXT_ERROR_REGEX}% }}'
TOTAL_METRIC = "ErrorLines"
CONTAINER_DIMENSION = "Container"
CONTAINER_FIELD = "$.kubernetes.container_name"


@dataclass(frozen=True)
class FilterSpec:
    """One metric filter as CloudWatch sees it (the tests evaluate these, the construct deploys them)."""

    id: str
    filter_name: str
    pattern: str
    dimensions: Mapping[str, str] | None = None

    @property
    def default_value(self) -> float | None:
        return None if self.dimensions else 0


FILTERS = (
    FilterSpec("Total", "all-containers-errors", ERROR_PATTERN),
    FilterSpec("ByContainer", "errors-by-container", ERROR_PATTERN, {CONTAINER_DIMENSION: CONTAINER_FIELD}),
)


class ErrorLineMetrics(Construct):
    """The filters on the application log group; ``total`` and ``per_service`` are 5-minute sums."""

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
        self.metric_namespace = metric_namespace
        for spec in FILTERS:
            logs.MetricFilter(
                self,
                spec.id,
                log_group=log_group,
                filter_name=spec.filter_name,
                filter_pattern=logs.FilterPattern.literal(spec.pattern),
                metric_namespace=metric_namespace,
                metric_name=TOTAL_METRIC,
                metric_value="1",
                dimensions=spec.dimensions,
                default_value=spec.default_value,
                unit=cloudwatch.Unit.COUNT,
            )
        self.total = self._metric({})
        self.per_service: dict[str, cloudwatch.Metric] = {
            service: self._metric({CONTAINER_DIMENSION: service}) for service in services
        }

    def _metric(self, dimensions: dict[str, str]) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.metric_namespace,
            metric_name=TOTAL_METRIC,
            dimensions_map=dimensions or None,
            statistic=cloudwatch.Stats.SUM,
            period=FIVE_MINUTES,
        )

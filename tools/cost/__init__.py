"""Monthly cost estimate of one environment, read from the synthesized templates.

It reads CloudFormation, not the CDK code, so it prices what would really be
deployed. Prices come from tools/cost/prices-ap-northeast-2.yaml; whatever that file
cannot price is listed as *unpriced* with the reason, never counted as $0, and a
resource type the estimator does not know is listed too, never dropped.

    python -m tools.cost --env dev [--cdk-out cdk.out] [--format text|markdown|json]
                         [--compare BASE_CDK_OUT | --compare-graviton] [--include-pipeline]

Split by job: prices.py (the price sheet), model.py (what an estimate holds), pricers.py (one pricer
per resource type), backup.py (AWS Backup's recovery points and copies, the restore drill's state machine),
schedules.py (runs per month and run times of a schedule expression), assembly.py (reading the
synthesized templates), output.py (text, markdown, JSON, delta), cli.py (the command line).
"""

from tools.cost.assembly import StackArtifact, estimate, graviton_what_if, stack_artifacts
from tools.cost.cli import main
from tools.cost.model import ENV_WIDE, Context, Estimate, Free, Line, Resource, Unpriced
from tools.cost.output import FOOTNOTE, compare, to_json, to_markdown, to_text
from tools.cost.pricers import (
    BUILD_MINUTES_PER_PROJECT_RUN,
    COLLECTOR_INTERVAL_SECONDS,
    ECR_GB_PER_REPOSITORY,
    EMF_BYTES_PER_EVENT,
    PIPELINE_ACTION_MINUTES_PER_RUN,
    PIPELINE_RUNS_PER_MONTH,
    PRICERS,
    SCHEDULED_RUN_SECONDS,
)
from tools.cost.prices import HOURS_PER_MONTH, PRICE_FILE, Price, PriceBook, Unpriceable
from tools.cost.schedules import runs_per_month

__all__ = [
    "BUILD_MINUTES_PER_PROJECT_RUN",
    "COLLECTOR_INTERVAL_SECONDS",
    "ECR_GB_PER_REPOSITORY",
    "EMF_BYTES_PER_EVENT",
    "ENV_WIDE",
    "FOOTNOTE",
    "HOURS_PER_MONTH",
    "PIPELINE_ACTION_MINUTES_PER_RUN",
    "PIPELINE_RUNS_PER_MONTH",
    "PRICERS",
    "PRICE_FILE",
    "SCHEDULED_RUN_SECONDS",
    "Context",
    "Estimate",
    "Free",
    "Line",
    "Price",
    "PriceBook",
    "Resource",
    "StackArtifact",
    "Unpriceable",
    "Unpriced",
    "compare",
    "estimate",
    "graviton_what_if",
    "main",
    "runs_per_month",
    "stack_artifacts",
    "to_json",
    "to_markdown",
    "to_text",
]

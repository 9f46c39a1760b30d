"""Per-environment policies shared by every construct: retention and removal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

if TYPE_CHECKING:
    from config.models import EnvironmentConfig

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """Config has already restricted days to CloudWatch's accepted values."""
    return _RETENTION[days]


def log_removal(production: bool) -> RemovalPolicy:
    """Prod keeps its logs when a stack goes; dev cleans up after itself."""
    return retain_fixed_name(production)


def retain_fixed_name(production: bool) -> RemovalPolicy:
    """For a prod resource with a fixed physical name: kept on update or delete, but deleted when its own
    first create rolls back (DeletionPolicy RetainExceptOnCreate), so the retry does not fail with
    "already exists" on an orphan of the failed attempt."""
    return RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if production else RemovalPolicy.DESTROY


def data_removal(production: bool, choice: str = "snapshot") -> RemovalPolicy:
    """DESTROY only outside production (config enforces it; this is the second lock)."""
    if not production and choice == "destroy":
        return RemovalPolicy.DESTROY
    return RemovalPolicy.RETAIN if choice == "retain" else RemovalPolicy.SNAPSHOT


def owned_log_group(scope: Construct, id: str, *, log_group_name: str, config: EnvironmentConfig) -> logs.LogGroup:
    """A group AWS would create itself with no retention: owning it first bounds the cost."""
    return logs.LogGroup(
        scope,
        id,
        log_group_name=log_group_name,
        retention=retention(config.observability.log_retention_days),
        removal_policy=log_removal(config.production),
    )

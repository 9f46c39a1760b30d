"""What every config model shares: strict models, value types, and the platform's fixed limits."""

from __future__ import annotations

import re
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
)

# Retention periods CloudWatch Logs accepts (anything else is rejected by the API).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Kubernetes minors in EKS standard support, mapped to the kubectl layer package
# of the same minor (a mismatched kubectl is unsupported by the handler). 1.34 left standard support on
# 2026-12-02; 1.35 stays for the step to 1.36 (config/kubernetes-versions.yaml has the calendar).
SUPPORTED_KUBERNETES = {"1.35": "v35", "1.36": "v36"}

# MySQL minors allowed: 8.0 is past standard support (billed extended support).
SUPPORTED_MYSQL = re.compile(r"^8\.4\.\d+$")

# Tags CI pushes for throwaway builds; the ECR lifecycle expires them, so no environment may pin one.
CI_TAG_PREFIX = "ci-"
# Production's EKS public endpoint: an office/VPN range, never the internet (/0) or a provider-sized block.
MIN_PROD_ENDPOINT_PREFIX = {4: 16, 6: 48}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
# Lambda refuses a reservation that leaves fewer than this many units of the account's concurrency unreserved.
UNRESERVED_CONCURRENCY = 100
# The employee service's resource path: the gateway routes it to the Lambda, the restricted routes guard
# parts of it, and the Lambda (bundled on its own, lambda_handlers/employee/app.py) serves it.
EMPLOYEES_PATH = "/api/employees"

AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", max_length=254)]
IamRoleArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]
K8sName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)]
Quantity = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?(m|Mi|Gi|Ki)?$")]
HHMM = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


def _time_zone(name: str) -> str:
    if name not in available_timezones():
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. Asia/Seoul)")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. Asia/Seoul)") from None
    return name


TimeZone = Annotated[str, AfterValidator(_time_zone)]


def _retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of CloudWatch's retention periods {LOG_RETENTION_DAYS}")
    return days


RetentionDays = Annotated[int, AfterValidator(_retention)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

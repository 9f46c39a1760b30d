"""Deploy-time values only CDK knows; any string may be an unresolved CDK token, so charts place them verbatim."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class PlatformValues:
    region: str
    # Source of the NLB's traffic (IP targets: its private addresses) and of RDS / the cache.
    vpc_cidr: str
    db_host: str
    db_port: str
    db_name: str
    # RDS-generated JSON {username, password, host, port, dbname, engine}.
    db_secret_arn: str
    cache_host: str
    cache_port: str
    # JSON {"authToken": "..."} (names.CACHE_SECRET_JSON_KEY).
    cache_secret_arn: str
    # Service name -> NLB target group ARN.
    target_group_arns: dict[str, str]
    nlb_security_group_id: str
    # Service name -> full image URI (repo:tag or repo@digest).
    images: dict[str, str]
    # CloudWatch log group Fluent Bit writes to (env.application_log_group, created by CDK with retention).
    log_group_name: str

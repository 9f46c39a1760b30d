"""X-Ray sampling for the ERP services and a group that gathers their traces.

What is traced, and by whom:
  * the Spring services send segments to the ADOT collector behind the `xray-daemon` Service (the charts
    hand every pod AWS_XRAY_DAEMON_ADDRESS; k8s_charts/tracing.py); its X-Ray receiver proxies the SDKs'
    sampling calls to these rules, so a rate change needs no redeploy;
  * the employee Lambda runs with active tracing (set by the Api stack), sampled by Lambda itself;
  * the HTTP API is *not* traced: API Gateway HTTP APIs do not support X-Ray (only REST APIs do), so
    a trace starts at the first service or the Lambda; the API's access log carries the request id.
Sampling rules are account-wide and matched by service name: each rule's name carries the environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from aws_cdk import aws_xray as xray
from constructs import Construct

# X-Ray names: rule names up to 32 characters, group names up to 32.
MAX_NAME = 32


def service_name_pattern(services: Sequence[str]) -> str:
    """The narrowest `*suffix` or `prefix*` glob every service name matches (`*-service` for the ERP
    services, `svc-*` for svc-01 ... svc-12); `*` alone would sample every service in the account."""
    suffix = os.path.commonprefix([name[::-1] for name in services])[::-1]
    prefix = os.path.commonprefix(list(services))
    return f"{prefix}*" if len(prefix) > len(suffix) else f"*{suffix}"


class TraceSampling(Construct):
    """A fixed-rate rule for the services, a never-sample rule for health checks, and a trace group."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        services: Sequence[str],
        fixed_rate: float,
        extra_services: Sequence[str] = (),
        # HTTP health checks of the hosted services end in /health (e.g. GET /notifications/health).
        health_path_pattern: str = "*/health",
    ) -> None:
        super().__init__(scope, id)
        for candidate in (f"{name}-services", f"{name}-health"):
            if len(candidate) > MAX_NAME:
                raise ValueError(f"X-Ray rule name {candidate!r} is longer than {MAX_NAME} characters")
        pattern = service_name_pattern(services)

        def rule(rule_id: str, rule_name: str, *, priority: int, rate: float, reservoir: int, path: str):
            return xray.CfnSamplingRule(
                self,
                rule_id,
                sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                    rule_name=rule_name,
                    priority=priority,
                    fixed_rate=rate,
                    reservoir_size=reservoir,
                    service_name=pattern,
                    service_type="*",
                    host="*",
                    http_method="*",
                    url_path=path,
                    resource_arn="*",
                    version=1,
                ),
            )

        # Probes hit every pod every few seconds; tracing them would spend the reservoir on noise.
        self.health_rule = rule(
            "HealthChecks", f"{name}-health", priority=100, rate=0.0, reservoir=0, path=health_path_pattern
        )
        # One request a second per service instance, then `fixed_rate` of the rest.
        self.services_rule = rule("Services", f"{name}-services", priority=200, rate=fixed_rate, reservoir=1, path="*")

        filter_expression = " OR ".join(f'service("{service}")' for service in [*services, *extra_services])
        self.group = xray.CfnGroup(self, "Group", group_name=name, filter_expression=filter_expression)

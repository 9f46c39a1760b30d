"""Deploy-time values only CDK knows; any string may be an unresolved CDK token, so charts place them verbatim."""

from __future__ import annotations

from dataclasses import dataclass, fields

from config.hosting import nlb_private_ips


@dataclass(frozen=True, kw_only=True)
class PlatformValues:
    region: str
    # Where RDS and the cache live (the data-store egress rules), and the control plane's ENIs.
    vpc_cidr: str
    # ClusterIP of the `default/kubernetes` Service, which in-cluster API clients dial (add-on egress policies).
    # Read from the cluster at deploy time: EKS picks the service range when none is set, and CloudFormation
    # has no attribute for it.
    api_server_service_ip: str
    # The service NLB's fixed private addresses (one per private subnet): the only source the services admit.
    nlb_private_ips: list[str]
    db_host: str
    db_port: str
    db_name: str
    # Per-consumer MySQL secrets erp/{env}/mysql/<service> (JSON {username, password}), keyed by service name:
    # required for every service that declares `mysql` (none in the committed config). The employee/database
    # side creates them; the Workloads stack passes them here.
    mysql_secret_arns: dict[str, str]
    cache_host: str
    cache_port: str
    # JSON {"authToken": "..."} (names.CACHE_SECRET_JSON_KEY).
    cache_secret_arn: str
    # JSON {"uri": "..."}: erp/{env}/mongodb, value set by an operator (README: Deploy).
    mongodb_secret_arn: str
    # Host of the employee Lambda's IAM-only function URL (xxxx.lambda-url.<region>.on.aws).
    employee_function_url_host: str
    # Service name -> NLB target group ARN.
    target_group_arns: dict[str, str]
    nlb_security_group_id: str
    # Service name -> full image URI (repo:tag or repo@digest).
    images: dict[str, str]
    # `<account>.dkr.ecr.<region>.<suffix>` of the stage: third-party images come from its pull-through cache.
    registry_host: str
    # CloudWatch log group Fluent Bit writes to (env.application_log_group, created by CDK with retention).
    log_group_name: str


def token_values(env, first: int = 1000) -> PlatformValues:
    """Every deploy-time value an opaque token, as the CDK side passes them at synth: for rendering the charts
    where only names, namespaces and shapes matter (tests, the smoke test's workload inventory). The NLB
    addresses are computed from config at synth, never a token (NetworkPolicy peers must be literal)."""
    counter = iter(range(first, first + 100000))

    def token() -> str:
        return f"${{Token[TOKEN.{next(counter)}]}}"

    values: dict[str, object] = {}
    for field in fields(PlatformValues):
        if field.name in ("target_group_arns", "images"):
            values[field.name] = {s.name: token() for s in env.services}
        elif field.name == "mysql_secret_arns":
            values[field.name] = {s.name: token() for s in env.services if "mysql" in s.uses}
        elif field.name == "nlb_private_ips":
            values[field.name] = nlb_private_ips(env.network)
        else:
            values[field.name] = token()
    return PlatformValues(**values)

"""What a hosted service declares: its routes, its dependencies, its health check.

Kept apart from ``models.py`` because it is the one contract between the platform and
the applications: everything a service receives (variables, secrets, egress, routes,
probes) is derived from these fields and from nothing else.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

# What a service may declare under `uses:`; another service's name (e.g. notification-service) is allowed too.
#   mongodb      -> MONGODB_URI from erp/{env}/mongodb, egress 27017 to mongodb.egress_cidrs
#   kafka        -> SPRING_KAFKA_BOOTSTRAP_SERVERS (+ KAFKA_TOPICS_<TOPIC> for kafka_topics), egress to the brokers
#   cache        -> REDIS_HOST, REDIS_PORT (+ SPRING_DATA_REDIS_PASSWORD/SSL when the cache has TLS + AUTH)
#   mysql        -> SPRING_DATASOURCE_URL/USERNAME/PASSWORD from erp/{env}/mysql/<service>, egress 3306
#   xray         -> AWS_XRAY_DAEMON_ADDRESS, egress to the ADOT collector (UDP + TCP 2000, OTLP 4317/4318)
#   employee-api -> EMPLOYEE_SERVICE_URL (the in-cluster SigV4 proxy, ends in /api), egress to the proxy
#   <service>    -> <SERVICE_NAME>_URL, e.g. NOTIFICATION_SERVICE_URL, egress to that service's pods
PLATFORM_DEPENDENCIES = ("mongodb", "kafka", "cache", "mysql", "xray", "employee-api")

RoutePath = Annotated[str, StringConstraints(pattern=r"^/api(/[a-z0-9-]+)+$")]
HttpPath = Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z0-9._-]+)+$")]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "ANY"]
GroupName = Annotated[str, StringConstraints(pattern=r"^[\w+=,.@-]{1,128}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteConfig(_Strict):
    """``METHOD path`` and ``METHOD path/{proxy+}`` at the gateway; the service receives ``rewrite[/proxy]``.

    ``rewrite`` None = path unchanged (the employee Lambda keeps /api); ``bare: false`` = only the
    ``{proxy+}`` route (the processing service has nothing at /process itself). ``methods`` allow-lists
    what reaches the backend at all: anything else finds no route (404) at the gateway, so a method the
    backend serves but the outside must not call (notification-service's POST /notifications/send) is
    simply not routed. ``groups``: every route of this path needs one of these groups' scopes; without
    them a token needs the verified-identity scope (constructs_lib/api/routes.py).
    """

    path: RoutePath
    rewrite: HttpPath | None = None
    bare: bool = True
    methods: list[Method] = Field(default=["ANY"], min_length=1)
    groups: list[GroupName] = []

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("methods: each method once")
        if "ANY" in value and len(value) > 1:
            raise ValueError("methods: ANY already covers every method; list either ANY or the methods")
        return value

    def target(self, proxy: str | None = None) -> str:
        """Path the backend receives for a request to ``path[/proxy]``."""
        base = self.rewrite if self.rewrite is not None else self.path
        return f"{base}/{proxy}" if proxy else base


class RestrictedRoute(_Strict):
    """A route only members of ``groups`` may call (the gateway checks the scope f"{project}/{group}")."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    # A route path of this API: a configured route, its {proxy+} form, or a more specific path under it.
    path: Annotated[str, StringConstraints(pattern=r"^/api(/([a-z0-9-]+|\{[a-zA-Z]+\+?\}))+$")]
    groups: list[GroupName] = Field(min_length=1)


class HealthCheckConfig(_Strict):
    """One check for the pod probes AND the NLB target group, so both agree. TCP by default: the hosted
    Spring services have no Actuator; HTTP only on a path the service really serves."""

    type: Literal["tcp", "http"] = "tcp"
    path: HttpPath | None = None

    @model_validator(mode="after")
    def _path(self) -> HealthCheckConfig:
        if (self.type == "http") != (self.path is not None):
            raise ValueError("health: give a path exactly when type is http")
        return self


class MongoDbConfig(_Strict):
    """MongoDB lives outside the platform (e.g. Atlas); its URI is in Secrets Manager erp/{env}/mongodb."""

    # Where the pods may connect on 27017 (Atlas private endpoint / peering range, or its public IPs).
    egress_cidrs: list[str] = []
    port: int = Field(default=27017, ge=1, le=65535)

    @field_validator("egress_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for block in value:
            try:
                net = ipaddress.IPv4Network(block, strict=True)
            except ValueError as exc:
                raise ValueError(f"{block!r} is not a valid IPv4 CIDR block ({exc})") from None
            if net.prefixlen == 0:
                raise ValueError("0.0.0.0/0 would let the service reach anything on the MongoDB port")
        return value


class EmployeeProxyConfig(_Strict):
    """The in-cluster `employee-service` (SigV4 proxy to the employee Lambda's IAM-only function URL)."""

    # The image is k8s_charts/images.SIGV4_PROXY (through the ECR pull-through cache, scanned by the prod gate).
    replicas: int = Field(default=1, ge=1, le=10)


def url_variable(service_name: str) -> str:
    """notification-service -> NOTIFICATION_SERVICE_URL (the name the approval service reads)."""
    return re.sub(r"[^A-Z0-9]", "_", service_name.upper()) + "_URL"


def topic_variable(topic: str) -> str:
    """approval-requests -> KAFKA_TOPICS_APPROVAL_REQUESTS (Spring's relaxed binding of kafka.topics.*)."""
    return "KAFKA_TOPICS_" + re.sub(r"[^A-Z0-9]", "_", topic.upper())


def subnet_cidrs(network) -> dict[str, list[str]]:
    """The subnets CDK's Vpc will create from ``network`` (a NetworkConfig): kind -> one block per AZ.

    Same sequential, size-aligned allocation as NetworkConfig._fits: public subnets first, then private, then
    isolated. tests/infra/test_network.py checks this against the synthesized template.
    """
    net = ipaddress.IPv4Network(network.vpc_cidr)
    offset = 0
    blocks: dict[str, list[str]] = {}
    for kind, mask in (
        ("public", network.subnet_masks.public),
        ("private", network.subnet_masks.private),
        ("isolated", network.subnet_masks.isolated),
    ):
        size = 2 ** (32 - mask)
        for _ in range(network.az_count):
            start = -(-offset // size) * size
            blocks.setdefault(kind, []).append(str(ipaddress.IPv4Network((int(net.network_address) + start, mask))))
            offset = start + size
    return blocks


def private_subnet_cidrs(network) -> list[str]:
    """The private-with-egress subnets (nodes, pods, the NLB, the Lambdas in the VPC), one per AZ."""
    return subnet_cidrs(network)["private"]


def isolated_subnet_cidrs(network) -> list[str]:
    """The isolated subnets (the database's and the cache's subnet groups), one per AZ."""
    return subnet_cidrs(network)["isolated"]


def nlb_private_ips(network) -> list[str]:
    """The service NLB's fixed address in each private subnet: the subnet's last usable address (AWS reserves
    the very last one). The NetworkPolicies admit exactly these /32s."""
    return [str(ipaddress.IPv4Network(block)[-2]) for block in private_subnet_cidrs(network)]

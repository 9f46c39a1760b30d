"""The gateway's route table, computed once from config: the API stack builds it, the pipeline's smoke
test probes it, and the contract test (tests/contract) checks it against what the real clients call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.hosting import RouteConfig
from config.models import EnvironmentConfig
from config.sections import VERIFIED_SCOPE

EMPLOYEE_FUNCTION = "employee-function"  # target name of the Lambda routes
PROXY = "{proxy+}"


@dataclass(frozen=True)
class PlannedRoute:
    method: str  # "ANY" or one HTTP method
    path: str  # HTTP API route path, e.g. /api/approvals/{proxy+}
    target: str  # a service name or EMPLOYEE_FUNCTION
    # overwrite:path value for the integration (None: the backend receives the request path unchanged).
    backend_path: str | None
    # OAuth scopes of which the caller's access token needs one: the verified-identity scope, or the
    # scopes of the groups the route is restricted to.
    scopes: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def backend_path(route: RouteConfig, path: str) -> str | None:
    """The overwrite:path mapping for a request on ``path`` (a route path under ``route.path``).

    ``/api/approvals/{proxy+}`` with rewrite ``/approvals`` -> ``/approvals/$request.path.proxy``.
    """
    if route.rewrite is None:
        return None
    rest = path[len(route.path) :]
    rest = re.sub(r"\{([A-Za-z]+)\+?\}", r"$request.path.\1", rest)
    return route.rewrite + rest


def _owner(config: EnvironmentConfig, path: str) -> tuple[str, RouteConfig]:
    owners = [(s.name, r) for s in config.services for r in s.routes] + [
        (EMPLOYEE_FUNCTION, r) for r in config.employee_function.routes
    ]
    matches = [(t, r) for t, r in owners if path == r.path or path.startswith(r.path + "/")]
    return max(matches, key=lambda m: len(m[1].path))


def group_scopes(config: EnvironmentConfig, groups) -> tuple[str, ...]:
    """The access-token scopes (pre-token-generation trigger) that membership in ``groups`` brings."""
    return tuple(f"{config.project}/{group}" for group in groups)


def verified_scope(config: EnvironmentConfig) -> str:
    """Granted by the pre-token trigger only to an address proved by the sign-up link (or set by an admin)."""
    return f"{config.project}/{VERIFIED_SCOPE}"


def route_plan(config: EnvironmentConfig) -> list[PlannedRoute]:
    """Every authenticated route: each configured path (and its ``{proxy+}``) for its methods, then the
    group-restricted method routes. A restricted route with the key of a configured one replaces it; otherwise
    it is more specific (a method beats ANY, a path beats {proxy+}) and API Gateway picks it first.

    No route goes without a scope: a token without the verified-identity scope reaches nothing.
    """
    planned: dict[str, PlannedRoute] = {}
    for target, route in [(s.name, r) for s in config.services for r in s.routes] + [
        (EMPLOYEE_FUNCTION, r) for r in config.employee_function.routes
    ]:
        scopes = group_scopes(config, route.groups) if route.groups else (verified_scope(config),)
        paths = ([route.path] if route.bare else []) + [f"{route.path}/{PROXY}"]
        for path in paths:
            for method in route.methods:
                plan = PlannedRoute(method, path, target, backend_path(route, path), scopes)
                planned[plan.key] = plan
    for restricted in config.api.restricted_routes:
        target, route = _owner(config, restricted.path)
        plan = PlannedRoute(
            restricted.method,
            restricted.path,
            target,
            backend_path(route, restricted.path),
            group_scopes(config, restricted.groups),
        )
        planned[plan.key] = plan
    return list(planned.values())


def smoke_paths(config: EnvironmentConfig) -> list[str]:
    """One concrete URL path per configured route that serves GET, for the anonymous-caller smoke test (each
    must be 401: the authorizer answers before any route's backend or scope check)."""
    return [
        route.path if route.bare else f"{route.path}/smoke-test"
        for route in config.all_routes
        if {"GET", "ANY"} & set(route.methods)
    ]

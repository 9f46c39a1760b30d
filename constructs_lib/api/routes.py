"""The gateway's route table, computed once from config: the API stack builds it, the pipeline's smoke
test probes it, and the contract test (tests/contract) checks it against what the real clients call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.hosting import RouteConfig
from config.models import EnvironmentConfig

EMPLOYEE_FUNCTION = "employee-function"  # target name of the Lambda routes
PROXY = "{proxy+}"


@dataclass(frozen=True)
class PlannedRoute:
    method: str  # "ANY" or one HTTP method (a restricted route)
    path: str  # HTTP API route path, e.g. /api/approvals/{proxy+}
    target: str  # a service name or EMPLOYEE_FUNCTION
    # overwrite:path value for the integration (None: the backend receives the request path unchanged).
    backend_path: str | None
    # OAuth scopes of which the caller's access token needs one (None: any valid token).
    scopes: tuple[str, ...] | None = None

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


def route_plan(config: EnvironmentConfig) -> list[PlannedRoute]:
    """Every authenticated route: ``ANY`` on each configured path (and its ``{proxy+}``), then the
    group-restricted method routes, which take precedence over ``ANY`` on the same path."""
    planned = []
    for target, route in [(s.name, r) for s in config.services for r in s.routes] + [
        (EMPLOYEE_FUNCTION, r) for r in config.employee_function.routes
    ]:
        paths = ([route.path] if route.bare else []) + [f"{route.path}/{PROXY}"]
        planned += [PlannedRoute("ANY", p, target, backend_path(route, p)) for p in paths]
    for restricted in config.api.restricted_routes:
        target, route = _owner(config, restricted.path)
        scopes = tuple(f"{config.project}/{group}" for group in restricted.groups)
        planned.append(
            PlannedRoute(restricted.method, restricted.path, target, backend_path(route, restricted.path), scopes)
        )
    return planned


def smoke_paths(config: EnvironmentConfig) -> list[str]:
    """One concrete URL path per configured route, for the anonymous-caller smoke test (each must be 401)."""
    paths = []
    for route in config.all_routes:
        paths.append(route.path if route.bare else f"{route.path}/smoke-test")
    return paths

"""The gateway model itself (route precedence as AWS documents it), and the property every scoped route must
keep: no method or path spelling reaches the backend handler it protects without one of its scopes.

The protected handlers are discovered, not listed: for every backend endpoint (the Spring fakes' controller
paths, the employee Lambda's Powertools routes) the route table is inverted to the gateway path that reaches
it; a request there with every scope picks a route, and if that route has AuthorizationScopes, the handler it
reaches is protected by them. Then a token with every OTHER scope tries every HTTP method on variants of that
path (trailing slash, `..` and `.` segments, %2F-encoded and doubled slashes, `;` path parameters, case changes), in both views of
how API Gateway may read a path (tests/support/http_api.py); each is sent as far as the gateway would send it,
and the backend's own router says which handler that would reach.
"""

from __future__ import annotations

import re

import pytest

from tests.journeys.conftest import ENVIRONMENTS
from tests.journeys.harness import World
from tests.support.cloudformation import Stacks
from tests.support.cognito import SIGNIN_SCOPE, Clock, TokenIssuer
from tests.support.http_api import METHODS, VIEWS, HttpApi, HttpRequest, Integration, Route, path_segments

# --- route precedence, on the developer guide's own example -------------------------------------------------


def example_api(route_keys: list[str]) -> HttpApi:
    """An HTTP API with the given routes, all to one Lambda integration, no authorizer."""
    resources = {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
        "Integration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "IntegrationType": "AWS_PROXY",
                "IntegrationUri": {"Fn::GetAtt": ["Fn", "Arn"]},
                "PayloadFormatVersion": "2.0",
            },
        },
    }
    for i, key in enumerate(route_keys):
        resources[f"Route{i}"] = {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "RouteKey": key,
                "AuthorizationType": "NONE",
                "Target": {"Fn::Join": ["", ["integrations/", {"Ref": "Integration"}]]},
            },
        }
    stacks = Stacks({"example": {"Resources": resources}}, region="us-east-2", account="123456789012")
    clock = Clock()
    return HttpApi(stacks, "example", service_ports={}, issuer=TokenIssuer(clock), clock=clock)


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        # The table of "Routing API requests" (http-api-develop-routes.html).
        ("GET", "/pets/dog/1", "GET /pets/dog/1"),
        ("GET", "/pets/dog/2", "GET /pets/dog/{id}"),
        ("GET", "/pets/cat/1", "GET /pets/{proxy+}"),
        ("POST", "/test/5", "ANY /{proxy+}"),
        # A method beats ANY on the same path; a full match with variables beats a greedy one.
        ("PUT", "/pets/dog/2", "PUT /pets/dog/{id}"),
        ("DELETE", "/pets/dog/2", "ANY /pets/dog/{id}"),
        ("DELETE", "/pets/cat/1", "ANY /{proxy+}"),
    ],
)
def test_route_precedence_is_the_documented_one(method, path, route):
    api = example_api(
        [
            "GET /pets/dog/1",
            "GET /pets/dog/{id}",
            "PUT /pets/dog/{id}",
            "ANY /pets/dog/{id}",
            "GET /pets/{proxy+}",
            "ANY /{proxy+}",
        ]
    )
    selected = api.select(method, path)
    assert selected is not None and selected[0].key == route


def test_no_route_is_404_not_found():
    api = example_api(["GET /pets/{id}"])
    assert api.select("GET", "/pets") is None and api.select("POST", "/pets/1") is None
    response = api.handle(HttpRequest("GET", "/cars/1"))
    assert (response.status, response.body, response.reached) == (404, {"message": "Not Found"}, None)


# --- no spelling of a path gets past a scope ---------------------------------------------------------------


def fill(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "7", template)


def gateway_path(route: Route, integration: Integration, backend_path: str) -> str | None:
    """The request path on `route` whose integration sends `backend_path` to the backend (None: none does)."""
    if integration.path_mapping is None:
        candidate = backend_path
    else:
        greedy = {p[1:-2] for p in route.segments if p.endswith("+}")}
        pattern = ""
        for piece in re.split(r"(\$request\.path\.\w+)", integration.path_mapping):
            name = piece.removeprefix("$request.path.")
            if name != piece:
                pattern += f"(?P<{name}>.+)" if name in greedy else f"(?P<{name}>[^/]+)"
            else:
                pattern += re.escape(piece)
        found = re.fullmatch(pattern, backend_path)
        if found is None:
            return None
        values = found.groupdict()
        candidate = "/" + "/".join(values[p.strip("{}+")] if p.startswith("{") else p for p in route.segments)
    return candidate if route.match(path_segments(candidate)) is not None else None


def variants(path: str) -> set[str]:
    """Spellings of `path` a client may send."""
    segments = path.split("/")[1:]
    found = {path, path + "/", path + "/.", "/" + path, path.upper(), path.lower()}
    found.add("/" + "//".join(segments))
    for i in range(1, len(segments)):
        head, tail = "/" + "/".join(segments[:i]), "/".join(segments[i:])
        for joint in ("//", "%2F", "%2f", "/./", "/x/../", "/%2e%2e/", "/;x=1/"):
            found.add(f"{head}{joint}{tail}")
        found.add(f"{head}/{segments[i]}/../{tail}")
    for i, segment in enumerate(segments):
        for changed in (segment.upper(), segment.capitalize(), f"{segment};x=1"):
            found.add("/" + "/".join([*segments[:i], changed, *segments[i + 1 :]]))
    return found


def access_token(world: World, scopes: set[str]) -> str:
    settings = world.pool.settings
    now = int(world.clock())
    return world.issuer.sign(
        {
            "sub": "00000000-0000-4000-8000-000000000001",
            "iss": settings.issuer,
            "client_id": settings.client_id,
            "token_use": "access",
            "scope": " ".join(sorted(scopes | {SIGNIN_SCOPE})),
            "iat": now,
            "exp": now + 3600,
        }
    )


def protected_handlers(world: World) -> dict[str, list[tuple[tuple[str, ...], str, str]]]:
    """handler -> [(scopes of the route that reaches it, method, gateway path)]."""
    api = world.api
    everything = {s for r in api.routes if r.scopes for s in r.scopes}
    headers = {"authorization": f"Bearer {access_token(world, everything)}"}
    protected: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}
    for route in api.routes:
        integration = api.integrations[route.integration]
        backend = api.backend_of(integration)
        for method, template in backend.endpoints() if hasattr(backend, "endpoints") else []:
            if route.method not in (method, "ANY"):
                continue
            path = gateway_path(route, integration, fill(template))
            if path is None:
                continue
            dispatch = api.route(HttpRequest(method, path, headers))
            if dispatch.route is not route or dispatch.denied is not None or not route.scopes:
                continue
            handler = backend.route_of(dispatch.backend_method, dispatch.backend_path)
            if handler is not None:
                protected.setdefault(handler, []).append((route.scopes, method, path))
    return protected


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_path_variant_reaches_a_scoped_handler_without_the_scope(world, env):
    w = world(env)
    api = w.api
    protected = protected_handlers(w)
    assert protected, "no scoped route reaches any backend handler: the discovery found nothing to test"
    everything = {s for r in api.routes if r.scopes for s in r.scopes}
    violations = set()
    for handler, protections in protected.items():
        for scopes, method, path in protections:
            attacker = everything - set(scopes)
            if any(set(other) & attacker for other, _, _ in protections):
                continue  # another route lets these scopes reach the handler by design
            headers = {"authorization": f"Bearer {access_token(w, attacker)}"}
            for variant_method in METHODS:
                for variant in variants(path):
                    for view in VIEWS:
                        dispatch = api.route(HttpRequest(variant_method, variant, headers), view)
                        if dispatch.denied is not None or dispatch.integration is None:
                            continue
                        backend = api.backend_of(dispatch.integration)
                        if backend.route_of(dispatch.backend_method, dispatch.backend_path) == handler:
                            violations.add(
                                f"{env}: {variant_method} {variant} ({view} view) reaches {handler} through "
                                f"{dispatch.route.key} without {' or '.join(scopes)} (canonical: {method} {path})"
                            )
    assert not violations, "\n".join(sorted(violations))

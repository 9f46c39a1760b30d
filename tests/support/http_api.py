"""The SYNTHESIZED HTTP API as a request router: route selection, the JWT authorizer, and the integrations.

Route selection follows the API Gateway developer guide, "Create routes for HTTP APIs" > "Routing API
requests" (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html): "API Gateway
selects the route with the most-specific match, using the following priorities: 1. Full match for a route
and method. 2. Match for a route and method with a greedy path variable ({proxy+}). 3. The $default route.
If no routes match a request, API Gateway returns {"message":"Not Found"}"; its example table shows a static
route (GET /pets/dog/1) chosen over a path variable (GET /pets/dog/{id}), and that "the ANY method matches all
methods that you haven't defined for a route". So: a full match beats a greedy one, literal segments beat
variables (compared left to right), a longer greedy prefix beats a shorter one, and a method beats ANY.
The same page notes "API Gateway decodes URL-encoded request parameters before passing them to your backend
integration": path variables reach overwrite:path and pathParameters decoded.

The JWT authorizer follows "Control access to HTTP APIs with JWT authorizers" (http-api-jwt-authorizer.html),
"Authorizing API requests with a JWT authorizer": the identity source holds the token, alone or prefixed
with "Bearer"; signature (our TokenIssuer), iss = the authorizer's Issuer, aud - or client_id when the token
has no aud - one of its Audience, exp in the future; and "If you configure scopes for a route, the token must
include at least one of the route's scopes" (its `scope` claim; an ID token has none). A missing or invalid
token is 401 {"message":"Unauthorized"}; a valid token without a required scope is 403 {"message":"Forbidden"}.

How API Gateway treats `..`, `//`, `%2F` or a trailing slash before matching is not documented, so route
selection takes a `view`: "raw" matches the path as sent, segment by segment (an empty segment matches
nothing but a greedy variable); "normalized" percent-decodes it (slashes included), collapses repeated
slashes, resolves dot segments and drops a trailing slash first. Properties that must hold for AWS must hold
in both views. A Lambda integration always receives rawPath as sent.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from tests.support.cloudformation import Stacks, Unresolvable
from tests.support.cognito import TokenIssuer

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
VIEWS = ("raw", "normalized")


@dataclass
class HttpRequest:
    method: str
    path: str  # as sent: may hold %xx escapes, dot segments, repeated or trailing slashes
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    query: str = ""

    @staticmethod
    def json(method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None) -> HttpRequest:
        body = None if payload is None else json.dumps(payload)
        base = {"content-type": "application/json"} if body is not None else {}
        return HttpRequest(method, path, {**base, **(headers or {})}, body)


@dataclass
class HttpResponse:
    status: int
    body: Any = None  # decoded JSON, text, or None
    headers: dict[str, str] = field(default_factory=dict)
    reached: str | None = None  # the backend that answered (None: the gateway itself)

    def summary(self) -> str:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body, separators=(",", ":"))
        text = "" if self.body is None else text
        return f"{self.status} {text[:300]}".rstrip()


def json_response(status: int, body: Any, reached: str | None = None) -> HttpResponse:
    return HttpResponse(status, body, {"content-type": "application/json"}, reached)


class HttpBackend(Protocol):
    name: str

    def handle(self, request: HttpRequest) -> HttpResponse: ...

    def route_of(self, method: str, path: str) -> str | None: ...


class LambdaBackend(Protocol):
    name: str

    def invoke(self, event: dict) -> Any: ...

    def route_of(self, method: str, path: str) -> str | None: ...


@dataclass(frozen=True)
class Route:
    key: str
    method: str
    path: str
    segments: tuple[str, ...]
    greedy: bool
    authorization: str  # JWT, NONE, ...
    scopes: tuple[str, ...] | None
    integration: str  # its physical id stand-in (Target "integrations/<id>")
    authorizer: str | None = None

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Captured variables (raw) if the request's segments fit this route's path."""
        pattern = self.segments
        fixed = pattern[:-1] if self.greedy else pattern
        if self.greedy:
            if len(segments) <= len(fixed):
                return None
        elif len(segments) != len(pattern):
            return None
        captured = {}
        for part, actual in zip(fixed, segments, strict=False):
            if part.startswith("{"):
                if not actual:
                    return None
                captured[part[1:-1]] = actual
            elif part != actual:
                return None
        if self.greedy:
            rest = "/".join(segments[len(fixed) :])
            if not rest:
                return None
            captured[pattern[-1][1:-2]] = rest
        return captured

    def rank(self) -> tuple:
        """Sort key, most specific first (see the module docstring)."""
        literal = tuple(0 if p.startswith("{") else 1 for p in self.segments)
        return (self.greedy, tuple(-x for x in literal), -len(self.segments), self.method == "ANY")


@dataclass(frozen=True)
class Integration:
    logical_id: str
    kind: str  # "lambda" or "http"
    target: str  # function logical id, or the service name behind the NLB listener
    method: str
    path_mapping: str | None  # overwrite:path


@dataclass(frozen=True)
class Authorizer:
    issuer: str
    audience: tuple[str, ...]
    header: str


@dataclass
class Dispatch:
    """What the gateway does with one request: deny it, or send `event` (Lambda) / `forwarded` (VPC link)."""

    route: Route | None = None
    denied: HttpResponse | None = None
    integration: Integration | None = None
    event: dict | None = None
    forwarded: HttpRequest | None = None

    @property
    def backend_path(self) -> str | None:
        if self.event is not None:
            return self.event["rawPath"]
        return self.forwarded.path if self.forwarded is not None else None

    @property
    def backend_method(self) -> str | None:
        if self.event is not None:
            return self.event["requestContext"]["http"]["method"]
        return self.forwarded.method if self.forwarded is not None else None


def path_segments(path: str) -> list[str]:
    return path.split("?")[0].split("/")[1:]


def normalize(path: str) -> str:
    """Decode (%2F included), collapse repeated slashes, resolve dot segments, drop a trailing slash."""
    out: list[str] = []
    for part in unquote(path).split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


class HttpApi:
    """One environment's API: built from the API stack, calling the backends it is given."""

    def __init__(
        self,
        stacks: Stacks,
        stack: str,
        *,
        service_ports: dict[int, str],
        issuer: TokenIssuer,
        clock: Callable[[], float],
    ):
        self.stacks, self.stack, self.issuer, self.clock = stacks, stack, issuer, clock
        self.api_id = stacks.ref(stack, stacks.only(stack, "AWS::ApiGatewayV2::Api")[0])
        self.authorizers = {
            stacks.ref(stack, logical): self._authorizer(resource["Properties"])
            for logical, resource in stacks.resources(stack, "AWS::ApiGatewayV2::Authorizer").items()
        }
        self.integrations = {
            stacks.ref(stack, logical): self._integration(logical, resource["Properties"], service_ports)
            for logical, resource in stacks.resources(stack, "AWS::ApiGatewayV2::Integration").items()
        }
        self.routes: list[Route] = []
        for resource in stacks.resources(stack, "AWS::ApiGatewayV2::Route").values():
            p = resource["Properties"]
            key = p["RouteKey"]
            if key == "$default":
                raise Unresolvable(f"{stack}: a $default route is not modelled")
            method, path = key.split(" ", 1)
            segments = tuple(path.split("/")[1:])
            target = stacks.resolve(stack, p["Target"])
            self.routes.append(
                Route(
                    key=key,
                    method=method,
                    path=path,
                    segments=segments,
                    greedy=bool(segments) and segments[-1].endswith("+}"),
                    authorization=p.get("AuthorizationType", "NONE"),
                    scopes=tuple(p["AuthorizationScopes"]) if p.get("AuthorizationScopes") else None,
                    integration=target.removeprefix("integrations/"),
                    authorizer=stacks.resolve(stack, p["AuthorizerId"]) if "AuthorizerId" in p else None,
                )
            )
        self.routes.sort(key=Route.rank)
        self.lambdas: dict[str, LambdaBackend] = {}
        self.services: dict[str, HttpBackend] = {}
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, backend reached)

    # --- reading the template ----------------------------------------------------------------------

    def _authorizer(self, p: dict) -> Authorizer:
        if p["AuthorizerType"] != "JWT":
            raise Unresolvable(f"authorizer type {p['AuthorizerType']} is not modelled")
        (source,) = p["IdentitySource"]
        header = source.removeprefix("$request.header.")
        jwt = p["JwtConfiguration"]
        audience = tuple(self.stacks.resolve(self.stack, jwt.get("Audience", [])))
        return Authorizer(issuer=self.stacks.resolve(self.stack, jwt["Issuer"]), audience=audience, header=header)

    def _integration(self, logical: str, p: dict, service_ports: dict[int, str]) -> Integration:
        uri = self.stacks.resolve(self.stack, p["IntegrationUri"])
        mapping = (p.get("RequestParameters") or {}).get("overwrite:path")
        if p["IntegrationType"] == "AWS_PROXY":
            if p.get("PayloadFormatVersion") != "2.0":
                raise Unresolvable(f"{logical}: only payload format 2.0 is modelled")
            return Integration(logical, "lambda", self.stacks.origin(uri).logical_id, "ANY", mapping)
        if p["IntegrationType"] == "HTTP_PROXY" and p.get("ConnectionType") == "VPC_LINK":
            listener = self.stacks.origin(uri)
            resource = self.stacks.resource(listener.stack, listener.logical_id)
            if resource["Type"] != "AWS::ElasticLoadBalancingV2::Listener":
                raise Unresolvable(f"{logical}: VPC link integration to a {resource['Type']}")
            port = resource["Properties"]["Port"]
            if port not in service_ports:
                raise Unresolvable(f"{logical}: listener port {port} belongs to no configured service")
            return Integration(logical, "http", service_ports[port], p.get("IntegrationMethod", "ANY"), mapping)
        raise Unresolvable(f"{logical}: integration {p['IntegrationType']} is not modelled")

    # --- routing ----------------------------------------------------------------------------------

    def select(self, method: str, path: str, view: str = "raw") -> tuple[Route, dict[str, str]] | None:
        """The route API Gateway picks and the path variables (decoded), or None (404)."""
        matched = normalize(path) if view == "normalized" else path
        segments = path_segments(matched)
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            captured = route.match(segments)
            if captured is not None:
                return route, {k: unquote(v) for k, v in captured.items()}
        return None

    def _authorize(self, route: Route, request: HttpRequest) -> tuple[HttpResponse | None, dict | None]:
        if route.authorization == "NONE":
            return None, None
        if route.authorization != "JWT":
            raise Unresolvable(f"{route.key}: authorization {route.authorization} is not modelled")
        authorizer = self.authorizers[route.authorizer]
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = headers.get(authorizer.header.lower(), "").strip()
        token = raw[len("bearer ") :].strip() if raw.lower().startswith("bearer ") else raw

        def unauthorized(reason: str) -> tuple[HttpResponse, None]:
            response = json_response(401, {"message": "Unauthorized"})
            response.headers["www-authenticate"] = f'Bearer scope="" error="invalid_token" error_description="{reason}"'
            return response, None

        if not token:
            return unauthorized("no token")
        claims = self.issuer.verify(token)
        if claims is None:
            return unauthorized("the token signature is invalid")
        if claims.get("iss") != authorizer.issuer:
            return unauthorized("the token does not have a valid issuer")
        audience = claims.get("aud", claims.get("client_id"))
        if authorizer.audience and audience not in authorizer.audience:
            return unauthorized("the token does not have a valid audience")
        if claims.get("exp", 0) <= self.clock():
            return unauthorized("the token has expired")
        if route.scopes and not set(str(claims.get("scope", "")).split()) & set(route.scopes):
            return json_response(403, {"message": "Forbidden"}), None
        return None, claims

    def handle(self, request: HttpRequest, view: str = "raw") -> HttpResponse:
        """Answer the request as API Gateway would, calling the backend the route's integration names."""
        dispatch = self.route(request, view)
        if dispatch.denied is not None:
            response = dispatch.denied
        elif dispatch.event is not None:
            backend = self.lambdas[dispatch.integration.target]
            response = lambda_response(backend.invoke(dispatch.event), backend.name)
        else:
            response = self.services[dispatch.integration.target].handle(dispatch.forwarded)
        self.log.append((request.method, request.path, response.reached))
        return response

    def route(self, request: HttpRequest, view: str = "raw") -> Dispatch:
        """Everything up to the backend call: the route, the authorizer's verdict, what would be sent."""
        selected = self.select(request.method, request.path, view)
        if selected is None:
            return Dispatch(denied=json_response(404, {"message": "Not Found"}))
        route, variables = selected
        denied, claims = self._authorize(route, request)
        if denied is not None:
            return Dispatch(route=route, denied=denied)
        integration = self.integrations[route.integration]
        if integration.kind == "lambda":
            event = self.lambda_event(request, route, variables, claims)
            return Dispatch(route=route, integration=integration, event=event)
        return Dispatch(route=route, integration=integration, forwarded=self.forwarded(request, integration, variables))

    def backend_of(self, integration: Integration) -> HttpBackend | LambdaBackend:
        return (self.lambdas if integration.kind == "lambda" else self.services)[integration.target]

    def forwarded(self, request: HttpRequest, integration: Integration, variables: dict[str, str]) -> HttpRequest:
        """The request the HTTP_PROXY integration sends over the VPC link."""
        path = request.path
        if integration.path_mapping is not None:
            path = re.sub(r"\$request\.path\.(\w+)", lambda m: variables[m.group(1)], integration.path_mapping)
        method = request.method if integration.method == "ANY" else integration.method
        return HttpRequest(method, path, dict(request.headers), request.body, request.query)

    def lambda_event(self, request: HttpRequest, route: Route, variables: dict, claims: dict | None) -> dict:
        """Payload format 2.0, with the JWT claims as API Gateway passes them (every value a string)."""
        now = self.clock()
        context: dict[str, Any] = {
            "accountId": self.stacks.account,
            "apiId": self.api_id,
            "domainName": f"{self.api_id}.execute-api.{self.stacks.region}.amazonaws.com",
            "domainPrefix": self.api_id,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "Mozilla/5.0 (journey)",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        }
        if claims is not None:
            scopes = str(claims.get("scope", "")).split() if route.scopes else None
            context["authorizer"] = {
                "jwt": {"claims": {k: claim_string(v) for k, v in claims.items()}, "scopes": scopes}
            }
        event = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": request.path,
            "rawQueryString": request.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if variables:
            event["pathParameters"] = dict(variables)
        if request.body is not None:
            event["body"] = request.body
        return event


def claim_string(value: Any) -> str:
    """How the JWT authorizer hands claims to the integration: arrays as "[a b]", the rest as text."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lambda_response(result: Any, backend: str) -> HttpResponse:
    """Payload 2.0 response: a dict with statusCode is the response; anything else is a 200 JSON body."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return json_response(200, result, backend)
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    body = result.get("body")
    if body and "json" in headers.get("content-type", "application/json"):
        body = json.loads(body)
    return HttpResponse(result["statusCode"], body or None, headers, backend)

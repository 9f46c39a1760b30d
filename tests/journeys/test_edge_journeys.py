"""The edge as the browser meets it, for every environment: the distribution of the Edge stack
(tests/support/cloudfront.py) with the stand-in frontend build published and the HTTP API behind `/api/*`.

(a) the app's pages: `/` and client routes answer the published index.html with the security headers, a missing
asset stays a 403; (b) `/api/*` errors stay the API's errors (404 JSON, the authorizer's 401), never the app's
HTML; (c) a journey passes through the edge with the bearer token reaching the API; (d) mutations of the Edge
template that real misconfigurations would make (Authorization not forwarded, the viewer's Host forwarded,
distribution-wide error pages, a function that rewrites nothing) make these checks fail, and an API origin that is
not the environment's HTTP API fails the model loudly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from tests.journeys.conftest import ENVIRONMENTS
from tests.journeys.harness import INDEX_SCRIPT, World
from tests.journeys.journeys import JOURNEYS, onboard, staff
from tests.support.cloudformation import Stacks, Unresolvable
from tests.support.cloudfront import Distribution
from tests.support.http_api import HttpRequest

PAGES = ("/", "/approvals", "/quests/12")
MISSING_ASSET = "/assets/missing-abc12345.js"
UNKNOWN_API_PATH = "/api/no-such-endpoint"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
CORS_CUSTOM_ORIGIN = "59781a5b-3903-41f3-afcb-af62929ccde1"


def _edge_stack(world: World) -> str:
    return f"{world.platform.prefix}-edge"


def browse(edge: Distribution, method: str, path: str, **headers: str):
    """What a browser at the edge's address sends for a page or a file."""
    base = {"host": edge.host, "accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    return edge.handle(HttpRequest(method, path, {**base, **headers}))


def csp_directives(value: str) -> dict[str, list[str]]:
    directives = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


# --- the checks, each a list of problems (empty: as it must be) ----------------------------------------------


def page_problems(world: World, edge: Distribution) -> list[str]:
    problems = []
    index = world.site["index.html"].body
    cognito = f"https://cognito-idp.{world.config.region}.amazonaws.com"
    for path in PAGES:
        r = browse(edge, "GET", path)
        where = f"{world.env} GET {path}"
        if (r.status, r.body) != (200, index):
            problems.append(f"{where}: expected 200 with the published index.html, got {r.summary()[:120]}")
            continue
        h = r.headers
        if not h.get("content-type", "").startswith("text/html"):
            problems.append(f"{where}: content-type {h.get('content-type')}")
        hsts = h.get("strict-transport-security", "")
        if not (hsts.startswith("max-age=") and int(hsts.split(";")[0].split("=")[1]) >= 31536000):
            problems.append(f"{where}: Strict-Transport-Security {hsts!r}")
        csp = csp_directives(h.get("content-security-policy", ""))
        if cognito not in csp.get("connect-src", []) or "'self'" not in csp.get("connect-src", []):
            problems.append(f"{where}: CSP connect-src {csp.get('connect-src')} lacks 'self' or {cognito}")
        if csp.get("frame-ancestors") != ["'none'"] or h.get("x-frame-options") != "DENY":
            problems.append(f"{where}: framing allowed ({h.get('x-frame-options')}, {csp.get('frame-ancestors')})")
        if h.get("x-content-type-options") != "nosniff":
            problems.append(f"{where}: X-Content-Type-Options {h.get('x-content-type-options')}")
    r = browse(edge, "GET", f"/{INDEX_SCRIPT}")
    if (
        r.status != 200
        or "javascript" not in r.headers.get("content-type", "")
        or "immutable" not in r.headers.get("cache-control", "")
    ):
        problems.append(f"{world.env} GET /{INDEX_SCRIPT}: {r.summary()[:80]} {r.headers}")
    r = browse(edge, "GET", MISSING_ASSET)
    if r.status != 403 or r.body == index:
        problems.append(f"{world.env} GET {MISSING_ASSET}: expected 403 (not the index), got {r.summary()[:120]}")
    return problems


def api_error_problems(world: World, edge: Distribution) -> list[str]:
    problems = []
    api = {"host": edge.host, "accept": "application/json, text/plain, */*", "origin": edge.address}

    def call(method: str, path: str):
        return edge.handle(HttpRequest(method, path, dict(api)))

    for method in ("GET", "POST"):
        r = call(method, UNKNOWN_API_PATH)
        if (r.status, r.body, r.reached) != (404, {"message": "Not Found"}, None):
            problems.append(f"{world.env} {method} {UNKNOWN_API_PATH}: expected the API's 404, got {r.summary()[:120]}")
    r = call("GET", "/api/employees")
    if (r.status, r.body, r.reached) != (401, {"message": "Unauthorized"}, None):
        problems.append(f"{world.env} anonymous GET /api/employees: expected the authorizer's 401, got {r.summary()}")
    r = call("GET", "/api/health")
    if r.status != 200 or "html" in r.headers.get("content-type", ""):
        problems.append(f"{world.env} GET /api/health: expected 200 from the API, got {r.summary()[:120]}")
    if "strict-transport-security" not in r.headers:
        problems.append(f"{world.env} GET /api/health: no security headers on an API response")
    return problems


def authenticated_call(world: World, edge: Distribution) -> tuple[int, str | None]:
    """A signed-in person's GET /api/employees through `edge`: (status, who answered)."""
    person = world.people.get(world.address("jisoo.han")) or onboard(world, staff(world), "edge")
    world.edge, saved = edge, world.edge
    try:
        r = person.request("GET", "/api/employees")
    finally:
        world.edge = saved
    return r.status, r.reached


# --- (a)-(c) the platform as synthesized ---------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pages_answer_the_app_and_missing_files_stay_missing(world, env):
    w = world(env)
    assert page_problems(w, w.edge) == []
    # The frontend's behaviour takes reads only; the API's every method.
    assert browse(w.edge, "POST", "/approvals").status == 403
    # The address the frontend is built with: the custom domain, else CloudFront's own name.
    domain = w.config.edge.domain_name
    assert w.edge.address == f"https://{domain}" if domain else w.edge.host.endswith(".cloudfront.net")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_api_errors_stay_the_apis_errors(world, env):
    w = world(env)
    assert api_error_problems(w, w.edge) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_journey_passes_through_the_edge_with_the_bearer_token(world, configs, env):
    if not configs[env].auth.allowed_signup_domains:
        pytest.skip(f"{env}: self sign-up is off; the journey starts there")
    w = world(env)
    JOURNEYS["J7"](w)
    api_calls = [(m, p) for m, p, _ in w.api.log]
    assert api_calls, "J7 made no API call"
    # Every call the gateway saw came through the edge's /api/* behaviour.
    assert [(m, p) for m, p, _ in w.edge.log if p.startswith("/api/")] == api_calls
    origin = w.edge.select("/api/employees").origin
    # The gateway's events (not the in-cluster function URL's, which the SigV4 proxy signs).
    events = [e for f in w.lambdas.values() for e in f.events if e["requestContext"].get("apiId") == w.api.api_id]
    assert events, "J7 reached no Lambda through the gateway"
    for event in events:
        headers = event["headers"]
        assert headers.get("authorization", "").startswith("Bearer "), headers
        assert headers["host"] == origin.domain and "CloudFront" in headers["via"], headers
        assert headers["origin"] == w.edge.address, headers


# --- (d) the misconfigurations these checks must catch ---------------------------------------------------------


def mutated(
    world: World,
    stack_templates: dict,
    change: Callable[[dict], None] | None = None,
    *,
    function: Callable[[dict], None] | None = None,
) -> Distribution:
    """The world's edge built from a copy of the Edge template: `change` edits its DistributionConfig, `function`
    the Properties of its CloudFront Functions."""
    stack = _edge_stack(world)
    templates = dict(stack_templates)
    templates[stack] = copy.deepcopy(stack_templates[stack])
    resources = templates[stack]["Resources"]
    ((logical, resource),) = [(k, v) for k, v in resources.items() if v["Type"] == "AWS::CloudFront::Distribution"]
    if change is not None:
        change(resource["Properties"]["DistributionConfig"])
    for value in resources.values():
        if function is not None and value["Type"] == "AWS::CloudFront::Function":
            function(value["Properties"])
    stacks = Stacks(templates, region=world.config.region, account=world.config.account)
    edge = Distribution(stacks, stack, api=world.api, logical_id=logical)
    edge.publish(world.site)
    return edge


def api_behaviour(config: dict) -> dict:
    (behaviour,) = [b for b in config["CacheBehaviors"] if b["PathPattern"] == "/api/*"]
    return behaviour


def caching_optimized_without_policy(config: dict) -> None:
    behaviour = api_behaviour(config)
    behaviour["CachePolicyId"] = CACHING_OPTIMIZED
    behaviour.pop("OriginRequestPolicyId", None)


def cors_policy_only(config: dict) -> None:
    api_behaviour(config)["OriginRequestPolicyId"] = CORS_CUSTOM_ORIGIN


def all_viewer(config: dict) -> None:
    api_behaviour(config)["OriginRequestPolicyId"] = ALL_VIEWER


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize(
    ("change", "status"),
    [
        (caching_optimized_without_policy, 401),  # Authorization removed: the authorizer sees no token
        (cors_policy_only, 401),  # only Origin forwarded
        (all_viewer, 403),  # the viewer's Host reaches API Gateway, which serves no such name
    ],
    ids=["CachingOptimized-no-ORP", "CORS-CustomOrigin-ORP", "AllViewer-ORP"],
)
def test_an_edge_that_drops_authorization_or_forwards_host_fails_the_signed_in_call(
    world, configs, stack_templates, env, change, status
):
    if not configs[env].auth.allowed_signup_domains:
        pytest.skip(f"{env}: self sign-up is off")
    w = world(env)
    status_as_synthesized, reached = authenticated_call(w, w.edge)
    assert status_as_synthesized == 200 and reached is not None
    assert authenticated_call(w, mutated(w, stack_templates, change)) == (status, None)


def error_pages(*codes: int) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        config["CustomErrorResponses"] = [
            {"ErrorCode": code, "ResponseCode": 200, "ResponsePagePath": "/index.html"} for code in codes
        ]

    return change


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_distribution_wide_error_pages_turn_api_errors_into_the_app(world, stack_templates, env):
    w = world(env)
    with_404 = api_error_problems(w, mutated(w, stack_templates, error_pages(404)))
    assert any(UNKNOWN_API_PATH in p and "200" in p for p in with_404), with_404
    with_403 = page_problems(w, mutated(w, stack_templates, error_pages(403)))
    assert any(MISSING_ASSET in p for p in with_403), with_403


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_function_code_comes_from_the_template(world, stack_templates, env):
    """A function that rewrites nothing: client routes reach the bucket as keys it does not hold."""

    def rewrite_nothing(properties: dict) -> None:
        properties["FunctionCode"] = "function handler(event) { return event.request; }"

    w = world(env)
    problems = page_problems(w, mutated(w, stack_templates, function=rewrite_nothing))
    assert any("GET /approvals:" in p for p in problems) and any("GET /quests/12:" in p for p in problems), problems
    # `/` still answers: the distribution's DefaultRootObject, not the function.
    assert not any("GET /:" in p for p in problems), problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_api_origin_that_is_not_the_environments_api_fails_loudly(world, stack_templates, env):
    w = world(env)
    execute_api = f"{w.api.api_id}.execute-api.{w.config.region}.amazonaws.com"
    others = ["api.example.org"]
    if w.config.api.edge_only:
        others.append(execute_api)  # turned off by DisableExecuteApiEndpoint

    for domain in others:

        def point(config: dict, domain: str = domain) -> None:
            target = api_behaviour(config)["TargetOriginId"]
            (origin,) = [o for o in config["Origins"] if o["Id"] == target]
            origin["DomainName"] = domain

        with pytest.raises(Unresolvable, match=domain.replace(".", r"\.")):
            mutated(w, stack_templates, point)

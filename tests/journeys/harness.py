"""The journeys' world: one environment's platform, built from its synthesized templates, and the people in it.

`Platform` (once per environment): the templates resolved (`Stacks`), the user pool's settings, the REAL
Cognito triggers and Lambda functions loaded with their synthesized environment, the workloads' manifests.
`World` (once per test): a fresh pool, gateway, Spring fakes, Kafka and cluster network around them, the
employee Lambda with a new container on the reseeded database, and the edge (the CloudFront distribution of
the Edge stack, tests/support/cloudfront.py) in front of the gateway with a stand-in frontend build published.

`Person` is someone in front of the unchanged frontend (facts sheet section 7), built with the edge's address
as its API base: every API call goes browser -> CloudFront (`/api/*`) -> HTTP API, same-origin (the page's
Origin is the edge's own address), plus the one documented app-side change: every API call sends
`Authorization: Bearer <access token>`. `Journey` records the steps
and turns the first unexpected outcome into one line naming environment, journey, step and call, e.g.
`prod J7 step 2 PUT /api/approvals/1/approve: expected 200, got 403 {"message":"Forbidden"}`.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from config.models import EnvironmentConfig
from tests.support.cloudformation import DeployedFunction, Stacks, deployed_function
from tests.support.cloudfront import Distribution, SiteObject
from tests.support.cognito import Clock, CognitoError, PoolSettings, SignInNeverSettles, TokenIssuer, Tokens, UserPool
from tests.support.erp_services import (
    ApprovalProcessingService,
    ApprovalRequestService,
    Cluster,
    Kafka,
    NotificationService,
    deployment_environment,
    wire_cluster,
    workload_objects,
)
from tests.support.http_api import HttpApi, HttpRequest, HttpResponse
from tools.frontend import cache_control, content_type

T = TypeVar("T")
PASSWORD = "Journey-Pass-2026!x"  # pragma: allowlist secret (what a person types at sign-up; no real account)


class JourneyFailure(AssertionError):
    pass


class LambdaFunction:
    """A deployed function as an integration target; counts what reached it."""

    def __init__(self, deployed: DeployedFunction, context: Callable[[], Any]):
        self.deployed, self.context = deployed, context
        service = deployed.environment.get("POWERTOOLS_SERVICE_NAME")
        self.name = f"{service} Lambda" if service else f"Lambda {deployed.logical_id}"
        self.events: list[dict] = []
        self.settings = None
        app = getattr(deployed.modules, "app", None)
        if app is not None and hasattr(app, "db") and hasattr(app.db, "_settings"):
            self.settings = app.db._settings

    @property
    def resolver(self) -> Any:
        """The Powertools resolver of the function's app module, if it has one."""
        resolver = getattr(getattr(self.deployed.modules, "app", None), "app", None)
        return resolver if hasattr(resolver, "_static_routes") else None

    def new_container(self) -> None:
        """A fresh Database, as a new Lambda container would start with."""
        if self.settings is None:
            return
        app = self.deployed.modules.app
        old = getattr(app.db._local, "conn", None)
        if old is not None:
            old.close()
        app.db = self.deployed.modules.db.Database(self.settings)

    def invoke(self, event: dict) -> Any:
        self.events.append(event)
        with warnings.catch_warnings():
            # Powertools warns on every invocation that records no metric; Lambda would just log it.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            return self.deployed.invoke(event, self.context())

    def endpoints(self) -> list[tuple[str, str]]:
        resolver = self.resolver
        if resolver is None:
            return []
        routes = resolver._static_routes + resolver._dynamic_routes
        return [(r.method, r.path.replace("<", "{").replace(">", "}")) for r in routes]

    def route_of(self, method: str, path: str) -> str | None:
        """The handler Powertools would call for this method and raw path (it matches rawPath as sent)."""
        resolver = self.resolver
        if resolver is None:
            return None
        for route in resolver._static_routes + resolver._dynamic_routes:
            if route.method == method and route.rule.match(path):
                return f"{self.name} {route.method} {route.path}"
        return None


@dataclass
class Platform:
    """One environment, as synthesized."""

    env: str
    config: EnvironmentConfig
    stacks: Stacks
    pool: PoolSettings
    triggers: dict[str, DeployedFunction]
    functions: dict[str, DeployedFunction]  # logical id -> function (integration targets, function URLs)
    objects: list[dict]  # the workloads' Kubernetes objects

    @property
    def prefix(self) -> str:
        return self.config.resource_prefix

    @classmethod
    def build(
        cls,
        config: EnvironmentConfig,
        stack_templates: dict,
        stack_artifacts: dict,
        *,
        load_folder: Callable[[Path], SimpleNamespace],
        sources: Path,
        overrides: dict[str, str],
    ) -> Platform:
        stacks = Stacks(stack_templates, region=config.region, account=config.account)
        prefix = config.resource_prefix
        auth, api, workloads = f"{prefix}-auth", f"{prefix}-api", f"{prefix}-workloads"

        def load(stack: str, logical_id: str) -> DeployedFunction:
            variables = stacks.resource(stack, logical_id)["Properties"].get("Environment", {}).get("Variables", {})
            return deployed_function(
                stacks,
                stack,
                logical_id,
                stack_dir=stack_artifacts[stack][0],
                load_folder=load_folder,
                sources=sources,
                # Only what means something in AWS alone: where the database's credentials are, TLS to RDS.
                overrides={k: v for k, v in overrides.items() if k in variables},
            )

        pool = PoolSettings.from_template(stacks, auth)
        triggers = {}
        if pool.presignup:
            triggers["presignup"] = load(auth, pool.presignup)
        if pool.pretoken:
            triggers["pretoken"] = load(auth, pool.pretoken[0])
        functions = {}
        for integration in stacks.resources(api, "AWS::ApiGatewayV2::Integration").values():
            if integration["Properties"]["IntegrationType"] == "AWS_PROXY":
                origin = stacks.origin(stacks.resolve(api, integration["Properties"]["IntegrationUri"]))
                if origin.logical_id not in functions:
                    functions[origin.logical_id] = load(api, origin.logical_id)
        for url in stacks.resources(api, "AWS::Lambda::Url").values():
            origin = stacks.origin(stacks.resolve(api, url["Properties"]["TargetFunctionArn"]))
            if origin.logical_id not in functions:
                functions[origin.logical_id] = load(api, origin.logical_id)
        return cls(config.name, config, stacks, pool, triggers, functions, workload_objects(stacks, workloads))


# A stand-in for `make frontend`'s build (Vite's dist/): index.html naming hashed assets, the API base baked in.
INDEX_SCRIPT = "assets/index-B7x2kQ9d.js"
INDEX_STYLE = "assets/index-C4mZ8pLw.css"


def frontend_build(address: str, config: EnvironmentConfig) -> dict[str, SiteObject]:
    """The files tools/frontend.py would publish for this environment, with its content types and Cache-Control."""
    files = {
        "index.html": (
            '<!doctype html><html lang="ko"><head><meta charset="UTF-8"><title>ERP</title>'
            f'<script type="module" crossorigin src="/{INDEX_SCRIPT}"></script>'
            f'<link rel="stylesheet" crossorigin href="/{INDEX_STYLE}"></head>'
            '<body><div id="root"></div></body></html>'
        ),
        INDEX_SCRIPT: f'const VITE_API_BASE_URL="{address}",VITE_COGNITO_REGION="{config.region}";',
        INDEX_STYLE: "#root{min-height:100vh}",
        "favicon.ico": "\x00\x00\x01\x00",
    }
    return {key: SiteObject(body, content_type(key), cache_control(key)) for key, body in files.items()}


class World:
    """A fresh copy of one environment for one test."""

    def __init__(self, platform: Platform, *, context: Callable[[], Any], records: list[dict]):
        self.platform = platform
        self.records = records  # the employees table as the test starts (the sample rows)
        self.env = platform.env
        self.config = platform.config
        self.clock = Clock()
        self.issuer = TokenIssuer(self.clock)
        self.journeys: list[Journey] = []  # every journey run in this world, in order (tests/journeys/report.py)
        self.pool = UserPool(platform.pool, issuer=self.issuer, triggers=platform.triggers)
        self.lambdas = {k: LambdaFunction(f, context) for k, f in platform.functions.items()}
        for function in self.lambdas.values():
            function.new_container()
        ports = {s.name: s.port for s in self.config.services}
        self.kafka = Kafka()
        self.cluster = Cluster(self.config.namespace)
        objects = platform.objects
        self.approvals = ApprovalRequestService(
            self.cluster, self.kafka, deployment_environment(objects, "approval-request-service")
        )
        self.processing = ApprovalProcessingService(
            self.kafka, deployment_environment(objects, "approval-processing-service")
        )
        self.notifications = NotificationService()
        self.fakes = {f.name: f for f in (self.approvals, self.processing, self.notifications)}
        wire_cluster(
            self.cluster,
            platform.stacks,
            f"{platform.prefix}-workloads",
            objects,
            fakes=self.fakes,
            ports=ports,
            lambdas=self.lambdas,
        )
        self.api = HttpApi(
            platform.stacks,
            f"{platform.prefix}-api",
            service_ports={s.port: s.name for s in self.config.services},
            issuer=self.issuer,
            clock=self.clock,
        )
        self.api.lambdas = self.lambdas
        self.api.services = self.fakes
        # The environment's one public address: the frontend's files, and /api/* through to self.api.
        self.edge = Distribution(platform.stacks, f"{platform.prefix}-edge", api=self.api)
        self.site = frontend_build(self.edge.address, self.config)
        self.edge.publish(self.site)
        self.people: dict[str, Person] = {}

    # --- people and journeys -----------------------------------------------------------------------

    def person(self, name: str, email: str, position: str, department: str) -> Person:
        person = Person(self, name, email, position, department)
        self.people[email] = person
        return person

    def journey(self, name: str, within: str | None = None) -> Journey:
        journey = Journey(self.env, name, within)
        self.journeys.append(journey)
        return journey

    def record(self, **match: Any) -> dict:
        """The sample row whose columns equal `match` (e.g. email=None: the legacy record)."""
        found = [r for r in self.records if all(r.get(k) == v for k, v in match.items())]
        if not found:
            raise JourneyFailure(f"{self.env}: no sample employee row with {match} (tests/handlers/conftest.py SEED)")
        return found[0]

    def address(self, local: str) -> str:
        """An address on the environment's first self-sign-up domain."""
        return f"{local}@{self.config.auth.allowed_signup_domains[0]}"

    @property
    def manager_group(self) -> str:
        return self.config.auth.manager_groups[0]


@dataclass
class Person:
    """Someone using the ERP frontend (and reading their own mailbox)."""

    world: World
    name: str
    email: str
    position: str
    department: str
    password: str = PASSWORD
    tokens: Tokens | None = None
    eid: int | None = None
    claims: dict = field(default_factory=dict)  # the ID token's, as the frontend reads them

    # --- identity (Cognito through amazon-cognito-identity-js) -------------------------------------

    def sign_up(self, j: Journey, expect: str = "ok") -> Any:
        pool = self.world.pool
        attributes = {
            "email": self.email,
            "name": self.name,
            "custom:position": self.position,
            "custom:department": self.department,
        }
        return j.cognito(
            f"Cognito SignUp {self.email}",
            lambda: pool.sign_up(pool.settings.client_id, self.email, self.password, attributes),
            expect,
        )

    def click_mail_link(self, j: Journey) -> None:
        """The person opens the sign-up mail in their own mailbox and follows the link."""
        pool = self.world.pool

        def act() -> str:
            mails = pool.mails_to(self.email)
            if not mails:
                user = pool.users.get(pool._key(self.email))
                status = user.status if user else "no account"
                raise JourneyStepError(f"no mail arrived (account {status})")
            mail = mails[-1]
            if mail.kind != "link":
                raise JourneyStepError("the mail holds a code (CONFIRM_WITH_CODE); the frontend has no code screen")
            pool.open_link(mail)
            return "confirmed"

        j.cognito(f"open the sign-up mail to {self.email} and follow its link", act, "ok")

    def sign_in(self, j: Journey, expect: str = "ok") -> Any:
        pool = self.world.pool
        result = j.cognito(
            f"Cognito sign-in (SRP) {self.email}",
            lambda: pool.sign_in_srp(pool.settings.client_id, self.email, self.password),
            expect,
        )
        if isinstance(result, Tokens):
            self.tokens = result
            self.claims = result.id_claims
            linked = self.claims.get("custom:employeeId")
            self.eid = int(linked) if linked else random.Random(self.email).randint(1, 100)
        return result

    # --- the frontend's API calls ------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, bearer: bool = True, token: str | None = None
    ) -> HttpResponse:
        edge = self.world.edge
        # Same-origin XHR from the page the edge served: Host and Origin are the edge's own address.
        headers = {"host": edge.host, "accept": "application/json, text/plain, */*", "origin": edge.address}
        if token is None and bearer and self.tokens is not None:
            token = self.tokens.access_token
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return edge.handle(HttpRequest.json(method, path, body, headers))

    def call(self, j: Journey, method: str, path: str, body: Any = None, *, expect: Any = 200, **options) -> Any:
        """One API call as a journey step; returns the decoded body."""
        return j.http(self, method, path, body, expect=expect, **options).body

    def link_employee(self, j: Journey) -> int:
        """J2 after sign-in: find the employee record (email, else name+position+department), claim or create."""
        employees = self.call(j, "GET", "/api/employees")
        email = self.claims.get("email")
        mine = (self.claims.get("name"), self.claims.get("custom:position"), self.claims.get("custom:department"))
        match = next((e for e in employees if email and e.get("email") == email), None) or next(
            (e for e in employees if (e.get("name"), e.get("position"), e.get("department")) == mine), None
        )
        body = {"name": mine[0], "department": mine[2], "position": mine[1], "email": email}
        if match is None:
            self.eid = self.call(j, "POST", "/api/employees", body)["id"]
        else:
            if not match.get("email"):
                self.call(j, "PUT", f"/api/employees/{match['id']}", body)
            self.eid = match["id"]
        return self.eid


class JourneyStepError(Exception):
    """An identity step that cannot be carried out (no mail, no link)."""


class Journey:
    def __init__(self, env: str, name: str, within: str | None = None):
        self.env, self.name, self.within = env, name, within
        self.steps: list[str] = []

    def _fail(self, call: str, expected: str, got: str) -> None:
        where = f" (setting up {self.within})" if self.within and self.within != self.name else ""
        raise JourneyFailure(
            f"{self.env} {self.name} step {len(self.steps)} {call}: expected {expected}, got {got}{where}"
        )

    def cognito(self, call: str, action: Callable[[], T], expect: str = "ok") -> T | CognitoError | None:
        """An identity step. `expect`: "ok", or the Cognito error code it must fail with."""
        self.steps.append(call)
        try:
            result = action()
        except CognitoError as exc:
            if expect == exc.code:
                return exc
            self._fail(call, "success" if expect == "ok" else expect, str(exc))
        except (SignInNeverSettles, JourneyStepError) as exc:
            self._fail(call, "success" if expect == "ok" else expect, str(exc))
        if expect != "ok":
            self._fail(call, expect, "success")
        return result

    def http(
        self,
        person: Person,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: Any = 200,
        at_gateway: bool = False,
        bearer: bool = True,
        token: str | None = None,
    ) -> HttpResponse:
        """One API call. `expect`: a status or a tuple of them; `at_gateway`: the gateway must answer itself."""
        call = f"{method} {path}"
        self.steps.append(call)
        response = person.request(method, path, body, bearer=bearer, token=token)
        wanted = expect if isinstance(expect, tuple) else (expect,)
        expected = " or ".join(str(s) for s in wanted) + (" from the gateway" if at_gateway else "")
        if response.status not in wanted:
            origin = f" from {response.reached}" if at_gateway and response.reached else ""
            self._fail(call, expected, response.summary() + origin)
        if at_gateway and response.reached is not None:
            self._fail(call, expected, f"{response.summary()} from {response.reached}")
        return response

    def check(self, what: str, actual: Any, expected: Any) -> None:
        """A step that looks at the outcome (a balance, a mail, a notification)."""
        self.steps.append(what)
        if actual != expected:
            self._fail(what, _show(expected), _show(actual))

    def check_that(self, what: str, condition: bool, got: Any) -> None:
        self.steps.append(what)
        if not condition:
            self._fail(what, "it to hold", _show(got))


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)

"""The SYNTHESIZED CloudFront distribution as a request router: behaviours, the viewer-request function, the
policies, the bucket behind Origin Access Control and the HTTP API behind an HttpOrigin.

Everything the template says is read from it; what it only names (a managed policy's ID) comes from the tables
below, copied from the CloudFront developer guide. A value the model cannot follow raises `Unresolvable`.

- Behaviour selection ("Cache behavior settings" > "Path pattern"): the cache behaviours in template order, the
  first whose PathPattern matches the URI path (`*` any run of characters, `?` exactly one, case-sensitive), else
  the default behaviour. A method outside the behaviour's AllowedMethods is refused by CloudFront (403), as is a
  GET with a body ("GET requests that include a body"), plain http on an https-only behaviour (403; a
  redirect-to-https one answers 301), and a Host that is neither an alias nor the distribution's own name.
- Viewer-request functions (FunctionAssociations): the REAL FunctionCode of the AWS::CloudFront::Function, run by
  node in a vm context (cloudfront-js event structure 1.0) once per distinct event, the result cached; a function
  that answers itself (statusCode) is the response. Lambda@Edge and viewer-response functions are not modelled.
- What reaches an origin ("Control origin requests with a policy", "HTTP request headers and CloudFront
  behavior"): the headers, cookies and query strings of the cache policy's cache key plus those of the origin
  request policy (or the legacy ForwardedValues); every other viewer header is removed (Authorization included)
  except the few CloudFront always passes on; Host is the origin's domain unless a policy forwards the viewer's;
  CloudFront adds Via, X-Forwarded-For and X-Amz-Cf-Id; User-Agent becomes "Amazon CloudFront" unless forwarded.
- The S3 origin: a dict of published objects. The bucket policy decides (the caller is cloudfront.amazonaws.com
  with aws:SourceArn = this distribution, through the origin's Origin Access Control): s3:GetObject serves a key,
  and a missing key is 404 only if s3:ListBucket is granted, else 403 (AccessDenied), as S3 answers.
- The API origin: its DomainName must resolve to the environment's HTTP API, either its execute-api endpoint
  (not disabled, with a $default stage) or an AWS::ApiGatewayV2::DomainName that an ApiMapping maps to it;
  anything else fails loudly. API Gateway answers a Host it does not serve with 403 {"message":"Forbidden"}.
- Responses: an origin's error status listed in CustomErrorResponses is replaced (ResponseCode, and the
  ResponsePagePath fetched from its behaviour's origin); the behaviour's response headers policy (security
  headers, custom headers, removed headers) is applied to every response of the behaviour.
Not modelled: caching (every request reaches its origin), the web ACL, compression, CORS config of a response
headers policy, origin groups and failover.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlencode

from tests.support.cloudformation import Stacks, Unresolvable
from tests.support.http_api import HttpRequest, HttpResponse, json_response

# --- the managed policies, by ID (CloudFront Developer Guide, "Use managed cache policies" and "Use managed origin
# request policies"). A template names these by ID only; an ID missing here raises Unresolvable.


@dataclass(frozen=True)
class Selection:
    """Which names of one kind (headers, cookies, query strings) a policy includes.
    `behavior`: none | all | whitelist | allExcept; header names compare case-insensitively."""

    behavior: str = "none"
    names: frozenset[str] = frozenset()
    case_sensitive: bool = True

    def includes(self, name: str) -> bool:
        key = name if self.case_sensitive else name.lower()
        if self.behavior == "all":
            return True
        if self.behavior == "whitelist":
            return key in self.names
        if self.behavior == "allExcept":
            return key not in self.names
        return False

    @staticmethod
    def of(behavior: str, names: list[str] | None, *, case_sensitive: bool = True) -> Selection:
        canonical = {"allViewer": "all", "allViewerAndWhitelistCloudFront": "all"}.get(behavior, behavior)
        if canonical not in ("none", "all", "whitelist", "allExcept"):
            raise Unresolvable(f"policy behaviour {behavior!r} is not modelled")
        if behavior == "allViewerAndWhitelistCloudFront":
            names = []  # the listed names are CloudFront headers, added (Forwarding.cloudfront_headers)
        folded = frozenset(n if case_sensitive else n.lower() for n in names or [])
        return Selection(canonical, folded, case_sensitive)


def _headers(behavior: str, names: list[str] | None = None) -> Selection:
    return Selection.of(behavior, names, case_sensitive=False)


@dataclass(frozen=True)
class Forwarding:
    """What of the viewer request goes to the origin (one policy, or the union of two)."""

    headers: Selection = Selection(case_sensitive=False)
    cookies: Selection = Selection()
    query: Selection = Selection()
    cloudfront_headers: frozenset[str] = frozenset()  # CloudFront-* headers the policy adds
    name: str = ""

    def union(self, other: Forwarding) -> Forwarding:
        return Forwarding(
            _union(self.headers, other.headers),
            _union(self.cookies, other.cookies),
            _union(self.query, other.query),
            self.cloudfront_headers | other.cloudfront_headers,
            f"{self.name} + {other.name}" if self.name and other.name else self.name or other.name,
        )


def _union(a: Selection, b: Selection) -> Selection:
    if a.behavior == "none":
        return b
    if b.behavior == "none":
        return a
    if a.behavior == "all" or b.behavior == "all":
        return Selection("all", frozenset(), a.case_sensitive)
    if a.behavior == b.behavior == "whitelist":
        return Selection("whitelist", a.names | b.names, a.case_sensitive)
    if a.behavior == b.behavior == "allExcept":
        return Selection("allExcept", a.names & b.names, a.case_sensitive)
    allowed, excepted = (a, b) if a.behavior == "whitelist" else (b, a)
    return Selection("allExcept", excepted.names - allowed.names, a.case_sensitive)


# "AllViewerExceptHostHeader ... also includes additional CloudFront headers for HTTP protocol, HTTP version, TLS
# version, and all device type and viewer location headers" (the ones this model fills in are listed).
_VIEWER_CLOUDFRONT_HEADERS = frozenset(
    {"cloudfront-forwarded-proto", "cloudfront-viewer-http-version", "cloudfront-viewer-address"}
)
MANAGED_CACHE_POLICIES: dict[str, Forwarding] = {
    "658327ea-f89d-4fab-a63d-7e88639e58f6": Forwarding(name="CachingOptimized"),
    "4135ea2d-6df8-44a3-9df3-4b5a84be39ad": Forwarding(name="CachingDisabled"),
    "b2884449-e4de-46a7-ac36-70bc7f1ddd6d": Forwarding(name="CachingOptimizedForUncompressedObjects"),
    "2e54312d-136d-493c-8eb9-b001f22f67d2": Forwarding(
        _headers("whitelist", ["Authorization", "CloudFront-Viewer-Country", "Host"]),
        Selection("all"),
        Selection("all"),
        name="Amplify",
    ),
}
MANAGED_ORIGIN_REQUEST_POLICIES: dict[str, Forwarding] = {
    "216adef6-5c7f-47e4-b989-5492eafa07d3": Forwarding(
        _headers("allViewer"), Selection("all"), Selection("all"), name="AllViewer"
    ),
    "b689b0a8-53d0-40ab-baf2-68738e2966ac": Forwarding(
        _headers("allExcept", ["Host"]),
        Selection("all"),
        Selection("all"),
        _VIEWER_CLOUDFRONT_HEADERS,
        name="AllViewerExceptHostHeader",
    ),
    "59781a5b-3903-41f3-afcb-af62929ccde1": Forwarding(_headers("whitelist", ["Origin"]), name="CORS-CustomOrigin"),
    "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf": Forwarding(
        _headers("whitelist", ["Origin", "Access-Control-Request-Headers", "Access-Control-Request-Method"]),
        name="CORS-S3Origin",
    ),
    "acba4595-bd28-49b8-b9fe-13317c0390fa": Forwarding(
        _headers("whitelist", ["User-Agent", "Referer"]), name="UserAgentRefererHeaders"
    ),
}
# Viewer headers CloudFront passes on whatever the policies say ("HTTP request headers and CloudFront behavior").
ALWAYS_FORWARDED = frozenset(
    {
        "content-length",
        "content-md5",
        "content-type",
        "expect",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "max-forwards",
        "pragma",
        "range",
        "transfer-encoding",
    }
)
VIEWER_IP = "203.0.113.10"


# --- CloudFront Functions, run by node ------------------------------------------------------------------------

_RUNNER = r"""
const vm = require('vm');
let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', async () => {
  const { code, event } = JSON.parse(input);
  const allowed = { crypto: 'crypto', querystring: 'querystring', buffer: 'buffer' };
  const sandbox = {
    console: { log: () => {} },
    require: (name) => { if (!(name in allowed)) throw new Error('module ' + name + ' is not available'); return require(allowed[name]); },
  };
  try {
    const handler = vm.runInNewContext(code + '\n;handler', sandbox, { filename: 'function.js' });
    const result = await handler(event);
    process.stdout.write(JSON.stringify(result === undefined ? null : result));
  } catch (e) {
    process.stderr.write(String(e && e.stack || e));
    process.exit(1);
  }
});
"""


class FunctionError(RuntimeError):
    """The function threw: CloudFront answers 503 (FunctionExecutionError)."""


@functools.lru_cache(maxsize=4096)
def _run_node(code: str, event_json: str) -> tuple[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise Unresolvable("node is not on PATH: the distribution's CloudFront Function cannot be run")
    done = subprocess.run(
        [node, "-e", _RUNNER],
        input=json.dumps({"code": code, "event": json.loads(event_json)}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return ("error", done.stderr.strip()) if done.returncode != 0 else ("ok", json.loads(done.stdout))


def run_function(code: str, event: dict) -> Any:
    """The function's result for `event`, from node: one run per distinct (code, event), then cached."""
    kind, value = _run_node(code, json.dumps(event, sort_keys=True))
    if kind == "error":
        raise FunctionError(value)
    return copy.deepcopy(value)


@dataclass(frozen=True)
class ViewerFunction:
    logical_id: str
    name: str
    code: str


def _event_values(pairs: list[tuple[str, str]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name, value in pairs:
        if name in out:
            entry = out[name]
            entry.setdefault("multiValue", [{"value": entry["value"]}]).append({"value": value})
        else:
            out[name] = {"value": value}
    return out


def _from_event(values: Mapping[str, dict]) -> list[tuple[str, str]]:
    pairs = []
    for name, entry in (values or {}).items():
        multi = entry.get("multiValue")
        pairs.extend((name, m["value"]) for m in multi) if multi else pairs.append((name, entry["value"]))
    return pairs


# --- origins ---------------------------------------------------------------------------------------------------


@dataclass
class SiteObject:
    body: bytes | str
    content_type: str
    cache_control: str | None = None


@dataclass
class OriginRequest:
    method: str
    path: str  # the URI as CloudFront sends it (after the viewer function, OriginPath prepended)
    query: str
    headers: dict[str, str]
    body: str | None


class Origin(Protocol):
    id: str
    domain: str

    def fetch(self, request: OriginRequest) -> HttpResponse: ...


def _access_denied() -> HttpResponse:
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
    return HttpResponse(403, body, {"content-type": "application/xml"}, None)


class S3Origin:
    """A bucket read through Origin Access Control; `objects` is what was published (key -> SiteObject)."""

    def __init__(self, origin_id: str, stacks: Stacks, bucket: tuple[str, str], *, distribution_arn: str):
        self.id = origin_id
        self.stacks = stacks
        self.stack, self.bucket = bucket
        self.name = f"S3 {self.bucket}"
        self.domain = str(stacks.get_att(self.stack, self.bucket, "RegionalDomainName"))
        self.bucket_arn = stacks.get_att(self.stack, self.bucket, "Arn")
        bucket_ref = stacks.ref(self.stack, self.bucket)
        self.statements = [
            statement
            for policy in stacks.resources(self.stack, "AWS::S3::BucketPolicy").values()
            if stacks.resolve(self.stack, policy["Properties"]["Bucket"]) == bucket_ref
            for statement in _as_list(stacks.resolve(self.stack, policy["Properties"]["PolicyDocument"])["Statement"])
        ]
        # Who asks: CloudFront's service principal, signing through OAC on behalf of this distribution, over TLS.
        self.context = {
            "aws:sourcearn": distribution_arn,
            "aws:sourceaccount": stacks.account,
            "aws:securetransport": "true",
        }
        self.can_list = _allowed(self.statements, "s3:ListBucket", self.bucket_arn, self.context)
        self.objects: dict[str, SiteObject] = {}

    def fetch(self, request: OriginRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            # OAC signs only what the bucket policy grants; this model grants reads at most.
            return _access_denied()
        key = unquote(request.path.lstrip("/"))
        if not _allowed(self.statements, "s3:GetObject", f"{self.bucket_arn}/{key}", self.context):
            return _access_denied()
        found = self.objects.get(key)
        if found is None:
            if self.can_list:
                body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code></Error>'
                return HttpResponse(404, body, {"content-type": "application/xml"}, self.name)
            response = _access_denied()
            response.reached = self.name
            return response
        body = found.body.decode() if isinstance(found.body, bytes) else found.body
        raw = body.encode()
        headers = {
            "content-type": found.content_type,
            "content-length": str(len(raw)),
            "etag": f'"{hashlib.md5(raw, usedforsecurity=False).hexdigest()}"',
        }
        if found.cache_control:
            headers["cache-control"] = found.cache_control
        return HttpResponse(200, None if request.method == "HEAD" else body, headers, self.name)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _allowed(statements: list[dict], action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM evaluation for the CloudFront service principal: an explicit Deny wins, else any Allow."""
    allowed = False
    for statement in statements:
        principal = statement.get("Principal")
        if principal != "*" and not (
            isinstance(principal, dict)
            and (
                "*" in _as_list(principal.get("AWS", []))
                or "cloudfront.amazonaws.com" in _as_list(principal.get("Service", []))
            )
        ):
            continue
        if not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(statement.get("Action", []))):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement.get("Resource", []))):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def _conditions_hold(conditions: dict, context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            actual = context.get(key.lower())
            if actual is None:
                raise Unresolvable(f"bucket policy condition key {key} is not modelled")
            values = [str(v) for v in _as_list(expected)]
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual in values
            elif operator in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(actual, v) for v in values)
            elif operator == "Bool":
                ok = actual in [v.lower() for v in values]
            else:
                raise Unresolvable(f"bucket policy condition operator {operator} is not modelled")
            if not ok:
                return False
    return True


class HttpApiBackend(Protocol):
    stack: str
    api_id: str

    def handle(self, request: HttpRequest) -> HttpResponse: ...


class ApiOrigin:
    """An HttpOrigin in front of the environment's HTTP API (by its execute-api name or a custom domain)."""

    def __init__(self, origin_id: str, domain: str, api: HttpApiBackend, *, hosts: set[str], mapping_key: str):
        self.id, self.domain, self.api = origin_id, domain, api
        self.hosts = hosts  # every Host this API answers (execute-api if enabled, its mapped domains)
        self.mapping_key = mapping_key

    def fetch(self, request: OriginRequest) -> HttpResponse:
        host = request.headers.get("host", "")
        if host not in self.hosts:
            # API Gateway serves only its own names: a viewer's Host forwarded to it matches no API.
            return json_response(403, {"message": "Forbidden"})
        path = request.path
        if self.mapping_key:
            prefix = f"/{self.mapping_key}"
            if path != prefix and not path.startswith(prefix + "/"):
                return json_response(404, {"message": "Not Found"})
            path = path[len(prefix) :] or "/"
        return self.api.handle(HttpRequest(request.method, path, dict(request.headers), request.body, request.query))


# --- response headers policies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseHeadersPolicy:
    name: str
    set_headers: tuple[tuple[str, str, bool], ...]  # (lower-case name, value, override)
    remove: frozenset[str] = frozenset()

    def apply(self, headers: dict[str, str]) -> dict[str, str]:
        out = {k: v for k, v in headers.items() if k not in self.remove}
        for name, value, override in self.set_headers:
            if override or name not in out:
                out[name] = value
        return out

    @staticmethod
    def from_config(config: dict) -> ResponseHeadersPolicy:
        if config.get("CorsConfig"):
            raise Unresolvable(f"response headers policy {config.get('Name')}: CorsConfig is not modelled")
        out: list[tuple[str, str, bool]] = []
        security = config.get("SecurityHeadersConfig") or {}
        if "StrictTransportSecurity" in security:
            s = security["StrictTransportSecurity"]
            value = f"max-age={int(s['AccessControlMaxAgeSec'])}"
            value += "; includeSubDomains" if s.get("IncludeSubdomains") else ""
            value += "; preload" if s.get("Preload") else ""
            out.append(("strict-transport-security", value, bool(s.get("Override"))))
        if "ContentSecurityPolicy" in security:
            s = security["ContentSecurityPolicy"]
            out.append(("content-security-policy", s["ContentSecurityPolicy"], bool(s.get("Override"))))
        if "ContentTypeOptions" in security:
            out.append(("x-content-type-options", "nosniff", bool(security["ContentTypeOptions"].get("Override"))))
        if "FrameOptions" in security:
            s = security["FrameOptions"]
            out.append(("x-frame-options", s["FrameOption"], bool(s.get("Override"))))
        if "ReferrerPolicy" in security:
            s = security["ReferrerPolicy"]
            out.append(("referrer-policy", s["ReferrerPolicy"], bool(s.get("Override"))))
        if "XSSProtection" in security:
            s = security["XSSProtection"]
            value = "1" if s.get("Protection") else "0"
            value += "; mode=block" if s.get("Protection") and s.get("ModeBlock") else ""
            value += f"; report={s['ReportUri']}" if s.get("Protection") and s.get("ReportUri") else ""
            out.append(("x-xss-protection", value, bool(s.get("Override"))))
        for item in (config.get("CustomHeadersConfig") or {}).get("Items", []):
            out.append((item["Header"].lower(), item["Value"], bool(item.get("Override"))))
        removed = frozenset(i["Header"].lower() for i in (config.get("RemoveHeadersConfig") or {}).get("Items", []))
        return ResponseHeadersPolicy(config.get("Name", ""), tuple(out), removed)


# --- the distribution -----------------------------------------------------------------------------------------


@dataclass
class Behavior:
    path_pattern: str | None  # None: the default behaviour
    origin: Origin
    allowed_methods: tuple[str, ...]
    viewer_protocol: str
    forwarding: Forwarding
    viewer_request: ViewerFunction | None = None
    response_headers: ResponseHeadersPolicy | None = None
    regex: re.Pattern | None = field(default=None, repr=False)

    def matches(self, path: str) -> bool:
        return self.regex is None or self.regex.fullmatch(path) is not None


def path_pattern_regex(pattern: str) -> re.Pattern:
    """CloudFront's path pattern: `*` any run of characters, `?` one character, case-sensitive; the leading `/`
    is optional."""
    pattern = pattern if pattern.startswith("/") else "/" + pattern
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


class Distribution:
    """One AWS::CloudFront::Distribution of `stack`, with `api` as the HTTP API its API origin must reach."""

    def __init__(self, stacks: Stacks, stack: str, *, api: HttpApiBackend, logical_id: str | None = None):
        self.stacks, self.stack, self.api = stacks, stack, api
        if logical_id is None:
            logical_id, resource = stacks.only(stack, "AWS::CloudFront::Distribution")
        else:
            resource = stacks.resource(stack, logical_id)
        self.logical_id = logical_id
        config = resource["Properties"]["DistributionConfig"]
        self.config = config
        if not config.get("Enabled", True):
            raise Unresolvable(f"{stack}/{logical_id} is disabled")
        self.distribution_id = stacks.ref(stack, logical_id)
        digest = hashlib.sha256(self.distribution_id.encode()).hexdigest()
        # A stand-in for the dxxxxxxxxxxxxx.cloudfront.net name CloudFront assigns (GetAtt DomainName).
        self.domain_name = f"d{digest[:13]}.cloudfront.net"
        self.aliases = [str(a).lower() for a in stacks.resolve(stack, config.get("Aliases", []))]
        self.host = self.aliases[0] if self.aliases else self.domain_name
        self.address = f"https://{self.host}"
        self.arn = f"arn:aws:cloudfront::{stacks.account}:distribution/{self.distribution_id}"
        self.default_root_object = config.get("DefaultRootObject")
        self.origins: dict[str, Origin] = {}
        for origin in config["Origins"]:
            self.origins[origin["Id"]] = self._origin(origin)
        self.s3_origins = [o for o in self.origins.values() if isinstance(o, S3Origin)]
        self.behaviors = [self._behavior(b) for b in config.get("CacheBehaviors", [])]
        self.default = self._behavior(config["DefaultCacheBehavior"], default=True)
        self.error_responses = {
            int(e["ErrorCode"]): e for e in stacks.resolve(stack, config.get("CustomErrorResponses", []))
        }
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, what answered)

    # --- reading the template -------------------------------------------------------------------------------

    def _origin(self, origin: dict) -> Origin:
        domain = self.stacks.resolve(self.stack, origin["DomainName"])
        if origin.get("OriginPath"):
            raise Unresolvable(f"origin {origin['Id']}: OriginPath is not modelled")
        if "S3OriginConfig" in origin:
            where = self.stacks.origin(domain)
            bucket = self.stacks.resource(where.stack, where.logical_id)
            if bucket["Type"] != "AWS::S3::Bucket" or where.attribute not in ("RegionalDomainName", "DomainName"):
                raise Unresolvable(f"origin {origin['Id']}: {domain} is not a bucket's domain name")
            if origin["S3OriginConfig"].get("OriginAccessIdentity"):
                raise Unresolvable(f"origin {origin['Id']}: an origin access identity is not modelled (only OAC)")
            if "OriginAccessControlId" not in origin:
                raise Unresolvable(f"origin {origin['Id']}: a bucket without Origin Access Control is not modelled")
            oac_at = self.stacks.origin(self.stacks.resolve(self.stack, origin["OriginAccessControlId"]))
            oac = self.stacks.resource(oac_at.stack, oac_at.logical_id)["Properties"]["OriginAccessControlConfig"]
            if oac["OriginAccessControlOriginType"] != "s3" or oac["SigningBehavior"] == "never":
                raise Unresolvable(f"origin {origin['Id']}: its Origin Access Control does not sign for S3")
            return S3Origin(origin["Id"], self.stacks, (where.stack, where.logical_id), distribution_arn=self.arn)
        if "CustomOriginConfig" not in origin:
            raise Unresolvable(f"origin {origin['Id']}: neither an S3 nor a custom origin")
        if origin["CustomOriginConfig"].get("OriginProtocolPolicy") == "http-only":
            raise Unresolvable(f"origin {origin['Id']}: http-only, but API Gateway answers HTTPS only")
        self._check_region(origin["DomainName"])
        return self._api_origin(origin["Id"], str(domain))

    def _check_region(self, value: Any) -> None:
        """A weak cross-region reference must read the Api stack in the environment's region."""
        if isinstance(value, list):
            for v in value:
                self._check_region(v)
        elif isinstance(value, dict):
            if "Fn::GetStackOutput" in value:
                region = value["Fn::GetStackOutput"].get("Region")
                if region is not None and self.stacks.resolve(self.stack, region) != self.stacks.region:
                    raise Unresolvable(
                        f"{self.stack}: Fn::GetStackOutput reads region {region}, the API is in {self.stacks.region}"
                    )
            for v in value.values():
                self._check_region(v)

    def _api_origin(self, origin_id: str, domain: str) -> ApiOrigin:
        """The HTTP API this domain name reaches; Unresolvable unless it is `self.api`."""
        stacks, api_stack = self.stacks, self.api.stack
        api_logical, api_resource = stacks.only(api_stack, "AWS::ApiGatewayV2::Api")
        if stacks.ref(api_stack, api_logical) != self.api.api_id:
            raise Unresolvable(f"{api_stack}: its HTTP API is not the one the model was built from")
        region = stacks.region
        execute_api = f"{self.api.api_id}.execute-api.{region}.amazonaws.com"
        enabled = not api_resource["Properties"].get("DisableExecuteApiEndpoint", False)
        stages = {
            stacks.resolve(api_stack, s["Properties"]["StageName"])
            for s in stacks.resources(api_stack, "AWS::ApiGatewayV2::Stage").values()
            if stacks.resolve(api_stack, s["Properties"]["ApiId"]) == self.api.api_id
        }
        mapped: dict[str, str] = {}  # custom domain -> mapping key
        for logical, mapping in stacks.resources(api_stack, "AWS::ApiGatewayV2::ApiMapping").items():
            p = mapping["Properties"]
            if stacks.resolve(api_stack, p["ApiId"]) != self.api.api_id:
                continue
            stage = stacks.resolve(api_stack, p["Stage"])
            if stage != "$default":
                stage_at = stacks.origin(stage)
                stage = stacks.resource(stage_at.stack, stage_at.logical_id)["Properties"]["StageName"]
            if stage != "$default":
                raise Unresolvable(f"{api_stack}/{logical}: a mapping to stage {stage} is not modelled")
            name_at = stacks.origin(stacks.resolve(api_stack, p["DomainName"]))
            name = stacks.resource(name_at.stack, name_at.logical_id)
            if name["Type"] != "AWS::ApiGatewayV2::DomainName":
                raise Unresolvable(f"{api_stack}/{logical}: DomainName is a {name['Type']}")
            mapped[str(stacks.resolve(api_stack, name["Properties"]["DomainName"])).lower()] = p.get(
                "ApiMappingKey", ""
            )
        hosts = set(mapped) | ({execute_api} if enabled else set())
        domain = domain.lower()
        if domain == execute_api:
            if not enabled:
                raise Unresolvable(
                    f"origin {origin_id} is {domain}, the execute-api endpoint of {api_stack}, which "
                    "DisableExecuteApiEndpoint turns off"
                )
            if "$default" not in stages:
                raise Unresolvable(f"origin {origin_id}: {api_stack} has no $default stage at {domain}")
            return ApiOrigin(origin_id, domain, self.api, hosts=hosts, mapping_key="")
        if domain in mapped:
            return ApiOrigin(origin_id, domain, self.api, hosts=hosts, mapping_key=mapped[domain])
        raise Unresolvable(
            f"origin {origin_id} is {domain}: neither the execute-api endpoint of {api_stack} ({execute_api}) nor a "
            f"domain name mapped to its HTTP API ({sorted(mapped) or 'none'})"
        )

    def _policy(self, value: Any, resource_type: str, managed: dict[str, Any], what: str) -> Any:
        resolved = self.stacks.resolve(self.stack, value)
        if isinstance(resolved, str) and resolved in managed:
            return managed[resolved]
        try:
            where = self.stacks.origin(resolved)
        except Unresolvable:
            raise Unresolvable(
                f"{what} {resolved!r}: neither a modelled managed policy nor a template resource"
            ) from None
        resource = self.stacks.resource(where.stack, where.logical_id)
        if resource["Type"] != resource_type or where.attribute is not None:
            raise Unresolvable(f"{what} {resolved!r} is not the Ref of an {resource_type}")
        return self.stacks.resolve(where.stack, resource["Properties"])

    def _forwarding(self, behavior: dict) -> Forwarding:
        if "ForwardedValues" in behavior:
            fv = behavior["ForwardedValues"]
            headers = fv.get("Headers", [])
            cookies = fv.get("Cookies", {"Forward": "none"})
            return Forwarding(
                _headers("all") if "*" in headers else _headers("whitelist" if headers else "none", headers),
                Selection.of(cookies["Forward"], cookies.get("WhitelistedNames")),
                Selection("all" if fv.get("QueryString") else "none"),
                name="ForwardedValues",
            )
        if "CachePolicyId" not in behavior:
            raise Unresolvable("a behaviour with neither CachePolicyId nor ForwardedValues")
        cache = self._policy(
            behavior["CachePolicyId"], "AWS::CloudFront::CachePolicy", MANAGED_CACHE_POLICIES, "cache policy"
        )
        if not isinstance(cache, Forwarding):
            c = cache["CachePolicyConfig"]
            key = c.get("ParametersInCacheKeyAndForwardedToOrigin", {})
            h, k, q = key.get("HeadersConfig", {}), key.get("CookiesConfig", {}), key.get("QueryStringsConfig", {})
            cache = Forwarding(
                _headers(h.get("HeaderBehavior", "none"), h.get("Headers")),
                Selection.of(k.get("CookieBehavior", "none"), k.get("Cookies")),
                Selection.of(q.get("QueryStringBehavior", "none"), q.get("QueryStrings")),
                name=c.get("Name", ""),
            )
        if "OriginRequestPolicyId" not in behavior:
            return cache
        request = self._policy(
            behavior["OriginRequestPolicyId"],
            "AWS::CloudFront::OriginRequestPolicy",
            MANAGED_ORIGIN_REQUEST_POLICIES,
            "origin request policy",
        )
        if not isinstance(request, Forwarding):
            c = request["OriginRequestPolicyConfig"]
            h, k, q = c["HeadersConfig"], c["CookiesConfig"], c["QueryStringsConfig"]
            if h["HeaderBehavior"] == "whitelist" and "authorization" in {n.lower() for n in h.get("Headers", [])}:
                # CloudFront refuses such a policy (400): Authorization by name belongs in the cache key.
                raise Unresolvable(f"origin request policy {c.get('Name')}: lists Authorization, CloudFront refuses it")
            extra = frozenset(
                n.lower() for n in h.get("Headers", []) if h["HeaderBehavior"] == "allViewerAndWhitelistCloudFront"
            )
            request = Forwarding(
                _headers(h["HeaderBehavior"], h.get("Headers")),
                Selection.of(k["CookieBehavior"], k.get("Cookies")),
                Selection.of(q["QueryStringBehavior"], q.get("QueryStrings")),
                extra,
                name=c.get("Name", ""),
            )
        return cache.union(request)

    def _behavior(self, b: dict, *, default: bool = False) -> Behavior:
        pattern = None if default else b["PathPattern"]
        if b.get("LambdaFunctionAssociations"):
            raise Unresolvable(f"behaviour {pattern or 'default'}: Lambda@Edge is not modelled")
        if b.get("TrustedKeyGroups") or b.get("TrustedSigners"):
            raise Unresolvable(f"behaviour {pattern or 'default'}: signed URLs are not modelled")
        viewer_request = None
        for association in b.get("FunctionAssociations", []):
            if association["EventType"] != "viewer-request":
                raise Unresolvable(f"behaviour {pattern or 'default'}: a {association['EventType']} function")
            where = self.stacks.origin(self.stacks.resolve(self.stack, association["FunctionARN"]))
            function = self.stacks.resource(where.stack, where.logical_id)
            if function["Type"] != "AWS::CloudFront::Function":
                raise Unresolvable(f"behaviour {pattern or 'default'}: FunctionARN names a {function['Type']}")
            p = function["Properties"]
            if p["FunctionConfig"]["Runtime"] not in ("cloudfront-js-1.0", "cloudfront-js-2.0"):
                raise Unresolvable(f"{where.logical_id}: runtime {p['FunctionConfig']['Runtime']} is not modelled")
            if p["FunctionConfig"].get("KeyValueStoreAssociations"):
                raise Unresolvable(f"{where.logical_id}: key value stores are not modelled")
            if not p.get("AutoPublish", False):
                raise Unresolvable(f"{where.logical_id}: not AutoPublish, so the LIVE stage may run other code")
            code = self.stacks.resolve(where.stack, p["FunctionCode"])
            viewer_request = ViewerFunction(where.logical_id, str(p.get("Name", where.logical_id)), code)
        headers_policy = None
        if "ResponseHeadersPolicyId" in b:
            config = self._policy(
                b["ResponseHeadersPolicyId"], "AWS::CloudFront::ResponseHeadersPolicy", {}, "response headers policy"
            )
            headers_policy = ResponseHeadersPolicy.from_config(config["ResponseHeadersPolicyConfig"])
        if b["TargetOriginId"] not in self.origins:
            raise Unresolvable(f"behaviour {pattern or 'default'}: no origin {b['TargetOriginId']}")
        return Behavior(
            path_pattern=pattern,
            origin=self.origins[b["TargetOriginId"]],
            allowed_methods=tuple(b.get("AllowedMethods", ["GET", "HEAD"])),
            viewer_protocol=b["ViewerProtocolPolicy"],
            forwarding=self._forwarding(b),
            viewer_request=viewer_request,
            response_headers=headers_policy,
            regex=None if pattern is None else path_pattern_regex(pattern),
        )

    # --- publishing -----------------------------------------------------------------------------------------

    def publish(self, objects: Mapping[str, SiteObject]) -> None:
        """Put the frontend's files in the (one) bucket behind the distribution."""
        if len(self.s3_origins) != 1:
            raise Unresolvable(f"{self.stack}: expected one bucket origin, found {len(self.s3_origins)}")
        self.s3_origins[0].objects.update(objects)

    # --- answering ------------------------------------------------------------------------------------------

    def select(self, path: str) -> Behavior:
        return next((b for b in self.behaviors if b.matches(path)), self.default)

    def handle(self, request: HttpRequest, *, scheme: str = "https") -> HttpResponse:
        path, _, inline_query = request.path.partition("?")
        query = request.query or inline_query
        headers = {k.lower(): v for k, v in request.headers.items()}
        headers.setdefault("host", self.host)
        behavior = self.select(path)
        response = self._answer(request.method, path, query, headers, request.body, behavior, scheme)
        if behavior.response_headers is not None:
            response.headers = behavior.response_headers.apply(response.headers)
        self.log.append((request.method, request.path, response.reached))
        return response

    def _own(self, status: int, reason: str) -> HttpResponse:
        """A response CloudFront makes itself (its HTML error page)."""
        title = "<HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD>"
        body = f"<HTML>{title}<BODY>{status} ERROR: {reason}</BODY></HTML>"
        return HttpResponse(status, body, {"content-type": "text/html", "x-cache": "Error from cloudfront"}, None)

    def _answer(
        self, method: str, path: str, query: str, headers: dict, body: str | None, behavior: Behavior, scheme: str
    ) -> HttpResponse:
        if headers["host"].lower() not in {*self.aliases, self.domain_name}:
            return self._own(403, f"Bad request: {headers['host']} is not a name of this distribution")
        if scheme != "https":
            if behavior.viewer_protocol == "https-only":
                return self._own(403, "this behaviour accepts HTTPS only")
            if behavior.viewer_protocol == "redirect-to-https":
                response = self._own(301, "Moved Permanently")
                response.headers["location"] = f"https://{headers['host']}{path}" + (f"?{query}" if query else "")
                return response
        if method not in behavior.allowed_methods:
            return self._own(403, f"{method} is not an allowed method of this behaviour")
        if method == "GET" and body:
            return self._own(403, "a GET request with a body")
        uri, cookies = path, _cookies(headers.get("cookie", ""))
        query_pairs = parse_qsl(query, keep_blank_values=True)
        if behavior.viewer_request is not None:
            event = {
                "version": "1.0",
                "context": {
                    "distributionDomainName": self.domain_name,
                    "distributionId": self.distribution_id,
                    "eventType": "viewer-request",
                    "requestId": "edge-model",
                },
                "viewer": {"ip": VIEWER_IP},
                "request": {
                    "method": method,
                    "uri": uri,
                    "querystring": _event_values(query_pairs),
                    "headers": _event_values([(k, v) for k, v in headers.items() if k != "cookie"]),
                    "cookies": _event_values(cookies),
                },
            }
            try:
                result = run_function(behavior.viewer_request.code, event)
            except FunctionError:
                return self._own(503, f"the function {behavior.viewer_request.name} failed")
            if not isinstance(result, dict):
                return self._own(503, f"the function {behavior.viewer_request.name} returned no request")
            if "statusCode" in result:
                out = {k.lower(): v["value"] for k, v in (result.get("headers") or {}).items()}
                out["x-cache"] = "FunctionGeneratedResponse from cloudfront"
                return HttpResponse(int(result["statusCode"]), result.get("body"), out, None)
            uri = result.get("uri", uri)
            query_pairs = _from_event(result.get("querystring", {}))
            headers = {k.lower(): v for k, v in _from_event(result.get("headers", {}))}
            cookies = _from_event(result.get("cookies", {}))
        if uri == "/" and self.default_root_object:
            uri = "/" + self.default_root_object
        forwarded = self._origin_request(method, uri, query_pairs, headers, cookies, body, behavior)
        response = behavior.origin.fetch(forwarded)
        response.headers = dict(response.headers)
        response.headers.setdefault(
            "x-cache", "Miss from cloudfront" if response.status < 400 else "Error from cloudfront"
        )
        return self._error_page(response)

    def _origin_request(
        self,
        method: str,
        uri: str,
        query_pairs: list[tuple[str, str]],
        headers: dict[str, str],
        cookies: list[tuple[str, str]],
        body: str | None,
        behavior: Behavior,
    ) -> OriginRequest:
        policy = behavior.forwarding
        origin_host = behavior.origin.domain
        out = {
            k: v for k, v in headers.items() if k != "cookie" and (k in ALWAYS_FORWARDED or policy.headers.includes(k))
        }
        if "host" not in out:
            out["host"] = origin_host  # the viewer's Host only when a policy forwards it
        if not policy.headers.includes("user-agent"):
            out["user-agent"] = "Amazon CloudFront"
        kept = [(n, v) for n, v in cookies if policy.cookies.includes(n)]
        if kept:
            out["cookie"] = "; ".join(f"{n}={v}" for n, v in kept)
        values = {
            "cloudfront-forwarded-proto": "https",
            "cloudfront-viewer-http-version": "2.0",
            "cloudfront-viewer-address": f"{VIEWER_IP}:443",
        }
        for name in policy.cloudfront_headers:
            if name in values:
                out[name] = values[name]
        edge_id = hashlib.md5(self.domain_name.encode(), usedforsecurity=False).hexdigest()
        out["via"] = f"2.0 {edge_id}.cloudfront.net (CloudFront)"
        out["x-forwarded-for"] = ", ".join(filter(None, [headers.get("x-forwarded-for"), VIEWER_IP]))
        out["x-amz-cf-id"] = "edge-model"
        query = urlencode([(n, v) for n, v in query_pairs if policy.query.includes(n)], quote_via=quote)
        return OriginRequest(method, uri, query, out, body if method not in ("GET", "HEAD") else None)

    def _error_page(self, response: HttpResponse) -> HttpResponse:
        """CustomErrorResponses: an origin's error replaced by the configured page and status."""
        custom = self.error_responses.get(response.status)
        if custom is None:
            return response
        status = int(custom.get("ResponseCode") or response.status)
        page_path = custom.get("ResponsePagePath")
        if not page_path:
            return response
        behavior = self.select(page_path)
        forwarded = self._origin_request("GET", page_path, [], {"host": self.host}, [], None, behavior)
        page = behavior.origin.fetch(forwarded)
        if page.status >= 400:
            return response  # CloudFront returns the origin's error when the page itself fails
        page.status = status
        page.headers["x-cache"] = "Error from cloudfront"
        return page


def _cookies(header: str) -> list[tuple[str, str]]:
    pairs = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs

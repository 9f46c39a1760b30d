"""In-memory stand-ins for the three Spring services the platform runs in EKS, and the cluster network.

Each fake implements exactly the controller paths and behaviour of ../shared/erp-services.md section 3
(nothing else: an unknown path is Spring's 404, a known path with another method its 405), behind the
request handling of Spring Boot 3 on Tomcat: the path is decoded, an encoded slash (%2F) or backslash is
refused with 400 (Tomcat's default), repeated slashes are merged and dot segments resolved (400 if they climb
above the root); then Spring 6 matches it case-sensitively with no trailing-slash match, `{var}` being one
non-empty segment; HEAD is served by the GET handler; Long path variables that are not numbers are 400.
Errors are Spring's default JSON {timestamp,status,error,path} unless the service sends {"error": ...}.

`route_of(method, path)` says which handler a request would reach (None: none), so a test can ask whether
a path variant gets to a handler without sending it.

The services talk to each other as they do in the cluster: approval-request-service calls
EMPLOYEE_SERVICE_URL and NOTIFICATION_SERVICE_URL (read from its Deployment in the synthesized manifests)
through `Cluster`, which resolves a Service's DNS name and port to what runs behind it: one of these fakes,
or the SigV4 proxy in front of the employee Lambda's IAM-authorized function URL. Kafka is a topic -> list
bus; each service's topic names come from its Deployment's KAFKA_TOPICS_* variables.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.support.cloudformation import Stacks, Unresolvable
from tests.support.http_api import HttpRequest, HttpResponse, LambdaBackend, json_response, lambda_response

REASONS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class SpringError(Exception):
    def __init__(self, status: int, body: Any = None):
        super().__init__(status)
        self.status, self.body = status, body


def tomcat_path(raw: str) -> str:
    """The path Spring sees, or SpringError(400) where Tomcat refuses the request."""
    # Path parameters (";jsessionid=..." and the like) are cut from every segment before anything else.
    path = "/".join(segment.split(";", 1)[0] for segment in raw.split("?")[0].split("/"))
    if re.search(r"%2f|%5c", path, re.IGNORECASE) or "\\" in path:
        raise SpringError(400)
    path = unquote(path)
    out: list[str] = []
    parts = path.split("/")[1:]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "" and not last:
            continue  # merged slashes
        if part == ".":
            if last:
                out.append("")
            continue
        if part == "..":
            if not out:
                raise SpringError(400)
            out.pop()
            if last:
                out.append("")
            continue
        out.append(part)
    return "/" + "/".join(out)


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    handler: str
    long_variables: tuple[str, ...] = ()

    def match(self, path: str) -> dict[str, str] | None:
        pattern, actual = self.template.split("/")[1:], path.split("/")[1:]
        if len(pattern) != len(actual):
            return None
        captured = {}
        for part, value in zip(pattern, actual, strict=True):
            if part.startswith("{"):
                if not value:
                    return None
                captured[part[1:-1]] = value
            elif part != value:
                return None
        return captured


class SpringService:
    """Request handling shared by the fakes; subclasses list ENDPOINTS and implement the handlers."""

    name = "spring"
    ENDPOINTS: tuple[Endpoint, ...] = ()

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    def _find(self, method: str, path: str) -> tuple[Endpoint | None, dict[str, str], bool]:
        method = "GET" if method == "HEAD" else method
        path_known = False
        for endpoint in self.ENDPOINTS:
            captured = endpoint.match(path)
            if captured is None:
                continue
            path_known = True
            if endpoint.method == method:
                return endpoint, captured, True
        return None, {}, path_known

    def endpoints(self) -> list[tuple[str, str]]:
        return [(e.method, e.template) for e in self.ENDPOINTS]

    def route_of(self, method: str, path: str) -> str | None:
        try:
            endpoint, _, _ = self._find(method, tomcat_path(path))
        except SpringError:
            return None
        return f"{self.name} {endpoint.method} {endpoint.template}" if endpoint else None

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        path = request.path.split("?")[0]
        try:
            path = tomcat_path(request.path)
            endpoint, variables, known = self._find(request.method, path)
            if endpoint is None:
                raise SpringError(405 if known else 404)
            arguments: dict[str, Any] = dict(variables)
            for name in endpoint.long_variables:
                try:
                    arguments[name] = int(arguments[name])
                except ValueError:
                    raise SpringError(400) from None
            body = None
            if request.body:
                try:
                    body = json.loads(request.body)
                except json.JSONDecodeError:
                    raise SpringError(400) from None
            status, payload = getattr(self, endpoint.handler)(body, **arguments)
        except SpringError as exc:
            status = exc.status
            payload = exc.body if exc.body is not None else self._default_error(status, path)
        except (KeyError, TypeError, AttributeError, StopIteration):  # a null, a wrong type, nothing found
            status, payload = 500, self._default_error(500, path)
        if isinstance(payload, str):
            return HttpResponse(status, payload, {"content-type": "text/plain"}, self.name)
        return json_response(status, payload, self.name)

    @staticmethod
    def _default_error(status: int, path: str) -> dict:
        return {
            "timestamp": datetime.now(UTC).isoformat(),
            "status": status,
            "error": REASONS.get(status, "Error"),
            "path": path,
        }


@dataclass
class Kafka:
    """Topic -> records, and who consumes what (a consumer that cannot deserialize a record drops it)."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    consumers: dict[str, list[Callable[[dict], None]]] = field(default_factory=dict)

    def publish(self, topic: str, record: dict) -> None:
        self.records.setdefault(topic, []).append(record)
        for consume in self.consumers.get(topic, []):
            consume(record)

    def subscribe(self, topic: str, consume: Callable[[dict], None]) -> None:
        self.consumers.setdefault(topic, []).append(consume)


class ApprovalRequestService(SpringService):
    """approval-request-service (Boot 3.3.5, port 8082): trusts every id in its bodies."""

    name = "approval-request-service"
    ENDPOINTS = (
        Endpoint("POST", "/approvals", "create"),
        Endpoint("GET", "/approvals", "list_all"),
        Endpoint("DELETE", "/approvals", "delete_all"),
        Endpoint("GET", "/approvals/pending/{approverId}", "pending", ("approverId",)),
        Endpoint("GET", "/approvals/{requestId}", "get", ("requestId",)),
        Endpoint("PUT", "/approvals/{requestId}/approve", "approve", ("requestId",)),
        Endpoint("PUT", "/approvals/{requestId}/reject", "reject", ("requestId",)),
    )

    def __init__(self, cluster: Cluster, kafka: Kafka, environment: dict[str, str]):
        super().__init__()
        self.cluster, self.kafka = cluster, kafka
        self.employee_url = environment.get("EMPLOYEE_SERVICE_URL", "http://employee-service:8081")
        self.notification_url = environment.get("NOTIFICATION_SERVICE_URL", "http://notification-service:8084")
        self.requests_topic = environment.get("KAFKA_TOPICS_APPROVAL_REQUESTS", "approval-requests")
        self.docs: dict[int, dict] = {}
        self._seq = itertools.count(1)
        self.outbound: list[tuple[str, str, int]] = []  # (method, url, status) of its own calls

    def _call(self, method: str, url: str, payload: Any = None) -> HttpResponse:
        try:
            response = self.cluster.request(method, url, payload)
        except ConnectionError:
            response = HttpResponse(503, None)
        self.outbound.append((method, url, response.status))
        return response

    def create(self, body: dict) -> tuple[int, Any]:
        requester, steps, kind = body["requesterId"], body["steps"], body["type"]
        body["title"].strip()  # a null title fails like the Java code
        for employee in [requester, *(s["approverId"] for s in steps)]:
            if self._call("GET", f"{self.employee_url}/employees/{employee}").status != 200:
                raise SpringError(404, {"error": f"Employee not found: {employee}"})
        if sorted(s["step"] for s in steps) != list(range(1, len(steps) + 1)):
            raise SpringError(400, {"error": "Steps must be numbered 1..n"})
        request_id = next(self._seq)
        now = datetime.now(UTC).isoformat()
        doc = {
            "id": uuid.uuid4().hex[:24],
            "requestId": request_id,
            "requesterId": requester,
            "title": body["title"],
            "content": body.get("content"),
            "type": kind,
            "leaveDays": body.get("leaveDays"),
            "steps": [
                {"step": s["step"], "approverId": s["approverId"], "status": "pending", "updatedAt": now}
                for s in sorted(steps, key=lambda s: s["step"])
            ],
            "finalStatus": "in_progress",
            "createdAt": now,
            "updatedAt": now,
        }
        self.docs[request_id] = doc
        self.kafka.publish(
            self.requests_topic,
            {
                "requestId": request_id,
                "requesterId": requester,
                "title": doc["title"],
                "content": doc["content"],
                "steps": [{k: s[k] for k in ("step", "approverId", "status")} for s in doc["steps"]],
                "timestamp": [2026, 12, 4, 9, 0, 0, 0],
            },
        )
        return 200, {"requestId": request_id}

    def list_all(self, _body: Any) -> tuple[int, Any]:
        return 200, list(self.docs.values())

    def delete_all(self, _body: Any) -> tuple[int, Any]:
        self.docs.clear()
        return 200, None

    def get(self, _body: Any, requestId: int) -> tuple[int, Any]:  # noqa: N803 (the Java parameter name)
        if requestId not in self.docs:
            raise SpringError(404, {"error": f"Approval request not found: {requestId}"})
        return 200, self.docs[requestId]

    def pending(self, _body: Any, approverId: int) -> tuple[int, Any]:  # noqa: N803
        return 200, [
            d
            for d in self.docs.values()
            if any(s["approverId"] == approverId and s["status"] == "pending" for s in d["steps"])
        ]

    def approve(self, body: dict, requestId: int) -> tuple[int, Any]:  # noqa: N803
        doc = self.docs[requestId]
        approver = body["approverId"]
        step = next(s for s in doc["steps"] if s["approverId"] == approver and s["status"] == "pending")
        step["status"] = "approved"
        if not any(s["status"] == "pending" for s in doc["steps"]):
            doc["finalStatus"] = "approved"
            if doc["type"] == "ANNUAL_LEAVE":
                # Reply ignored, as the service does.
                url = f"{self.employee_url}/employees/{doc['requesterId']}/deduct-leave"
                self._call("POST", url, {"days": doc["leaveDays"]})
            self._call(
                "POST",
                f"{self.notification_url}/notifications/send",
                {"employeeId": doc["requesterId"], "message": f"'{doc['title']}' approved", "type": doc["type"]},
            )
        return 200, {"message": "Approved"}

    def reject(self, body: dict, requestId: int) -> tuple[int, Any]:  # noqa: N803
        if any(not isinstance(v, int) for v in body.values()):  # Map<String, Long>: a text reason is 400
            raise SpringError(400)
        doc = self.docs[requestId]
        for s in doc["steps"]:
            if s["approverId"] == body["approverId"] and s["status"] == "pending":
                s["status"] = "rejected"
        doc["finalStatus"] = "rejected"
        return 200, {"message": "Rejected"}


class ApprovalProcessingService(SpringService):
    """approval-processing-service (port 8083): an in-memory queue per first pending approver."""

    name = "approval-processing-service"
    ENDPOINTS = (
        Endpoint("GET", "/process/{approverId}", "queue_of", ("approverId",)),
        Endpoint("POST", "/process/{approverId}/{requestId}", "decide", ("approverId", "requestId")),
    )

    def __init__(self, kafka: Kafka, environment: dict[str, str]):
        super().__init__()
        self.kafka = kafka
        self.results_topic = environment.get("KAFKA_TOPICS_APPROVAL_RESULTS", "approval-results")
        self.queues: dict[int, list[dict]] = {}
        kafka.subscribe(environment.get("KAFKA_TOPICS_APPROVAL_REQUESTS", "approval-requests"), self.consume)

    def consume(self, record: dict) -> None:
        pending = [s for s in sorted(record["steps"], key=lambda s: s["step"]) if s["status"] == "pending"]
        if pending:
            self.queues.setdefault(pending[0]["approverId"], []).append(record)

    def queue_of(self, _body: Any, approverId: int) -> tuple[int, Any]:  # noqa: N803
        keys = ("requestId", "requesterId", "title", "content", "steps")
        return 200, [{k: r[k] for k in keys} for r in self.queues.get(approverId, [])]

    def decide(self, body: dict, approverId: int, requestId: int) -> tuple[int, Any]:  # noqa: N803
        status = (body or {}).get("status")
        if status not in ("approved", "rejected"):
            raise SpringError(400, {"error": "status must be approved or rejected"})
        queue = self.queues.get(approverId, [])
        record = next((r for r in queue if r["requestId"] == requestId), None)
        if record is None:
            raise SpringError(404, {"error": f"Request {requestId} is not queued for {approverId}"})
        queue.remove(record)
        step = next(s["step"] for s in record["steps"] if s["approverId"] == approverId)
        result = {"requestId": requestId, "step": step, "approverId": approverId, "status": status}
        self.kafka.publish(self.results_topic, {**result, "timestamp": [2026, 12, 4, 9, 0, 0, 0]})
        return 200, {"message": f"Request {status}", "requestId": requestId, "status": status}


class NotificationService(SpringService):
    """notification-service (port 8084): relays to STOMP subscribers through Redis; here a list."""

    name = "notification-service"
    ENDPOINTS = (
        Endpoint("POST", "/notifications/send", "send"),
        Endpoint("POST", "/notifications/send/{userId}", "send_to"),
        Endpoint("GET", "/notifications/health", "health"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.broadcast: list[dict] = []  # the Redis channel "notifications"
        self.direct: list[tuple[str, dict]] = []

    def send(self, body: dict) -> tuple[int, Any]:
        self.broadcast.append(body)
        return 200, "Notification sent"

    def send_to(self, body: dict, userId: str) -> tuple[int, Any]:  # noqa: N803
        self.direct.append((userId, body))
        return 200, f"Notification sent to {userId}"

    def health(self, _body: Any) -> tuple[int, Any]:
        return 200, "Notification service is running"


# --- the cluster network -------------------------------------------------------------------------------


@dataclass
class FunctionUrl:
    """The SigV4 proxy in front of a Lambda function URL with AuthType AWS_IAM: it drops the caller's
    Authorization header, signs with its pod's role, and Lambda passes the IAM identity in
    requestContext.authorizer.iam; the path arrives unchanged."""

    host: str
    function: LambdaBackend
    account: str
    role_arn: str

    @property
    def name(self) -> str:
        return self.function.name

    def handle(self, request: HttpRequest) -> HttpResponse:
        now = time.time()
        url_id = self.host.split(".")[0]
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        headers |= {
            "host": self.host,
            "authorization": "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/lambda/aws4_request, Signature=...",
            "x-amz-security-token": "pod-identity-session",
        }
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": request.path,
            "rawQueryString": request.query,
            "headers": headers,
            "requestContext": {
                "accountId": self.account,
                "apiId": url_id,
                "authorizer": {
                    "iam": {
                        "accessKey": "ASIAEXAMPLE",
                        "accountId": self.account,
                        "callerId": "AROAEXAMPLE:eks-pod-identity",
                        "cognitoIdentity": None,
                        "principalOrgId": None,
                        "userArn": self.role_arn,
                        "userId": "AROAEXAMPLE:eks-pod-identity",
                    }
                },
                "domainName": self.host,
                "domainPrefix": url_id,
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "10.0.0.10",
                    "userAgent": "aws-sigv4-proxy",
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": "$default",
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }
        if request.body is not None:
            event["body"] = request.body
        return lambda_response(self.function.invoke(event), self.function.name)


@dataclass
class Cluster:
    """In-cluster DNS: <service>[.<namespace>[.svc[.cluster.local]]]:<port> -> what serves it."""

    namespace: str
    services: dict[tuple[str, int], Any] = field(default_factory=dict)  # (name, port) -> backend with .handle

    def request(self, method: str, url: str, payload: Any = None) -> HttpResponse:
        parts = urlsplit(url)
        labels = (parts.hostname or "").split(".")
        name = labels[0]
        namespace = labels[1] if len(labels) > 1 else self.namespace
        if namespace != self.namespace or labels[2:] not in ([], ["svc"], ["svc", "cluster", "local"]):
            raise ConnectionError(f"{parts.hostname}: no such Service")
        backend = self.services.get((name, parts.port or 80))
        if backend is None:
            raise ConnectionError(f"{parts.hostname}:{parts.port}: connection refused")
        return backend.handle(HttpRequest.json(method, parts.path, payload))


def workload_objects(stacks: Stacks, stack: str) -> list[dict]:
    """Every Kubernetes object the workloads stack applies."""
    objects = []
    for logical in stacks.resources(stack, "Custom::AWSCDK-EKS-KubernetesResource"):
        objects += stacks.manifest(stack, logical)
    return objects


def deployment_environment(objects: list[dict], name: str) -> dict[str, str]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def function_url_for_host(stacks: Stacks, host: str) -> tuple[str, str, dict]:
    """(stack, function logical id, Url properties) of the function URL served at `host`."""
    for stack in stacks.templates:
        for logical, resource in stacks.resources(stack, "AWS::Lambda::Url").items():
            if urlsplit(stacks.get_att(stack, logical, "FunctionUrl")).hostname == host:
                properties = resource["Properties"]
                target = stacks.origin(stacks.resolve(stack, properties["TargetFunctionArn"]))
                return stack, target.logical_id, properties
    raise Unresolvable(f"no function URL has the host {host}")


def wire_cluster(
    cluster: Cluster,
    stacks: Stacks,
    workloads_stack: str,
    objects: list[dict],
    *,
    fakes: dict[str, SpringService],
    ports: dict[str, int],
    lambdas: dict[str, LambdaBackend],
) -> None:
    """Each Service of the cluster's namespace, wired to what its selector's Deployment runs: a SigV4 proxy
    (args with --host) reaches the Lambda behind that function URL; any other is the fake of the configured
    service of that name, on its configured port."""
    namespace = cluster.namespace
    deployments = [o for o in objects if o["kind"] == "Deployment" and o["metadata"].get("namespace") == namespace]
    for service in [o for o in objects if o["kind"] == "Service" and o["metadata"].get("namespace") == namespace]:
        selector = service["spec"].get("selector", {})
        pods = [
            d
            for d in deployments
            if selector and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        if len(pods) != 1:
            continue
        pod = pods[0]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = container.get("args", [])
        name = service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            if "--host" in args:
                host = args[args.index("--host") + 1]
                stack, function, url = function_url_for_host(stacks, host)
                if url.get("AuthType") != "AWS_IAM":
                    raise Unresolvable(f"{name}: the function URL {host} is not IAM-authorized")
                role = _pod_role(stacks, workloads_stack, namespace, pod.get("serviceAccountName", "default"))
                cluster.services[(name, port["port"])] = FunctionUrl(host, lambdas[function], stacks.account, role)
            elif name in fakes and ports.get(name) == port.get("targetPort", port["port"]):
                cluster.services[(name, port["port"])] = fakes[name]


def _pod_role(stacks: Stacks, stack: str, namespace: str, service_account: str) -> str:
    for association in stacks.resources(stack, "AWS::EKS::PodIdentityAssociation").values():
        p = association["Properties"]
        if p.get("Namespace") == namespace and p.get("ServiceAccount") == service_account:
            return str(stacks.resolve(stack, p["RoleArn"]))
    return f"arn:aws:sts::{stacks.account}:assumed-role/{service_account}/unknown"

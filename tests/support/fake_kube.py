"""A Kubernetes API server for the handler tests, plugged in as lambda_handlers/kube_api.py's `fetch`.

One fake for every function that reaches into the cluster (workload_health, scheduler, drift_check), answering
the way the API server does what those functions ask: discovery of a group-version, named GETs, equality label
selectors on lists (with `limit`/`continue` accepted, one page), the `scale` subresource of a Deployment, and
merge patches (RFC 7386). Anything else is a 404, as on a real server that does not serve it.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

# group-version path -> [(kind, plural)]: what the fake serves (and lists in discovery).
RESOURCES: dict[str, list[tuple[str, str]]] = {
    "/api/v1": [("ConfigMap", "configmaps"), ("Service", "services"), ("Pod", "pods")],
    "/apis/apps/v1": [("Deployment", "deployments"), ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")],
    "/apis/networking.k8s.io/v1": [("NetworkPolicy", "networkpolicies")],
    "/apis/elbv2.k8s.aws/v1beta1": [("TargetGroupBinding", "targetgroupbindings")],
}
TOKEN_PREFIX = "Bearer k8s-aws-v1."  # what `aws eks get-token` (kube_api.eks_token) makes
MERGE_PATCH = "application/merge-patch+json"


@cache
def ca_pem() -> str:
    """A self-signed certificate standing in for the cluster's CA (the TLS context must load it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ca_data() -> str:
    """The CA as the functions' CA_DATA carries it (base64 PEM, as EKS's certificateAuthority.data)."""
    return base64.b64encode(ca_pem().encode()).decode()


def kube_object(kind: str, namespace: str, name: str, *, labels: dict | None = None, **fields) -> dict:
    """An object as the API server returns it: kind, metadata (namespace, name, labels) and the given fields."""
    metadata = {"name": name, "namespace": namespace, "labels": labels or {}, **fields.pop("metadata", {})}
    return {"kind": kind, "metadata": metadata, **fields}


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    path: str  # with the query, as the function asked
    headers: dict[str, str]
    body: bytes | None
    context: object


def _answer(status: int, document: dict) -> tuple[int, bytes]:
    return status, json.dumps(document).encode()


def _status(code: int, reason: str) -> tuple[int, bytes]:
    return _answer(code, {"kind": "Status", "code": code, "reason": reason})


class FakeKube:
    """The API server at `endpoint`, holding `objects`.

    `refuse` maps an HTTP method ("*" for every one) to the status it answers or the exception the call raises
    (an unreachable server); `forbidden` plurals answer 403 (what the function's access does not cover);
    `on_patch(path, patch)` runs before a patch is applied, so a test can see what else was true at that moment.
    """

    def __init__(
        self,
        endpoint: str,
        objects: Iterable[dict] = (),
        *,
        refuse: dict[str, int | Exception] | None = None,
        forbidden: Iterable[str] = (),
        on_patch: Callable[[str, dict], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.objects: dict[tuple[str, str, str], dict] = {}
        for obj in objects:
            self.put(obj)
        self.refuse = dict(refuse or {})
        self.forbidden = frozenset(forbidden)
        self.on_patch = on_patch
        self.requests: list[Request] = []
        self.kinds = {plural: kind for served in RESOURCES.values() for kind, plural in served}

    # ---- the cluster's state ----

    def put(self, obj: dict) -> None:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        del self.objects[(kind, namespace, name)]

    def find(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objects.get((kind, namespace, name))

    # ---- kube_api.Fetch ----

    def __call__(self, method: str, url: str, headers: dict, body: bytes | None, context) -> tuple[int, bytes]:
        assert url.startswith(self.endpoint + "/"), url
        assert headers["Authorization"].startswith(TOKEN_PREFIX), "not a token as `aws eks get-token` makes it"
        path = url.removeprefix(self.endpoint)
        self.requests.append(Request(method, url, path, dict(headers), body, context))
        refusal = self.refuse.get(method, self.refuse.get("*"))
        if isinstance(refusal, Exception):
            raise refusal
        if refusal:
            return _status(refusal, "Forbidden" if refusal == 403 else "Refused")
        parsed = urllib.parse.urlparse(path)
        prefix, _, rest = parsed.path.partition("/namespaces/")
        namespace, plural, *named = rest.split("/") if rest else ("", "")
        if method not in ("GET", "PATCH") or (method == "PATCH" and not named):
            return _status(405, "MethodNotAllowed")
        if not rest:
            return self._discovery(prefix)
        if plural not in {served for _, served in RESOURCES.get(prefix, [])}:
            return _status(404, "NotFound")
        if plural in self.forbidden:
            return _status(403, "Forbidden")
        kind = self.kinds[plural]
        if not named:
            return self._list(kind, namespace, urllib.parse.parse_qs(parsed.query))
        name, subresource = named[0], "/".join(named[1:])
        if subresource not in ("", "scale") or (subresource == "scale" and kind != "Deployment"):
            return _status(404, "NotFound")
        obj = self.find(kind, namespace, name)
        if obj is None:
            return _status(404, "NotFound")
        if method == "PATCH":
            if headers.get("Content-Type") != MERGE_PATCH:
                return _status(415, "UnsupportedMediaType")
            patch = json.loads(body)
            if self.on_patch:
                self.on_patch(path, patch)
            if subresource == "scale":
                patch = {"spec": {"replicas": patch["spec"]["replicas"]}}
            obj = merge_patch(obj, patch)
            self.put(obj)
        if subresource == "scale":
            meta = {"name": name, "namespace": namespace}
            return _answer(200, {"kind": "Scale", "metadata": meta, "spec": {"replicas": obj["spec"]["replicas"]}})
        return _answer(200, obj)

    def _discovery(self, prefix: str) -> tuple[int, bytes]:
        if prefix not in RESOURCES:
            return _status(404, "NotFound")
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        resources = [
            {"name": plural, "kind": kind, "namespaced": True, "verbs": verbs} for kind, plural in RESOURCES[prefix]
        ]
        if prefix == "/apis/apps/v1":  # subresources are listed too, with a slash in the name
            resources.append(
                {"name": "deployments/scale", "kind": "Scale", "namespaced": True, "verbs": ["get", "patch"]}
            )
        return _answer(
            200, {"kind": "APIResourceList", "groupVersion": prefix.split("/", 2)[-1], "resources": resources}
        )

    def _list(self, kind: str, namespace: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        selector = query.get("labelSelector", [""])[0]
        wanted = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
        items = [
            obj
            for (obj_kind, obj_namespace, _), obj in sorted(self.objects.items())
            if obj_kind == kind
            and obj_namespace == namespace
            and wanted.items() <= obj["metadata"].get("labels", {}).items()
        ]
        return _answer(200, {"kind": f"{kind}List", "metadata": {}, "items": items})

"""The Kubernetes API as the functions that reach into the cluster call it: workload_health (reads), scheduler
(pauses the Cluster Autoscaler), drift_check (lists the platform's objects).

Each of those folders holds `kube_api.py` as a link to this file, so the same token and client code is bundled
with each function (constructs_lib/common/python_function.py follows the link) and each imports it by its own
name, as Lambda would. Standard library only: no function needs a requirement for it.

The token is the one `aws eks get-token` prints, made with the function's own role; the EKS access entry of that
role decides what the function may do, so a refusal names the access the caller was meant to have.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TIMEOUT_SECONDS = 10


class KubeError(Exception):
    """The Kubernetes API could not be reached or refused the call."""


def eks_token(sts: Any, cluster: str) -> str:
    """What `aws eks get-token` prints: a presigned GetCallerIdentity URL that names the cluster."""

    def name_the_cluster(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster

    sts.meta.events.register_first("before-sign.sts.GetCallerIdentity", name_the_cluster)
    try:
        url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
    finally:
        sts.meta.events.unregister("before-sign.sts.GetCallerIdentity", name_the_cluster)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


# (method, url, headers, body, TLS context) -> (HTTP status, body)
Fetch = Callable[[str, str, dict[str, str], bytes | None, ssl.SSLContext | None], tuple[int, bytes]]


def http_fetch(
    method: str, url: str, headers: dict[str, str], body: bytes | None, context: ssl.SSLContext | None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class KubeApi:
    """Calls against one cluster's API server, authenticated as this function's role.

    `access` is what must exist for that role to be let in (its access entry, policy or Role, and the construct
    that makes it), as the refusal message says it.
    """

    def __init__(
        self, endpoint: str, ca_pem: str, token: Callable[[], str], fetch: Fetch = http_fetch, *, access: str
    ) -> None:
        self.endpoint, self.token, self.fetch, self.access = endpoint.rstrip("/"), token, fetch, access
        self.context = ssl.create_default_context(cadata=ca_pem)

    def send(self, method: str, path: str, patch: dict | None = None) -> tuple[int, bytes]:
        """The API server's answer as it came; only an unreachable server raises."""
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        body = None
        if patch is not None:
            headers["Content-Type"] = "application/merge-patch+json"
            body = json.dumps(patch).encode()
        try:
            return self.fetch(method, self.endpoint + path, headers, body, self.context)
        except (urllib.error.URLError, OSError) as error:
            raise KubeError(f"cannot reach the cluster API at {self.endpoint}: {error}") from error

    def read(self, path: str) -> tuple[int, dict | None]:
        """(status, the object when 200): for callers to whom a refusal or an absence is an answer."""
        status, body = self.send("GET", path)
        return status, (json.loads(body) if status == 200 else None)

    def call(self, method: str, path: str, patch: dict | None = None) -> dict | None:
        """The object at `path` (after the merge patch, if any), or None when it does not exist."""
        status, answer = self.send(method, path, patch)
        if status == 404:
            return None
        if status in (401, 403):
            raise KubeError(
                f"the Kubernetes API refused this function's role ({status}) on {method} {path}: {self.access} "
                "must exist"
            )
        if status != 200:
            raise KubeError(f"{method} {path} answered {status}: {answer[:200].decode('utf-8', 'replace')}")
        return json.loads(answer)

    def get(self, path: str) -> dict | None:
        """The object at `path`, or None when it does not exist."""
        return self.call("GET", path)

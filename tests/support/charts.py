"""Offline checks for chart manifests, shared by the chart tests and the infra tests.

Schemas: built-in kinds against the Kubernetes JSON schema of the cluster's version (kubernetes-validate,
strict), custom resources against the vendored CRDs in k8s_charts/crds (copies of ../shared/crds). Policies: the pod rules every
workload must follow. Every check returns a list of violations (empty = pass), so a test can also show
that it rejects a broken manifest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from k8s_charts import names, placement

Manifest = dict[str, Any]

# Copies of ../shared/crds kept in the repo: the pipeline builds from the repository alone.
CRD_DIR = Path(__file__).resolve().parents[2] / "k8s_charts" / "crds"
SHARED_CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "crds"
# The kubectl handler receives the manifest inside an async Lambda payload (256 KiB).
KUBECTL_PAYLOAD_LIMIT = 262_144
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --- schemas ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrdVersion:
    scope: str  # Namespaced | Cluster
    validator: jsonschema.protocols.Validator


def _closed(schema: Any) -> Any:
    """The API server silently prunes fields a structural schema does not declare, so a typo such as
    `targetGroupArn` would vanish on apply: make every declared object reject unknown properties."""
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    if "properties" in closed:
        closed["properties"] = {key: _closed(sub) for key, sub in closed["properties"].items()}
        if "additionalProperties" not in closed and not closed.get("x-kubernetes-preserve-unknown-fields"):
            closed["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(closed.get(key), dict):
            closed[key] = _closed(closed[key])
    return closed


@cache
def _crd_documents(path: Path) -> list[Manifest]:
    return [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if d]


@cache
def crd_version(api_version: str, kind: str, crd_dir: Path = CRD_DIR) -> CrdVersion | None:
    """The schema a vendored CRD serves for (apiVersion, kind), or None. Files are parsed only when their text
    names the group and kind: the two SecretStore CRDs are 700 KB of YAML each."""
    group, _, version = api_version.rpartition("/")
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if f"group: {group}" not in text or f"kind: {kind}" not in text:
            continue
        for doc in _crd_documents(path):
            spec = doc.get("spec", {})
            if doc.get("kind") != "CustomResourceDefinition" or (spec["group"], spec["names"]["kind"]) != (group, kind):
                continue
            for served in spec["versions"]:
                if served["name"] == version and served.get("served"):
                    schema = _closed(served["schema"]["openAPIV3Schema"])
                    return CrdVersion(scope=spec["scope"], validator=jsonschema.Draft4Validator(schema))
    return None


def is_custom_resource(manifest: Manifest) -> bool:
    """Built-in groups are either dotless (apps, batch, policy, ...) or end in .k8s.io."""
    group = manifest.get("apiVersion", "").rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def _label(manifest: Manifest) -> str:
    meta = manifest.get("metadata") or {}
    return f"{manifest.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def _path(error: jsonschema.ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) or "(root)"


# kubernetes-validate re-reads and re-parses its 1.5 MB definitions file on every call; memoising its loader
# (only while validating) makes a whole environment's charts validate in a fraction of a second.
_load_schema = cache(kubernetes_validate.utils.schema_contents)


def schema_violations(manifest: Manifest, kubernetes_version: str, *, crd_dir: Path = CRD_DIR) -> list[str]:
    label = _label(manifest)
    if is_custom_resource(manifest):
        crd = crd_version(manifest.get("apiVersion", ""), manifest.get("kind", ""), crd_dir)
        if crd is None:
            return [f"{label}: no vendored CRD serves {manifest.get('apiVersion')} {manifest.get('kind')}"]
        found = [f"{label}: {_path(e)}: {e.message}" for e in crd.validator.iter_errors(manifest)]
        meta = manifest.get("metadata") or {}
        if not DNS_SUBDOMAIN.match(str(meta.get("name", ""))):
            found.append(f"{label}: metadata.name is not a DNS subdomain")
        if (crd.scope == "Namespaced") != ("namespace" in meta):
            found.append(
                f"{label}: a {crd.scope} resource {'needs' if crd.scope == 'Namespaced' else 'takes no'} namespace"
            )
        return found
    try:
        with mock.patch.object(kubernetes_validate.utils, "schema_contents", _load_schema):
            used = kubernetes_validate.validate(manifest, kubernetes_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{label}: Kubernetes {kubernetes_version} has no {manifest.get('apiVersion')} {manifest.get('kind')}"]
    except kubernetes_validate.ValidationError as error:
        return [f"{label}: {_path(error)}: {error.message}"]
    # The library silently falls back to an older schema when it lacks the requested version.
    if used != kubernetes_version:
        return [f"{label}: validated against Kubernetes {used}, not {kubernetes_version}"]
    return []


def all_schema_violations(manifests: Iterable[Manifest], kubernetes_version: str) -> list[str]:
    return [v for manifest in manifests for v in schema_violations(manifest, kubernetes_version)]


def manifest_bytes(manifests: list[Manifest]) -> int:
    """Size of the manifest as the CDK side embeds it (compact JSON)."""
    return len(json.dumps(manifests, separators=(",", ":")).encode())


# --- workloads and selectors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    manifest: Manifest

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def namespace(self) -> str:
        return self.manifest["metadata"].get("namespace", "default")

    @property
    def key(self) -> str:
        """namespace/name, as names.ROOT_EXEMPT_WORKLOADS spells it."""
        return f"{self.namespace}/{self.manifest['metadata']['name']}"

    @property
    def template(self) -> Manifest:
        return self.manifest["spec"]["template"]

    @property
    def pod_spec(self) -> Manifest:
        return self.template["spec"]

    @property
    def pod_labels(self) -> dict[str, str]:
        return self.template.get("metadata", {}).get("labels", {})

    @property
    def containers(self) -> list[Manifest]:
        return self.pod_spec.get("initContainers", []) + self.pod_spec["containers"]

    @property
    def long_running(self) -> bool:
        return self.kind != "Job"


def workloads(manifests: Iterable[Manifest]) -> list[Workload]:
    return [Workload(m) for m in manifests if m.get("kind") in WORKLOAD_KINDS]


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


# Label-selector semantics live with the placement rules (k8s_charts/placement.py): one definition.
selector_matches = placement.selector_matches


# --- policies --------------------------------------------------------------------------------------------


def is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def image_violations(manifests: Iterable[Manifest]) -> list[str]:
    return [
        f"{w.key}/{c['name']}: image {c['image']!r} is not pinned to a tag or digest"
        for w in workloads(manifests)
        for c in w.containers
        if not is_pinned(c.get("image", ""))
    ]


def resource_violations(manifests: Iterable[Manifest]) -> list[str]:
    return [
        f"{w.key}/{c['name']}: no {kind}.{resource}"
        for w in workloads(manifests)
        for c in w.containers
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in c.get("resources", {}).get(kind, {})
    ]


def probe_violations(manifests: Iterable[Manifest]) -> list[str]:
    """Jobs run to completion and carry no probes; init containers cannot have them."""
    return [
        f"{w.key}/{c['name']}: no {probe}"
        for w in workloads(manifests)
        if w.long_running
        for c in w.pod_spec["containers"]
        for probe in ("livenessProbe", "readinessProbe")
        if probe not in c
    ]


def security_violations(
    manifests: Iterable[Manifest], *, root_exempt: frozenset[str] = names.ROOT_EXEMPT_WORKLOADS
) -> list[str]:
    """Every container: no privilege escalation, no capabilities, read-only root, a seccomp profile;
    and non-root (container setting over pod setting) unless its workload is exempt by name."""
    found = []
    for w in workloads(manifests):
        pod = w.pod_spec.get("securityContext", {})
        for c in w.containers:
            ctx = c.get("securityContext", {})
            where = f"{w.key}/{c['name']}"
            if ctx.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
                found.append(f"{where}: capabilities do not drop ALL")
            if ctx.get("privileged"):
                found.append(f"{where}: privileged")
            if ctx.get("readOnlyRootFilesystem") is not True:
                found.append(f"{where}: root filesystem is writable")
            seccomp = ctx.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                found.append(f"{where}: no seccomp profile")
            if w.key in root_exempt:
                continue
            if ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
                found.append(f"{where}: runAsNonRoot is not true")
            if ctx.get("runAsUser", pod.get("runAsUser")) == 0:
                found.append(f"{where}: runs as uid 0")
    return found


def restricted_namespaces(manifests: Iterable[Manifest]) -> set[str]:
    return {
        m["metadata"]["name"]
        for m in find(manifests, "Namespace")
        if m["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted"
    }


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(manifests: list[Manifest]) -> list[str]:
    """Pod Security `restricted` beyond security_violations: what the admission controller would reject
    in a namespace labelled for it (host namespaces and ports, volume types, added capabilities)."""
    found = []
    namespaces = restricted_namespaces(manifests)
    for w in workloads(manifests):
        if w.namespace not in namespaces:
            continue
        spec = w.pod_spec
        found += [f"{w.key}: {field}" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                found.append(f"{w.key}: volume {volume['name']} is {', '.join(sorted(kinds))}")
        for c in w.containers:
            if any(p.get("hostPort") for p in c.get("ports", [])):
                found.append(f"{w.key}/{c['name']}: hostPort")
            if set(c.get("securityContext", {}).get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
                found.append(f"{w.key}/{c['name']}: adds capabilities")
    return found + security_violations(
        [w.manifest for w in workloads(manifests) if w.namespace in namespaces], root_exempt=frozenset()
    )


def pdb_violations(manifests: list[Manifest]) -> list[str]:
    """Each Deployment/StatefulSet that can run more than one pod (replicas or its HPA's maximum) needs a
    PodDisruptionBudget in its namespace whose selector really matches its pod labels."""
    max_by_target = {
        (h["metadata"].get("namespace"), h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"]): h[
            "spec"
        ]["maxReplicas"]
        for h in find(manifests, "HorizontalPodAutoscaler")
    }
    pdbs = find(manifests, "PodDisruptionBudget")
    found = []
    for w in workloads(manifests):
        if w.kind not in ("Deployment", "StatefulSet"):
            continue
        target = (w.manifest["metadata"].get("namespace"), w.kind, w.manifest["metadata"]["name"])
        most = max(w.manifest["spec"].get("replicas", 1), max_by_target.get(target, 0))
        if most > 1 and not any(
            p["metadata"].get("namespace") == w.manifest["metadata"].get("namespace")
            and selector_matches(p["spec"].get("selector"), w.pod_labels)
            for p in pdbs
        ):
            found.append(f"{w.key}: up to {most} pods and no PodDisruptionBudget selects them")
    return found

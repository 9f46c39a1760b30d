"""Roll a workload when a Secret it reads changes (rotation without outage, issue 12 item 2).

External Secrets refreshes each service's synced Secret (`<service>-secrets`, names.service_secret) from Secrets
Manager; environment variables are read once at start, so running pods would keep the old value.
Stakater Reloader (constructs_lib/cluster/reloader.py) watches Secrets and, for a workload annotated with
`secret.reloader.stakater.com/reload: <names>`, patches its pod template when one of them changes:
an ordinary rolling update (maxUnavailable 0, readiness-gated, PDB-protected), so no outage.

`annotate_reloads(chart)` finds every Secret each Deployment/StatefulSet/DaemonSet of a chart reads
(env valueFrom, envFrom, volumes, projected volumes) and writes the annotation: nothing to keep in
sync by hand when a service gains a secret.
"""

from __future__ import annotations

from collections.abc import Iterable

from cdk8s import ApiObject, Chart

RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


def secrets_read_by(pod_spec: dict) -> set[str]:
    """Names of the Secrets a pod spec reads (containers and init containers, env and volumes)."""
    names: set[str] = set()
    containers = [*pod_spec.get("containers", []), *pod_spec.get("initContainers", [])]
    for container in containers:
        for env in container.get("env", []) or []:
            if ref := (env.get("valueFrom") or {}).get("secretKeyRef"):
                names.add(ref["name"])
        for source in container.get("envFrom", []) or []:
            if ref := source.get("secretRef"):
                names.add(ref["name"])
    for volume in pod_spec.get("volumes", []) or []:
        if secret := volume.get("secret"):
            names.add(secret["secretName"])
        for projected in (volume.get("projected") or {}).get("sources", []) or []:
            if secret := projected.get("secret"):
                names.add(secret["name"])
    return names


def _workloads(chart: Chart) -> Iterable[ApiObject]:
    for construct in chart.node.find_all():
        if isinstance(construct, ApiObject) and construct.kind in WORKLOAD_KINDS:
            yield construct


def annotate_reloads(chart: Chart) -> dict[str, list[str]]:
    """Annotate every workload of `chart` that reads a Secret; returns workload name -> secret names."""
    annotated: dict[str, list[str]] = {}
    for workload in _workloads(chart):
        manifest = workload.to_json()
        pod_spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
        names = sorted(secrets_read_by(pod_spec))
        if names:
            workload.metadata.add_annotation(RELOAD_ANNOTATION, ",".join(names))
            annotated[manifest["metadata"]["name"]] = names
    return annotated

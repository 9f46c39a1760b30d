"""What every chart shares: one App per chart, labels, the restricted security context, resources.

Workloads use the typed L1 classes of cdk8s-plus-27 (``cdk8s_plus_27.k8s``): its L2 workload constructs
cannot express ``drop: [ALL]``, seccomp profiles, topology spread constraints, ``enableServiceLinks`` or
volume claim templates, which every pod here needs.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from cdk8s import ApiObject, ApiObjectMetadata, App, Chart, JsonPatch
from cdk8s_plus_27 import Namespace, k8s
from constructs import Construct

from config.models import EnvironmentConfig
from config.sections import NodeGroupConfig, ServiceConfig
from k8s_charts import names

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"

# Component label of the microservices: NetworkPolicies select "all services" by it.
API_COMPONENT = "api"


def new_chart(env: EnvironmentConfig, chart_id: str) -> Chart:
    """Each chart gets its own App: the CDK side deploys every chart as a separate KubernetesManifest."""
    return Chart(
        App(),
        chart_id,
        labels={"app.kubernetes.io/part-of": env.project, "app.kubernetes.io/managed-by": "cdk8s"},
        disable_resource_name_hashes=True,
    )


# Pod Security Admission's label prefix (enforce / audit / warn, and their -version).
PSA = "pod-security.kubernetes.io"


def namespace(scope: Construct, name: str, labels: dict[str, str]) -> Namespace:
    """The chart's Namespace object (construct id "Namespace"), with its Pod Security labels."""
    return Namespace(scope, "Namespace", metadata=ApiObjectMetadata(name=name, labels=labels))


def selector_labels(name: str) -> dict[str, str]:
    """Selectors are immutable on Deployments/StatefulSets: keep them to the one label that never changes."""
    return {NAME_LABEL: name}


def pod_labels(name: str, component: str) -> dict[str, str]:
    return {**selector_labels(name), COMPONENT_LABEL: component}


def meta(name: str, namespace: str | None = None, **extra: Any) -> k8s.ObjectMeta:
    return k8s.ObjectMeta(name=name, namespace=namespace, **extra)


# Immutable values, one kernel round trip each: ~1,000 per synth without the cache, a few dozen with it.
@cache
def int_or_string(value: int) -> k8s.IntOrString:
    return k8s.IntOrString.from_number(value)


@cache
def quantity(value: str) -> k8s.Quantity:
    return k8s.Quantity.from_string(value)


def resources(*, cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str) -> k8s.ResourceRequirements:
    return k8s.ResourceRequirements(
        requests={"cpu": quantity(cpu_request), "memory": quantity(memory_request)},
        limits={"cpu": quantity(cpu_limit), "memory": quantity(memory_limit)},
    )


RUNTIME_DEFAULT = k8s.SeccompProfile(type="RuntimeDefault")


def restricted_pod_security(*, uid: int, fs_group: int | None = None) -> k8s.PodSecurityContext:
    """Numeric uid: the kubelet refuses runAsNonRoot for images whose USER is a name (appuser, xray)."""
    return k8s.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=fs_group,
        fs_group_change_policy="OnRootMismatch" if fs_group is not None else None,
        seccomp_profile=RUNTIME_DEFAULT,
    )


def restricted_container_security() -> k8s.SecurityContext:
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.Capabilities(drop=["ALL"]),
    )


def scratch_volume(name: str, size: str = "256Mi") -> k8s.Volume:
    """Writable scratch space for a read-only root filesystem (JVM temp files, generated configs)."""
    return k8s.Volume(name=name, empty_dir=k8s.EmptyDirVolumeSource(size_limit=quantity(size)))


def env_var(name: str, value: str) -> k8s.EnvVar:
    return k8s.EnvVar(name=name, value=value)


def secret_env_var(name: str, *, secret: str, key: str) -> k8s.EnvVar:
    return k8s.EnvVar(
        name=name, value_from=k8s.EnvVarSource(secret_key_ref=k8s.SecretKeySelector(name=secret, key=key))
    )


def apps_node_selector(env: EnvironmentConfig) -> dict[str, str] | None:
    """Pin to the apps node group when one carries the apps label; otherwise schedule anywhere."""
    key, value = names.APPS_NODE_LABEL
    if any(group.labels.get(key) == value for group in env.cluster.node_groups):
        return {key: value}
    return None


def service_node_selector(env: EnvironmentConfig, service: ServiceConfig) -> dict[str, str] | None:
    """The apps nodes, and for a single-architecture image (the ERP images are amd64 only) nodes of that
    architecture: the kubelet would otherwise start it on a Graviton node and fail with `exec format error`."""
    selector = dict(apps_node_selector(env) or {})
    if len(service.image.architectures) == 1:
        selector["kubernetes.io/arch"] = service.image.architectures[0]
    return selector or None


def node_group(env: EnvironmentConfig, name: str) -> NodeGroupConfig:
    return next(group for group in env.cluster.node_groups if group.name == name)


def zone_and_host_spread(labels: dict[str, str], *, match_label_keys: list[str] | None = None) -> list:
    """Soft spread: a hard zone constraint would strand pods when one AZ has no free node."""
    return [
        k8s.TopologySpreadConstraint(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.LabelSelector(match_labels=labels),
            match_label_keys=match_label_keys,
        )
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def custom_resource(
    scope: Construct, id: str, *, api_version: str, kind: str, metadata: ApiObjectMetadata, spec: dict[str, Any]
) -> ApiObject:
    """A CRD instance as a plain ApiObject (generated classes for the ESO CRDs would be ~1 MB of code)."""
    resource = ApiObject(scope, id, api_version=api_version, kind=kind, metadata=metadata)
    resource.add_json_patch(JsonPatch.add("/spec", spec))
    return resource


def surge_first() -> k8s.DeploymentStrategy:
    """The new pod is ready before the old one goes: one replica rolls without a gap."""
    return k8s.DeploymentStrategy(
        type="RollingUpdate",
        rolling_update=k8s.RollingUpdateDeployment(max_surge=int_or_string(1), max_unavailable=int_or_string(0)),
    )


def config_hash(text: str) -> dict[str, str]:
    """Pod annotation for a program that reads its config once: a changed config rolls the pods."""
    return {"erp.io/config-sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}

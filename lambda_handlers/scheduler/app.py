"""Night and weekend scale-down of a non-prod environment.

EventBridge Scheduler invokes this with {"action": "stop"} after office hours and
{"action": "start"} before them. Stop scales every managed node group to zero (maxSize
is kept: EKS needs it >= 1) and, if asked, stops the database. Start restores the sizes
from config (NODEGROUP_SIZES), not whatever they were before the night, so config stays
the source of truth.

Scaling to zero terminates nodes, never volumes: Kafka's PVCs stay bound to their EBS
volumes (and the StorageClass is Retain), so the StatefulSet re-attaches the same data
in the morning.

The Cluster Autoscaler would undo the stop (it sees the evicted pods pending and scales the
groups back up), so with AUTOSCALER set the night wins like this:

    stop:  pause the autoscaler (its Deployment to 0 replicas), then every group to zero.
           If no group reached zero, resume it: nothing sleeps, so the day's autoscaling goes on.
    start: every group to its configured sizes, then resume the autoscaler - always, even when a
           group failed, so a failure never leaves it paused beside running nodes.

What a failure leaves behind: a pause that failed still scales the groups to zero (the schedule
wins; the autoscaler may add nodes back for the pending pods until a retry pauses it); a group
that failed at night keeps its nodes at a fixed size beside a paused autoscaler while another group
sleeps (resuming would wake the sleeping one) until the morning's start; a resume that failed
leaves the groups at their configured sizes without autoscaling. Each of these fails the run:
Lambda retries it twice and the errors alarm fires. A missing Deployment (not installed yet) is
reported as absent and is not a failure.

Safe to run twice: groups already at the target, an autoscaler already at its replicas and a
database already in the wanted state are skipped. Every node group is tried; if any step failed
the invocation raises afterwards, so the Lambda errors alarm fires.

Environment:
    CLUSTER_NAME      EKS cluster
    NODEGROUP_SIZES   JSON {"<nodegroup name>": {"min": 1, "desired": 2, "max": 3}}: start targets
    NODEGROUPS        optional JSON list of node group names (default: every group of the cluster)
    STOP_DATABASE     "true" to stop/start DB_INSTANCE_ID as well
    DB_INSTANCE_ID    RDS instance identifier (required when STOP_DATABASE is true)
    AUTOSCALER        optional JSON {"namespace": "kube-system", "name": "cluster-autoscaler", "replicas": 1}:
                      the Deployment paused at night and scaled back to `replicas` in the morning
    ENDPOINT, CA_DATA the cluster API endpoint and its base64 CA bundle (required with AUTOSCALER)

The Kubernetes API is called through kube_api.py (a link to lambda_handlers/kube_api.py), as workload_health and
drift_check call it.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from kube_api import Fetch, KubeApi, KubeError, eks_token, http_fetch

logger = Logger(service="erp-scheduler")

# For each action: the status the database must be in, and the call that changes it.
DB_TRANSITIONS = {"stop": ("available", "stop_db_instance"), "start": ("stopped", "start_db_instance")}
# What lets this function's role scale the autoscaler (named when the API server refuses it).
ACCESS = "its access entry and Role (constructs_lib/cluster/cluster_autoscaler.py PauseAccess)"


@dataclass(frozen=True)
class Autoscaler:
    namespace: str
    name: str
    replicas: int
    endpoint: str
    ca_pem: str

    @property
    def scale_path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}/scale"


@dataclass(frozen=True)
class Settings:
    cluster: str
    sizes: dict[str, dict[str, int]]
    nodegroups: list[str] | None
    stop_database: bool
    db_instance_id: str | None
    autoscaler: Autoscaler | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        stop_database = env.get("STOP_DATABASE", "false").lower() == "true"
        if stop_database and not env.get("DB_INSTANCE_ID"):
            raise ValueError("STOP_DATABASE is true but DB_INSTANCE_ID is not set")
        sizes = json.loads(env.get("NODEGROUP_SIZES", "{}"))
        for name, size in sizes.items():
            if not all(isinstance(size.get(k), int) for k in ("min", "desired", "max")):
                raise ValueError(f"NODEGROUP_SIZES[{name!r}] needs integer min, desired and max")
        nodegroups = env.get("NODEGROUPS")
        return cls(
            cluster=env["CLUSTER_NAME"],
            sizes=sizes,
            nodegroups=json.loads(nodegroups) if nodegroups else None,
            stop_database=stop_database,
            db_instance_id=env.get("DB_INSTANCE_ID"),
            autoscaler=_autoscaler_from_env(env),
        )


def _autoscaler_from_env(env: os._Environ | dict) -> Autoscaler | None:
    if not env.get("AUTOSCALER"):
        return None
    target = json.loads(env["AUTOSCALER"])
    if not (isinstance(target.get("replicas"), int) and target.get("namespace") and target.get("name")):
        raise ValueError("AUTOSCALER needs namespace, name and an integer replicas")
    if not (env.get("ENDPOINT") and env.get("CA_DATA")):
        raise ValueError("AUTOSCALER is set but ENDPOINT or CA_DATA is not")
    ca_pem = base64.b64decode(env["CA_DATA"]).decode()
    return Autoscaler(target["namespace"], target["name"], target["replicas"], env["ENDPOINT"], ca_pem)


def _scale_autoscaler(api: KubeApi, target: Autoscaler, replicas: int) -> dict:
    scale = api.call("GET", target.scale_path)
    if scale is None:
        logger.warning("autoscaler Deployment not found", namespace=target.namespace, deployment=target.name)
        return {"result": "absent"}
    current = scale.get("spec", {}).get("replicas", 0)
    if current == replicas:
        logger.info("autoscaler already at target", replicas=current)
        return {"result": "unchanged", "replicas": current}
    api.call("PATCH", target.scale_path, {"spec": {"replicas": replicas}})
    result = "paused" if replicas == 0 else "resumed"
    logger.info(f"autoscaler {result}", before=current, after=replicas)
    return {"result": result, "before": current, "after": replicas}


def _target(action: str, name: str, current: dict[str, int], settings: Settings) -> dict[str, int]:
    if action == "stop":
        return {"minSize": 0, "desiredSize": 0, "maxSize": current["maxSize"]}
    if name not in settings.sizes:
        raise ValueError(f"no configured size for node group {name!r} in NODEGROUP_SIZES")
    size = settings.sizes[name]
    return {"minSize": size["min"], "desiredSize": size["desired"], "maxSize": size["max"]}


def _scale(eks, action: str, name: str, settings: Settings) -> dict:
    group = eks.describe_nodegroup(clusterName=settings.cluster, nodegroupName=name)["nodegroup"]
    current = {k: group["scalingConfig"][k] for k in ("minSize", "desiredSize", "maxSize")}
    target = _target(action, name, current, settings)
    if current == target:
        logger.info("node group already at target", nodegroup=name, scaling=current)
        return {"result": "unchanged", "scaling": current}
    eks.update_nodegroup_config(clusterName=settings.cluster, nodegroupName=name, scalingConfig=target)
    logger.info("node group scaled", nodegroup=name, before=current, after=target)
    return {"result": "updated", "before": current, "after": target}


def _database(action: str, settings: Settings) -> dict:
    rds = boto3.client("rds")
    db_id = settings.db_instance_id
    status = rds.describe_db_instances(DBInstanceIdentifier=db_id)["DBInstances"][0]["DBInstanceStatus"]
    required, call = DB_TRANSITIONS[action]
    if status != required:
        # Already stopped/started, or busy (backing-up, modifying...): the next run catches up.
        logger.info("database skipped", db_instance=db_id, status=status, action=action)
        return {"id": db_id, "result": "skipped", "status": status}
    getattr(rds, call)(DBInstanceIdentifier=db_id)
    logger.info("database state change requested", db_instance=db_id, status=status, action=action)
    return {"id": db_id, "result": f"{action} requested", "status": status}


def _kube_api(target: Autoscaler, cluster: str, fetch: Fetch, sts: Any = None) -> KubeApi:
    # The regional STS endpoint, as `aws eks get-token` uses: the API server calls it with the token.
    region = boto3.session.Session().region_name
    sts = sts or boto3.client("sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com")
    return KubeApi(target.endpoint, target.ca_pem, lambda: eks_token(sts, cluster), fetch, access=ACCESS)


@logger.inject_lambda_context(log_event=True)
def handler(event: dict, context, *, fetch: Fetch = http_fetch, sts: Any = None) -> dict:
    action = event.get("action")
    if action not in ("start", "stop"):
        raise ValueError(f"action must be 'start' or 'stop', got {action!r}")
    settings = Settings.from_env()
    eks = boto3.client("eks")
    names = settings.nodegroups or [
        name
        for page in eks.get_paginator("list_nodegroups").paginate(clusterName=settings.cluster)
        for name in page["nodegroups"]
    ]
    failures: dict[str, str] = {}
    autoscaler: dict = {"result": "not managed"} if settings.autoscaler is None else {}

    def scale_autoscaler(step: str, replicas: int) -> None:
        try:
            api = _kube_api(settings.autoscaler, settings.cluster, fetch, sts)
            autoscaler[step] = _scale_autoscaler(api, settings.autoscaler, replicas)
        except (KubeError, ClientError, BotoCoreError, ssl.SSLError) as exc:
            logger.exception(f"autoscaler {step} failed")
            failures[f"autoscaler {step}"] = str(exc)
            autoscaler[step] = {"result": "failed", "error": str(exc)}

    # Night: the autoscaler stops first, or it scales the groups back up for the evicted pods.
    if action == "stop" and settings.autoscaler is not None:
        scale_autoscaler("pause", 0)

    nodegroups = {}
    for name in names:
        try:
            nodegroups[name] = _scale(eks, action, name, settings)
        except (ClientError, ValueError) as exc:
            logger.exception("node group update failed", nodegroup=name)
            failures[name] = str(exc)
            nodegroups[name] = {"result": "failed", "error": str(exc)}

    if settings.autoscaler is not None:
        asleep = [name for name, group in nodegroups.items() if group["result"] != "failed"]
        if action == "start":
            # Always, even after a failed group: never a paused autoscaler beside nodes that run.
            scale_autoscaler("resume", settings.autoscaler.replicas)
        elif not asleep:
            # Nothing went to sleep: the day goes on, with its autoscaling.
            scale_autoscaler("resume", settings.autoscaler.replicas)

    database = {"result": "not managed"}
    if settings.stop_database:
        try:
            database = _database(action, settings)
        except ClientError as exc:
            logger.exception("database action failed", db_instance=settings.db_instance_id)
            failures["database"] = str(exc)
            database = {"id": settings.db_instance_id, "result": "failed", "error": str(exc)}

    summary = {
        "action": action,
        "cluster": settings.cluster,
        "autoscaler": autoscaler,
        "nodegroups": nodegroups,
        "database": database,
    }
    logger.info("scheduler run finished", summary=summary)
    if failures:
        raise RuntimeError(f"{action} failed for {sorted(failures)}: {failures}")
    return summary

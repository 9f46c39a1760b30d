"""Night and weekend scale-down of a non-prod environment.

EventBridge Scheduler invokes this with {"action": "stop"} after office hours and
{"action": "start"} before them. Stop scales every managed node group to zero (maxSize
is kept: EKS needs it >= 1) and, if asked, stops the database. Start restores the sizes
from config (NODEGROUP_SIZES), not whatever they were before the night, so config stays
the source of truth.

Scaling to zero terminates nodes, never volumes: Kafka's PVCs stay bound to their EBS
volumes (and the StorageClass is Retain), so the StatefulSet re-attaches the same data
in the morning.

Safe to run twice: groups already at the target and a database already in the wanted
state are skipped. Every node group is tried; if any update failed the invocation
raises afterwards, so the Lambda errors alarm fires.

Environment:
    CLUSTER_NAME      EKS cluster
    NODEGROUP_SIZES   JSON {"<nodegroup name>": {"min": 1, "desired": 2, "max": 3}}: start targets
    NODEGROUPS        optional JSON list of node group names (default: every group of the cluster)
    STOP_DATABASE     "true" to stop/start DB_INSTANCE_ID as well
    DB_INSTANCE_ID    RDS instance identifier (required when STOP_DATABASE is true)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

logger = Logger(service="erp-scheduler")

# For each action: the status the database must be in, and the call that changes it.
DB_TRANSITIONS = {"stop": ("available", "stop_db_instance"), "start": ("stopped", "start_db_instance")}


@dataclass(frozen=True)
class Settings:
    cluster: str
    sizes: dict[str, dict[str, int]]
    nodegroups: list[str] | None
    stop_database: bool
    db_instance_id: str | None

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
        )


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


@logger.inject_lambda_context(log_event=True)
def handler(event: dict, context) -> dict:
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

    nodegroups, failures = {}, {}
    for name in names:
        try:
            nodegroups[name] = _scale(eks, action, name, settings)
        except (ClientError, ValueError) as exc:
            logger.exception("node group update failed", nodegroup=name)
            failures[name] = str(exc)
            nodegroups[name] = {"result": "failed", "error": str(exc)}

    database = {"result": "not managed"}
    if settings.stop_database:
        try:
            database = _database(action, settings)
        except ClientError as exc:
            logger.exception("database action failed", db_instance=settings.db_instance_id)
            failures["database"] = str(exc)
            database = {"id": settings.db_instance_id, "result": "failed", "error": str(exc)}

    summary = {"action": action, "cluster": settings.cluster, "nodegroups": nodegroups, "database": database}
    logger.info("scheduler run finished", summary=summary)
    if failures:
        raise RuntimeError(f"{action} failed for {sorted(failures)}: {failures}")
    return summary

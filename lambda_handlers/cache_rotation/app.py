"""Secrets Manager rotation for the ElastiCache AUTH token, without an outage.

ElastiCache keeps up to two AUTH tokens: ModifyReplicationGroup with AuthTokenUpdateStrategy=ROTATE
adds the new token while the current one stays valid (the next ROTATE drops the older one). So:

- createSecret: a new random token as the AWSPENDING version (the rest of the JSON copied);
- setSecret:    ROTATE it into the replication group (once: a retried step must not ROTATE again, or
                the token the pods still use would be dropped);
- testSecret:   fail (Secrets Manager retries) until the group is `available` again with the new token;
- finishSecret: move AWSCURRENT. Only now does External Secrets sync the new value and Reloader roll
                the Deployments; the old token keeps working until the NEXT rotation, days later.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

import boto3

TOKEN_KEY = "authToken"
TOKEN_LENGTH = 64
# setSecret waits this long for the modification to apply (the function's timeout is longer); testSecret
# fails, and Secrets Manager retries the rotation, if it has not applied by then.
WAIT_SECONDS = int(os.environ.get("WAIT_SECONDS", "240"))
POLL_SECONDS = 10
sleep = time.sleep  # replaced in tests


def _clients():
    return boto3.client("secretsmanager"), boto3.client("elasticache")


def _group(ec, group_id: str) -> dict:
    return ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]


def _version_created(sm, arn: str, token: str) -> datetime:
    for version in sm.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)["Versions"]:
        if version["VersionId"] == token:
            return version["CreatedDate"]
    raise ValueError(f"version {token} of {arn} not found")


def _applied(sm, ec, arn: str, token: str, group_id: str) -> bool:
    """True once the group's token changed after the pending version was created (i.e. we ROTATEd it)."""
    modified = _group(ec, group_id).get("AuthTokenLastModifiedDate")
    return modified is not None and modified >= _version_created(sm, arn, token)


def create_secret(sm, arn: str, token: str) -> None:
    try:
        sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        return
    except sm.exceptions.ResourceNotFoundException:
        pass
    current = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    new = sm.get_random_password(PasswordLength=TOKEN_LENGTH, ExcludePunctuation=True)["RandomPassword"]
    sm.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, TOKEN_KEY: new}),
        VersionStages=["AWSPENDING"],
    )


def set_secret(sm, ec, arn: str, token: str, group_id: str) -> None:
    if _applied(sm, ec, arn, token, group_id):
        return
    group = _group(ec, group_id)
    if group["Status"] != "available":
        raise RuntimeError(f"{group_id} is {group['Status']}; retrying later")
    pending = json.loads(sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"])
    ec.modify_replication_group(
        ReplicationGroupId=group_id,
        AuthToken=pending[TOKEN_KEY],
        AuthTokenUpdateStrategy="ROTATE",
        ApplyImmediately=True,
    )
    for _ in range(WAIT_SECONDS // POLL_SECONDS):
        group = _group(ec, group_id)
        if group["Status"] == "available" and "AuthTokenStatus" not in (group.get("PendingModifiedValues") or {}):
            return
        sleep(POLL_SECONDS)


def test_secret(sm, ec, arn: str, token: str, group_id: str) -> None:
    group = _group(ec, group_id)
    pending = "AuthTokenStatus" in (group.get("PendingModifiedValues") or {})
    if group["Status"] != "available" or pending or not _applied(sm, ec, arn, token, group_id):
        raise RuntimeError(f"{group_id} has not applied the new AUTH token yet ({group['Status']})")


def finish_secret(sm, arn: str, token: str) -> None:
    versions = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next((v for v, stages in versions.items() if "AWSCURRENT" in stages), None)
    if current == token:
        return
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )


def handler(event: dict, _context, clients=None) -> None:
    sm, ec = clients or _clients()
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    group_id = os.environ["REPLICATION_GROUP_ID"]
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"].get(token)
    if stages is None:
        raise ValueError(f"version {token} is not a version of {arn}")
    if "AWSCURRENT" in stages and step != "finishSecret":
        return  # already finished
    if step == "createSecret":
        create_secret(sm, arn, token)
    elif step == "setSecret":
        set_secret(sm, ec, arn, token, group_id)
    elif step == "testSecret":
        test_secret(sm, ec, arn, token, group_id)
    elif step == "finishSecret":
        finish_secret(sm, arn, token)
    else:
        raise ValueError(f"unknown rotation step {step!r}")

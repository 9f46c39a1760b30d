"""The cache AUTH-token rotation Lambda: ROTATE once, AWSCURRENT moves only after ElastiCache applied it.

Secrets Manager and ElastiCache are in-memory fakes that keep the documented semantics: RotateSecret
labels the new version AWSPENDING before calling createSecret (no value yet); ElastiCache keeps at most
two AUTH tokens and a ROTATE adds one, dropping the oldest, and goes `modifying` before `available`.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

HANDLER = Path(__file__).resolve().parents[2] / "lambda_handlers" / "cache_rotation" / "app.py"
ARN = "arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:erp/prod/cache-AbCdEf"
GROUP = "erp-prod-cache"


class NotFound(Exception):
    pass


class FakeSecrets:
    class exceptions:  # noqa: N801 (boto3's shape)
        ResourceNotFoundException = NotFound

    def __init__(self, token: str, clock):
        self.clock = clock
        self.values = {"v1": json.dumps({"authToken": token})}
        self.stages = {"v1": ["AWSCURRENT"]}
        self.created = {"v1": clock()}
        self.random = iter(f"new-token-{i:02d}" + "x" * 50 for i in range(100))

    def start_rotation(self, token: str) -> None:
        self.stages[token] = ["AWSPENDING"]
        self.created[token] = self.clock()

    def describe_secret(self, SecretId):
        return {"VersionIdsToStages": {v: list(s) for v, s in self.stages.items() if s}}

    def list_secret_version_ids(self, SecretId, IncludeDeprecated):
        return {"Versions": [{"VersionId": v, "CreatedDate": c} for v, c in self.created.items()]}

    def get_secret_value(self, SecretId, VersionStage, VersionId=None):
        for version, stages in self.stages.items():
            if VersionStage in stages and (VersionId is None or VersionId == version) and version in self.values:
                return {"SecretString": self.values[version], "VersionId": version}
        raise NotFound(VersionStage)

    def get_random_password(self, PasswordLength, ExcludePunctuation):
        assert ExcludePunctuation and PasswordLength >= 16  # ElastiCache: 16-128 printable characters
        return {"RandomPassword": next(self.random)[:PasswordLength]}

    def put_secret_value(self, SecretId, ClientRequestToken, SecretString, VersionStages):
        self.values[ClientRequestToken] = SecretString
        self.stages[ClientRequestToken] = list(VersionStages)

    def update_secret_version_stage(self, SecretId, VersionStage, MoveToVersionId, RemoveFromVersionId):
        self.stages[RemoveFromVersionId].remove(VersionStage)
        self.stages[MoveToVersionId].append(VersionStage)

    def current_token(self) -> str:
        return json.loads(self.get_secret_value(ARN, "AWSCURRENT")["SecretString"])["authToken"]


class FakeCache:
    def __init__(self, token: str, clock):
        self.clock = clock
        self.tokens = [token]
        self.status = "available"
        self.modified = None
        self.calls = []

    def describe_replication_groups(self, ReplicationGroupId):
        assert ReplicationGroupId == GROUP
        group = {"ReplicationGroupId": GROUP, "Status": self.status, "AuthTokenEnabled": True}
        group["PendingModifiedValues"] = {"AuthTokenStatus": "ROTATING"} if self.status == "modifying" else {}
        if self.modified:
            group["AuthTokenLastModifiedDate"] = self.modified
        return {"ReplicationGroups": [group]}

    def modify_replication_group(self, ReplicationGroupId, AuthToken, AuthTokenUpdateStrategy, ApplyImmediately):
        assert AuthTokenUpdateStrategy == "ROTATE" and ApplyImmediately
        if self.status != "available":
            raise RuntimeError("InvalidReplicationGroupState")
        self.calls.append(AuthToken)
        self.tokens = [*self.tokens, AuthToken][-2:]  # at most two: the oldest goes
        self.status = "modifying"
        self.modified = self.clock()

    def finish_modifying(self):
        self.status = "available"

    def accepts(self, token: str) -> bool:
        return token in self.tokens


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("REPLICATION_GROUP_ID", GROUP)
    spec = importlib.util.spec_from_file_location("cache_rotation_app", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    now = [datetime(2026, 11, 29, tzinfo=UTC)]

    def clock():
        now[0] += timedelta(seconds=1)
        return now[0]

    sm, ec = FakeSecrets("old-token" + "o" * 40, clock), FakeCache("old-token" + "o" * 40, clock)
    module.sleep = lambda seconds: None  # the group stays `modifying` unless a test finishes it
    return module, sm, ec


def step(module, sm, ec, name, token="v2"):
    module.handler({"SecretId": ARN, "ClientRequestToken": token, "Step": name}, None, clients=(sm, ec))


def start_and_set(module, sm, ec) -> str:
    """Start rotation v2 and run createSecret + setSecret; returns the token current before it."""
    old = sm.current_token()
    sm.start_rotation("v2")
    step(module, sm, ec, "createSecret")
    step(module, sm, ec, "setSecret")
    return old


def test_full_rotation_keeps_the_old_token_valid_until_the_next_one(env):
    module, sm, ec = env
    old = start_and_set(module, sm, ec)
    new = json.loads(sm.values["v2"])["authToken"]
    assert ec.accepts(old) and ec.accepts(new)  # pods on the old token keep working
    assert sm.current_token() == old
    with pytest.raises(RuntimeError, match="has not applied"):
        step(module, sm, ec, "testSecret")  # still modifying: AWSCURRENT must not move yet
    ec.finish_modifying()
    step(module, sm, ec, "testSecret")
    step(module, sm, ec, "finishSecret")
    assert sm.current_token() == new and ec.accepts(old)


def test_a_retried_set_step_does_not_rotate_twice(env):
    """A second ROTATE would push out the token the running pods still use."""
    module, sm, ec = env
    old = start_and_set(module, sm, ec)
    ec.finish_modifying()
    step(module, sm, ec, "setSecret")
    assert len(ec.calls) == 1 and ec.accepts(old)


def test_create_is_idempotent_and_keeps_other_keys(env):
    module, sm, ec = env
    sm.values["v1"] = json.dumps({"authToken": sm.current_token(), "host": "cache.local"})
    sm.start_rotation("v2")
    step(module, sm, ec, "createSecret")
    first = sm.values["v2"]
    step(module, sm, ec, "createSecret")
    assert sm.values["v2"] == first and json.loads(first)["host"] == "cache.local"


def test_set_waits_while_the_group_is_busy(env):
    module, sm, ec = env
    sm.start_rotation("v2")
    step(module, sm, ec, "createSecret")
    ec.status = "snapshotting"
    with pytest.raises(RuntimeError, match="retrying later"):
        step(module, sm, ec, "setSecret")
    assert ec.calls == []


def test_two_rotations_drop_only_the_oldest_token(env):
    module, sm, ec = env
    first = sm.current_token()
    for version in ("v2", "v3"):
        sm.start_rotation(version)
        for name in ("createSecret", "setSecret"):
            step(module, sm, ec, name, version)
        ec.finish_modifying()
        for name in ("testSecret", "finishSecret"):
            step(module, sm, ec, name, version)
    second = json.loads(sm.values["v2"])["authToken"]
    assert not ec.accepts(first) and ec.accepts(second) and ec.accepts(sm.current_token())


def test_unknown_version_or_step_is_refused(env):
    module, sm, ec = env
    with pytest.raises(ValueError, match="not a version"):
        step(module, sm, ec, "createSecret", token="nope")
    sm.start_rotation("v2")
    with pytest.raises(ValueError, match="unknown rotation step"):
        step(module, sm, ec, "deleteSecret")


def test_set_waits_for_the_modification_then_test_and_finish_succeed(env):
    module, sm, ec = env
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        if len(polls) == 3:
            ec.finish_modifying()

    module.sleep = sleep
    sm.start_rotation("v2")
    for name in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        step(module, sm, ec, name)
    assert len(polls) == 3 and sm.current_token() == json.loads(sm.values["v2"])["authToken"]

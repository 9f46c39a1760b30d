"""Update safety: what changing each config field does, as a table (update_safety.yaml) checked three ways.

1. Every config field is in the table (a new field cannot ship without saying what changing it does).
2. Each CloudFormation property a field flows to is checked against CloudFormation's create-only list
   (cfn-lint's provider schemas): a create-only target cannot be called in-place.
3. One targeted re-synth of dev with several "routine" changes at once proves the claims end to end:
   only the node group is replaced (safe: generated name), Kafka grows without touching its StatefulSet,
   and everything else updates in place.
"""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from config import CONFIG_DIR
from config.models import EnvironmentConfig
from constructs_lib.common.reference_fingerprint import create_only_paths, create_only_properties
from tests.conftest import synth_app
from tests.infra.test_template_identity import templates_by_stack_name

TABLE = yaml.safe_load((Path(__file__).with_name("update_safety.yaml")).read_text())
EFFECTS = {"in-place", "replace", "refused", "manual", "none"}
UNSAFE = {"replace", "refused", "manual"}


def _model_of(annotation) -> tuple[type[BaseModel] | None, bool]:
    """(nested model, is a list of it) for a field annotation."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, False
        for inner in typing.get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner, True
    return None, False


def config_fields(model: type[BaseModel] = EnvironmentConfig, prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        nested, is_list = _model_of(field.annotation)
        path = f"{prefix}{name}{'[]' if is_list else ''}"
        found += config_fields(nested, f"{path}.") if nested else [path]
    return found


def covers(key: str, field: str) -> bool:
    if key.endswith(".*"):
        stem = key[:-2]
        return field.startswith(stem) and field[len(stem) : len(stem) + 1] in (".", "[")
    return key == field


def test_every_config_field_says_what_changing_it_does():
    fields = config_fields()
    missing = [f for f in fields if not any(covers(key, f) for key in TABLE)]
    assert missing == [], f"add these fields to tests/infra/update_safety.yaml: {missing}"
    stale = [key for key in TABLE if not any(covers(key, f) for f in fields)]
    assert stale == [], f"no such config field: {stale}"


@pytest.mark.parametrize("key", sorted(TABLE))
def test_entry_is_well_formed(key):
    entry = TABLE[key]
    assert entry["effect"] in EFFECTS
    if entry["effect"] == "manual":
        assert entry.get("procedure", "").strip(), f"{key}: a manual change needs its procedure"
    assert set(entry) <= {"effect", "flows_to", "procedure", "note"}


@pytest.mark.parametrize("key", sorted(k for k, v in TABLE.items() if v.get("flows_to")))
def test_create_only_targets_are_not_called_in_place(key):
    entry = TABLE[key]
    for target in entry["flows_to"]:
        resource_type, prop = target.rsplit(".", 1)  # prop may be nested: SamplingRule/FixedRate
        path = f"/properties/{prop}"
        create_only = any(path == p or path.startswith(f"{p}/") for p in create_only_paths(resource_type))
        if create_only:
            assert entry["effect"] in UNSAFE, f"{key}: {target} is create-only: changing it replaces the resource"
        else:  # a replacement through an updatable property needs its reason (e.g. a new logical id)
            assert entry["effect"] != "replace" or "note" in entry, key


# --- one re-synth ------------------------------------------------------------------------------------

ROUTINE_CHANGES = {
    ("cluster", "node_groups", 0, "instance_types"): ["t3.large"],
    ("kafka", "storage_gib"): 20,
    ("database", "instance_class"): "t4g.small",
    ("observability", "thresholds"): {"rds_cpu_pct": 70.0},
    ("services", 0, "image", "tag"): "1.0.1",
}


def _set(data, path, value):
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


@pytest.fixture(scope="module")
def changed_dev(tmp_path_factory) -> dict[str, dict]:
    config_dir = tmp_path_factory.mktemp("config")
    for file in CONFIG_DIR.glob("*.yaml"):
        shutil.copy(file, config_dir / file.name)
    dev = yaml.safe_load((config_dir / "dev.yaml").read_text())
    for path, value in ROUTINE_CHANGES.items():
        _set(dev, path, value)
    (config_dir / "dev.yaml").write_text(yaml.safe_dump(dev))
    outdir = synth_app(tmp_path_factory.mktemp("changed-dev"), env="dev", config_dir=str(config_dir))
    return {name: json.loads(body) for name, body in templates_by_stack_name(outdir).items()}


def classify(before: dict, after: dict) -> dict[str, set[str]]:
    """CloudFormation's view: replaced (a create-only property differs), updated, added, removed."""
    old, new = before["Resources"], after["Resources"]
    result = {"replaced": set(), "updated": set(), "added": set(new) - set(old), "removed": set(old) - set(new)}
    for logical_id in set(old) & set(new):
        a, b = old[logical_id], new[logical_id]
        if a == b:
            continue
        props_a, props_b = a.get("Properties", {}), b.get("Properties", {})
        create_only = () if a["Type"].startswith("Custom::") else create_only_properties(a["Type"])
        changed = {p for p in set(props_a) | set(props_b) if props_a.get(p) != props_b.get(p)}
        result["replaced" if changed & set(create_only) else "updated"].add(logical_id)
    return result


def test_routine_changes_replace_only_what_is_safe_to_replace(changed_dev, stack_templates):
    changes = {name: classify(stack_templates[name], changed_dev[name]) for name in changed_dev}
    replaced = {(name, logical_id) for name, c in changes.items() for logical_id in c["replaced"]}
    (nodegroup,) = (
        k for k, v in stack_templates["erp-dev-cluster"]["Resources"].items() if v["Type"] == "AWS::EKS::Nodegroup"
    )
    # The node group alone is replaced, and it has no fixed name to collide with.
    assert replaced == {("erp-dev-cluster", nodegroup)}
    assert "NodegroupName" not in changed_dev["erp-dev-cluster"]["Resources"][nodegroup]["Properties"]
    assert all(not c["removed"] for c in changes.values())
    # The database is resized in place.
    (database,) = (
        k for k, v in stack_templates["erp-dev-data"]["Resources"].items() if v["Type"] == "AWS::RDS::DBInstance"
    )
    assert database in changes["erp-dev-data"]["updated"]


def _kafka_statefulset(manifest) -> str:
    """The StatefulSet object of the kafka manifest (a Fn::Join whose tokens sit inside JSON strings)."""
    if isinstance(manifest, dict):
        parts = manifest["Fn::Join"][1]
        manifest = "".join(
            p if isinstance(p, str) else f"<{json.dumps(p, sort_keys=True)}>".replace('"', "'") for p in parts
        )
    objects = json.loads(manifest)
    (statefulset,) = [o for o in objects if isinstance(o, dict) and o.get("kind") == "StatefulSet"]
    return json.dumps(statefulset, sort_keys=True)


def test_kafka_grows_without_touching_its_statefulset(changed_dev, stack_templates):
    before, after = stack_templates["erp-dev-workloads"], changed_dev["erp-dev-workloads"]
    kafka = next(k for k in before["Resources"] if k.startswith("kafka"))
    # The topics Job follows storage_gib (retention.bytes); the StatefulSet itself must not change.
    statefulset = [_kafka_statefulset(t["Resources"][kafka]["Properties"]["Manifest"]) for t in (before, after)]
    assert statefulset[0] == statefulset[1], "volumeClaimTemplates are immutable: the StatefulSet must not change"
    patches = {k: v for k, v in after["Resources"].items() if v["Type"] == "Custom::AWSCDK-EKS-KubernetesPatch"}
    assert len(patches) == 1  # dev runs one broker
    (patch,) = patches.values()
    props = patch["Properties"]
    assert props["ResourceName"] == "persistentvolumeclaim/data-kafka-0"
    assert props["ResourceNamespace"] == "erp-dev"
    assert json.loads(props["ApplyPatchJson"]) == {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    assert kafka in patch["DependsOn"]
    assert not any(v["Type"] == "Custom::AWSCDK-EKS-KubernetesPatch" for v in before["Resources"].values())

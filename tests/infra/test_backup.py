"""Backups (issue 21): the plan and its selections per environment, the vaults, and the copy in a second region.

Environments come from config; the EBS CSI driver's tags come from its contract
(k8s_charts/contracts/aws-ebs-csi-driver.yaml), read from the driver's source, never from the construct under test.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import yaml

from config import environment_names
from config.kubernetes_versions import addon_version
from constructs_lib.cluster.kafka_volumes import claim_names
from tests.conftest import REPO, resources_of
from tests.infra.test_edge import artifact_environment
from tests.infra.test_slo import stack_dependencies

ENVS = environment_names()
CONTRACT = yaml.safe_load((REPO / "k8s_charts" / "contracts" / "aws-ebs-csi-driver.yaml").read_text())
PLAN = "AWS::Backup::BackupPlan"
VAULT = "AWS::Backup::BackupVault"
SELECTION = "AWS::Backup::BackupSelection"


def only(template: dict, resource_type: str) -> tuple[str, dict]:
    (found,) = resources_of(template, resource_type).items()
    return found


def selection(template: dict, name: str) -> dict:
    (found,) = [
        r["Properties"]["BackupSelection"]
        for r in resources_of(template, SELECTION).values()
        if r["Properties"]["BackupSelection"]["SelectionName"] == name
    ]
    return found


def tag_conditions(conditions: dict, operator: str) -> dict[str, str]:
    return {
        c["ConditionKey"].removeprefix("aws:ResourceTag/"): c["ConditionValue"] for c in conditions.get(operator, [])
    }


@pytest.mark.parametrize("env", ENVS)
def test_the_plan_has_one_rule_per_config_rule_with_its_copy(stack_templates, configs, env):
    config = configs[env]
    template = stack_templates[f"erp-{env}-backup"]
    _, plan = only(template, PLAN)
    rules = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    vault_id, _ = only(template, VAULT)
    copy = config.backup.copy
    assert [r["RuleName"] for r in rules] == [r.name for r in config.backup.rules]
    for rule, wanted in zip(rules, config.backup.rules, strict=True):
        assert rule["ScheduleExpression"] == wanted.schedule
        assert rule["ScheduleExpressionTimezone"] == wanted.timezone
        assert (rule["StartWindowMinutes"], rule["CompletionWindowMinutes"]) == (
            wanted.start_window_minutes,
            wanted.completion_window_minutes,
        )
        assert rule["Lifecycle"] == {"DeleteAfterDays": wanted.retention_days}
        assert rule["TargetBackupVault"] == {"Fn::GetAtt": [vault_id, "BackupVaultName"]}
        if copy is None or not wanted.copy:
            assert "CopyActions" not in rule
            continue
        (action,) = rule["CopyActions"]
        assert action == {
            "DestinationBackupVaultArn": (
                f"arn:aws:backup:{copy.region}:{config.account}:backup-vault:{config.resource_prefix}-backup-copy"
            ),
            "Lifecycle": {"DeleteAfterDays": copy.retention_days},
        }


def test_dev_has_no_copy_and_no_lock_prod_has_both(configs, stack_templates):
    """The committed shapes the issue asks for (the loop above covers any environment)."""
    assert configs["dev"].backup.copy is None and configs["dev"].backup.vault_lock is None
    assert "erp-dev-backup-copy" not in stack_templates
    assert "LockConfiguration" not in only(stack_templates["erp-dev-backup"], VAULT)[1]["Properties"]
    prod = configs["prod"].backup
    assert prod.copy is not None and prod.vault_lock is not None and prod.vault_lock.mode == "governance"
    plan = only(stack_templates["erp-prod-backup"], PLAN)[1]["Properties"]["BackupPlan"]
    assert all(rule["CopyActions"] for rule in plan["BackupPlanRule"])


def vault_stacks(config) -> list[tuple[str, str]]:
    """(stack name, vault name) of every vault of the environment."""
    prefix = config.resource_prefix
    found = [(f"{prefix}-backup", f"{prefix}-backup")]
    if config.backup.copy is not None:
        found.append((f"{prefix}-backup-copy", f"{prefix}-backup-copy"))
    return found


@pytest.mark.parametrize("env", ENVS)
def test_each_vault_is_encrypted_with_its_own_rotating_key_and_locked_as_config_says(stack_templates, configs, env):
    config = configs[env]
    lock = config.backup.vault_lock
    for stack_name, vault_name in vault_stacks(config):
        template = stack_templates[stack_name]
        _, vault = only(template, VAULT)
        key_id, key = only(template, "AWS::KMS::Key")
        props = vault["Properties"]
        assert props["BackupVaultName"] == vault_name
        assert props["EncryptionKeyArn"] == {"Fn::GetAtt": [key_id, "Arn"]}
        assert key["Properties"]["EnableKeyRotation"] is True
        if lock is None:
            assert "LockConfiguration" not in props
            continue
        expected = {"MinRetentionDays": lock.min_retention_days}
        if lock.max_retention_days is not None:
            expected["MaxRetentionDays"] = lock.max_retention_days
        if lock.mode == "compliance":  # governance is the absence of ChangeableForDays
            expected["ChangeableForDays"] = lock.changeable_for_days
        assert props["LockConfiguration"] == expected


@pytest.mark.parametrize("env", ENVS)
def test_prod_keeps_its_vaults_and_keys_dev_removes_them(stack_templates, configs, env):
    config = configs[env]
    for stack_name, _ in vault_stacks(config):
        template = stack_templates[stack_name]
        _, vault = only(template, VAULT)
        _, key = only(template, "AWS::KMS::Key")
        if config.production:
            assert vault["DeletionPolicy"] == "RetainExceptOnCreate" and vault["UpdateReplacePolicy"] == "Retain"
            assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
        else:
            assert vault["DeletionPolicy"] == key["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("env", ENVS)
def test_the_copy_vault_lives_in_the_copy_region_and_deploys_first(stack_artifacts, cdk_out, configs, env):
    config = configs[env]
    copy_stack = f"{config.resource_prefix}-backup-copy"
    if config.backup.copy is None:
        assert copy_stack not in stack_artifacts
        return
    assert artifact_environment(stack_artifacts, copy_stack) == f"aws://{config.account}/{config.backup.copy.region}"
    assert artifact_environment(stack_artifacts, f"{config.resource_prefix}-backup") == (
        f"aws://{config.account}/{config.region}"
    )
    assert {copy_stack, f"{config.resource_prefix}-data"} <= stack_dependencies(
        cdk_out, f"{config.resource_prefix}-backup"
    )


@pytest.mark.parametrize("env", ENVS)
def test_the_database_is_selected_by_the_tag_its_instance_carries(stack_templates, configs, env):
    config = configs[env]
    (instance,) = resources_of(stack_templates[f"{config.resource_prefix}-data"], "AWS::RDS::DBInstance").values()
    tags = {t["Key"]: t["Value"] for t in instance["Properties"]["Tags"]}
    chosen = selection(stack_templates[f"{config.resource_prefix}-backup"], f"{config.resource_prefix}-database")
    assert chosen["Resources"] == ["arn:aws:rds:*:*:db:*"]
    (wanted,) = tag_conditions(chosen["Conditions"], "StringEquals").items()
    assert tags[wanted[0]] == wanted[1] == config.resource_prefix
    assert set(chosen["Conditions"]) == {"StringEquals"} and "ListOfTags" not in chosen


def test_only_the_instance_carries_the_backup_tag(stack_templates):
    """Tagging the construct would tag its secret and rotation too: the tag marks what the plan backs up."""
    tagged = [
        logical_id
        for logical_id, r in stack_templates["erp-prod-data"]["Resources"].items()
        if any(t.get("Key") == "erp:backup" for t in r.get("Properties", {}).get("Tags", []) if isinstance(t, dict))
    ]
    assert [stack_templates["erp-prod-data"]["Resources"][t]["Type"] for t in tagged] == ["AWS::RDS::DBInstance"]


@pytest.mark.parametrize("env", ENVS)
def test_the_kafka_selection_matches_the_tags_the_ebs_csi_driver_writes(stack_templates, configs, env):
    config = configs[env]
    chosen = selection(stack_templates[f"{config.resource_prefix}-backup"], f"{config.resource_prefix}-kafka-volumes")
    assert chosen["Resources"] == ["arn:aws:ec2:*:*:volume/*"]
    tags = CONTRACT["volume_tags"]
    (managed,) = [t for t in tags["always"] if t["value"] == "true"]
    pvc = {t["key"].rsplit("/", 1)[-1]: t["key"] for t in tags["with_extra_create_metadata"] if "/pvc/" in t["key"]}
    assert tag_conditions(chosen["Conditions"], "StringEquals") == {
        managed["key"]: "true",
        pvc["namespace"]: config.namespace,
    }
    (name_key, pattern), *rest = tag_conditions(chosen["Conditions"], "StringLike").items()
    assert name_key == pvc["name"] and rest == []
    # The pattern covers every broker's claim and no other claim of the namespace.
    assert all(fnmatch.fnmatchcase(claim, pattern) for claim in claim_names(config))
    assert not any(fnmatch.fnmatchcase(other, pattern) for other in ("data-zookeeper-0", "kafka-0", "logs-kafka-0"))
    # Cluster-id tags exist only with --k8s-tag-cluster-id, which the add-on is not known to set.
    unsure = {t["key"] for t in tags["with_cluster_id"]}
    used = {c["ConditionKey"].removeprefix("aws:ResourceTag/") for op in chosen["Conditions"].values() for c in op}
    assert used & unsure == set() and CONTRACT["chart_defaults"]["controller.extraCreateMetadata"]["default"] is True


@pytest.mark.parametrize("env", ENVS)
def test_the_driver_the_add_on_runs_is_the_one_the_contract_was_read_at(configs, env):
    """A pinned add-on build must be a driver version whose source was read; unpinned (EKS's default at create)
    stands for the newest tag read."""
    pinned = addon_version(configs[env].cluster.kubernetes_version, "aws-ebs-csi-driver")
    if pinned is None:
        assert CONTRACT["version"] == max(CONTRACT["read_at"], key=lambda t: tuple(map(int, t[1:].split("."))))
    else:
        assert pinned.split("-eksbuild")[0] in CONTRACT["read_at"], (
            f"re-read kubernetes-sigs/aws-ebs-csi-driver at {pinned} and update {CONTRACT['component']}.yaml"
        )


@pytest.mark.parametrize("env", ENVS)
def test_the_selections_run_as_a_backup_service_role_with_the_aws_backup_policies(stack_templates, configs, env):
    template = stack_templates[f"erp-{env}-backup"]
    roles = {
        s["Properties"]["BackupSelection"]["IamRoleArn"]["Fn::GetAtt"][0]
        for s in resources_of(template, SELECTION).values()
    }
    (role_id,) = roles
    role = template["Resources"][role_id]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "backup.amazonaws.com"}
    policies = json.dumps(role["ManagedPolicyArns"])
    for name in ("AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores"):
        assert f"policy/service-role/{name}" in policies


def test_both_prod_backup_stacks_are_protected(termination_protected, configs):
    assert termination_protected["erp-prod-backup"] is True
    assert termination_protected["erp-dev-backup"] is False
    assert termination_protected["erp-prod-backup-copy"] is True


def test_stage_deploys_to_the_copy_region_too(configs):
    """The pipeline's regions (cross-region support, diff lookups) come from deploy_regions."""
    prod = configs["prod"]
    assert prod.backup.copy.region in prod.deploy_regions and prod.deploy_regions[0] == prod.region
    assert len(set(prod.deploy_regions)) == len(prod.deploy_regions)


def test_the_runbook_names_the_committed_copy_region_and_vaults(configs):
    readme = (Path(REPO) / "README.md").read_text()
    section = readme.split("## Backups and restore", 1)[1].split("\n## ", 1)[0]
    prod = configs["prod"]
    for fact in (
        prod.backup.copy.region,
        "erp-prod-backup-copy",
        "restore-db-instance-to-point-in-time",
        "data-kafka-",
    ):
        assert fact in section, fact

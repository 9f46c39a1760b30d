"""The data tier: what keeps the database alive, encrypted and reachable only by name."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from tests.conftest import resources_of

# Renaming a construct must never replace a database: these ids are pinned on purpose.
PINNED_LOGICAL_IDS = {
    "network": {"NetworkVpc7FB7348F": "AWS::EC2::VPC"},
    "data": {
        "DatabaseInstanceAA8A5FDE": "AWS::RDS::DBInstance",
        "CacheReplicationGroupBFE59FF3": "AWS::ElastiCache::ReplicationGroup",
        "CacheAuthToken04672416": "AWS::SecretsManager::Secret",
    },
}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_logical_ids_of_stateful_resources_are_pinned(stack_templates, env):
    for stack, pinned in PINNED_LOGICAL_IDS.items():
        resources = stack_templates[f"erp-{env}-{stack}"]["Resources"]
        for logical_id, resource_type in pinned.items():
            assert resources.get(logical_id, {}).get("Type") == resource_type, (
                f"{logical_id} moved or vanished in erp-{env}-{stack}: that would replace live data"
            )


def test_mysql_84_encrypted_in_isolated_subnets(template, configs):
    for env, config in configs.items():
        data = template(f"erp-{env}-data")
        data.has_resource_properties(
            "AWS::RDS::DBInstance",
            {
                "Engine": "mysql",
                "EngineVersion": config.database.engine_version,
                "DBInstanceClass": f"db.{config.database.instance_class}",
                "StorageEncrypted": True,
                "StorageType": "gp3",
                "MultiAZ": config.database.multi_az,
                "BackupRetentionPeriod": config.database.backup_retention_days,
                "DeletionProtection": config.database.deletion_protection,
                "EnableCloudwatchLogsExports": ["error", "slowquery"],
                "PubliclyAccessible": False,
            },
        )
        assert config.database.engine_version.startswith("8.4.")
        data.has_resource_properties(
            "AWS::RDS::DBParameterGroup", {"Parameters": Match.object_like({"require_secure_transport": "1"})}
        )
        data.has_resource_properties("AWS::RDS::DBInstance", {"CACertificateIdentifier": "rds-ca-rsa2048-g1"})


def test_db_subnet_group_uses_isolated_subnets(stack_templates):
    for env in ("dev", "prod"):
        group = next(iter(resources_of(stack_templates[f"erp-{env}-data"], "AWS::RDS::DBSubnetGroup").values()))
        imports = json.dumps(group["Properties"]["SubnetIds"])
        assert "isolatedSubnet" in imports and "privateSubnet" not in imports


def test_credentials_are_generated_never_literal(stack_templates, configs):
    for env in ("dev", "prod"):
        data = stack_templates[f"erp-{env}-data"]
        db = resources_of(data, "AWS::RDS::DBInstance")["DatabaseInstanceAA8A5FDE"]["Properties"]
        assert "{{resolve:secretsmanager:" in json.dumps(db["MasterUserPassword"])
        cache = resources_of(data, "AWS::ElastiCache::ReplicationGroup")["CacheReplicationGroupBFE59FF3"]["Properties"]
        if configs[env].cache.allow_plaintext_clients:
            assert "AuthToken" not in cache  # dev's unmodified notification-service cannot send one
        else:
            assert json.dumps(cache["AuthToken"]).count("{{resolve:secretsmanager:") == 1
        secrets = resources_of(data, "AWS::SecretsManager::Secret")
        names = sorted(s["Properties"]["Name"] for s in secrets.values())
        assert names == [f"erp/{env}/cache", f"erp/{env}/mongodb", f"erp/{env}/mysql", f"erp/{env}/mysql/employee_app"]
        assert all("GenerateSecretString" in s["Properties"] for s in secrets.values())


def test_mongodb_secret_exists_without_a_usable_uri(stack_templates):
    """erp/{env}/mongodb is created with a random placeholder and no "uri" key: nothing in git, nothing usable
    until an operator writes the URI (README: Deploy)."""
    for env in ("dev", "prod"):
        data = stack_templates[f"erp-{env}-data"]
        (secret,) = [
            s["Properties"]
            for s in resources_of(data, "AWS::SecretsManager::Secret").values()
            if s["Properties"]["Name"] == f"erp/{env}/mongodb"
        ]
        generated = secret["GenerateSecretString"]
        assert generated["SecretStringTemplate"] == "{}" and generated["GenerateStringKey"] != "uri"
        assert "SecretString" not in secret
        assert "mongodb/secret-arn" in json.dumps(data)


def test_prod_rotates_db_credentials_and_dev_does_not(template):
    template("erp-prod-data").has_resource_properties(
        "AWS::SecretsManager::RotationSchedule", {"RotationRules": {"ScheduleExpression": "rate(30 days)"}}
    )
    template("erp-dev-data").resource_count_is("AWS::SecretsManager::RotationSchedule", 0)


def test_cache_encrypted_and_failover_in_prod(template, configs):
    for env, config in configs.items():
        failover = config.cache.replicas > 0
        template(f"erp-{env}-data").has_resource_properties(
            "AWS::ElastiCache::ReplicationGroup",
            {
                "Engine": "valkey",
                "AtRestEncryptionEnabled": True,
                # TLS everywhere but where config names the dev-only plaintext switch (refused in production).
                "TransitEncryptionEnabled": not config.cache.allow_plaintext_clients,
                "AutomaticFailoverEnabled": failover,
                "MultiAZEnabled": failover,
                "ReplicasPerNodeGroup": config.cache.replicas,
            },
        )
    assert configs["prod"].cache.replicas >= 1
    assert not configs["prod"].cache.allow_plaintext_clients


def test_security_groups_admit_nobody_by_default(stack_templates):
    for env in ("dev", "prod"):
        data = stack_templates[f"erp-{env}-data"]
        for logical_id in ("DatabaseSecurityGroup5C91FDCB", "CacheSecurityGroup79A9F160"):
            props = data["Resources"][logical_id]["Properties"]
            assert "SecurityGroupIngress" not in props
            # allow_all_outbound=False renders as a single deny-all placeholder rule.
            assert props["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"


def test_removal_policies_per_environment(stack_templates):
    dev = stack_templates["erp-dev-data"]["Resources"]
    prod = stack_templates["erp-prod-data"]["Resources"]
    assert dev["DatabaseInstanceAA8A5FDE"]["DeletionPolicy"] == "Delete"
    assert prod["DatabaseInstanceAA8A5FDE"]["DeletionPolicy"] == "Snapshot"
    assert prod["CacheReplicationGroupBFE59FF3"]["DeletionPolicy"] == "Snapshot"


def test_ssm_parameters_for_deploy_tooling(stack_templates, configs):
    for env in configs:
        params = resources_of(stack_templates[f"erp-{env}-data"], "AWS::SSM::Parameter").values()
        names = {p["Properties"]["Name"] for p in params}
        expected = {
            f"/erp/{env}/{key}"
            for key in (
                "account-id",
                "region",
                "project-name",
                "environment",
                "db/endpoint",
                "db/port",
                "db/name",
                "db/secret-arn",
                "cache/endpoint",
                "cache/port",
                "cache/secret-arn",
            )
        }
        assert expected <= names
        by_name = {p["Properties"]["Name"]: p["Properties"]["Value"] for p in params}
        assert by_name[f"/erp/{env}/environment"] == env
        assert by_name[f"/erp/{env}/db/port"] == "3306"


def test_prod_cache_auth_token_rotates_with_the_rotate_strategy_lambda(stack_templates, configs):
    """Issue 12: the cache AUTH token never rotated (SMG4 acknowledged); prod now rotates it."""
    prod = stack_templates["erp-prod-data"]
    schedules = [
        r["Properties"]
        for r in resources_of(prod, "AWS::SecretsManager::RotationSchedule").values()
        if "CacheAuthToken" in json.dumps(r["Properties"]["SecretId"])
    ]
    (schedule,) = schedules
    days = configs["prod"].cache.auth_token_rotation_days
    assert schedule["RotationRules"] == {"ScheduleExpression": f"rate({days} days)"}
    function_id = schedule["RotationLambdaARN"]["Fn::GetAtt"][0]
    function = prod["Resources"][function_id]["Properties"]
    assert function["Handler"] == "app.handler" and "REPLICATION_GROUP_ID" in function["Environment"]["Variables"]
    actions = json.dumps([p["Properties"]["PolicyDocument"] for p in resources_of(prod, "AWS::IAM::Policy").values()])
    for action in ("elasticache:ModifyReplicationGroup", "secretsmanager:ListSecretVersionIds"):
        assert action in actions
    dev = stack_templates["erp-dev-data"]
    assert not any(
        "CacheAuthToken" in json.dumps(r["Properties"]["SecretId"])
        for r in resources_of(dev, "AWS::SecretsManager::RotationSchedule").values()
    )


def test_prod_database_deletion_protection_is_real_and_rds10_acknowledged_only_in_dev(stack_artifacts, stack_templates):
    """Issue 12: with the prod rules deleted and deletion_protection false, every test used to pass (RDS10 was
    acknowledged in prod too). The template must say True, and only dev may acknowledge RDS10."""
    (instance,) = resources_of(stack_templates["erp-prod-data"], "AWS::RDS::DBInstance").values()
    assert instance["Properties"]["DeletionProtection"] is True
    for env, expected in (("prod", False), ("dev", True)):
        directory, props = stack_artifacts[f"erp-{env}-data"]
        metadata = (directory / props["templateFile"].replace(".template.json", ".metadata.json")).read_text()
        assert ("AwsSolutions-RDS10" in metadata) is expected, env


def _depends_closure(template: dict, logical_id: str) -> set[str]:
    """Every resource `logical_id` waits for: DependsOn plus Ref / Fn::GetAtt / Fn::Sub, transitively."""
    resources = template["Resources"]

    def direct(resource_id: str) -> set[str]:
        resource = resources[resource_id]
        depends = resource.get("DependsOn", [])
        found = set([depends] if isinstance(depends, str) else depends)
        text = json.dumps(resource.get("Properties", {}))
        found |= {other for other in resources if f'"Ref": "{other}"' in text or f'["{other}", ' in text}
        found |= {other for other in resources if "${" + other in text}
        return found - {resource_id}

    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        for other in direct(todo.pop()) - seen:
            seen.add(other)
            todo.append(other)
    return seen


def test_no_rotation_starts_before_the_migration_trigger_finished(stack_templates):
    """Issue 18 item 4: the migration Trigger depended on the master secret's rotation schedule, which rotates on
    create: the password changed under the migration, its next connection failed, and the rollback met a
    deletion-protected instance (ROLLBACK_FAILED). Every DB rotation schedule must now wait for the Trigger, and the
    Trigger for none of them (nor for the rotation applications)."""
    prod = stack_templates["erp-prod-data"]
    (trigger_id,) = resources_of(prod, "Custom::Trigger")
    before_trigger = _depends_closure(prod, trigger_id)
    schedules = {
        logical_id
        for logical_id, schedule in resources_of(prod, "AWS::SecretsManager::RotationSchedule").items()
        if "CacheAuthToken" not in json.dumps(schedule["Properties"]["SecretId"])
    }
    master = [s for s in schedules if s.startswith("DatabaseInstanceSecretAttachment")]
    assert len(master) == 1 and len(schedules) >= 2, schedules  # the master's and each consumer's
    assert not schedules & before_trigger
    assert not {r for r in before_trigger if prod["Resources"][r]["Type"] == "AWS::Serverless::Application"}
    for schedule in schedules:
        assert trigger_id in _depends_closure(prod, schedule), schedule
    # ...and still after the database it migrates, its master secret and the migrator's way in.
    instance_id = next(iter(resources_of(prod, "AWS::RDS::DBInstance")))
    assert instance_id in before_trigger
    assert {"AWS::SecretsManager::Secret", "AWS::SecretsManager::SecretTargetAttachment"} <= {
        prod["Resources"][r]["Type"] for r in before_trigger
    }
    assert any(
        "MigratorSecurityGroup" in r and prod["Resources"][r]["Type"] == "AWS::EC2::SecurityGroupIngress"
        for r in before_trigger
    )


def test_cache_rotation_lambda_may_be_invoked_by_this_accounts_secrets_manager_only(stack_templates, configs):
    """Issue 18 item 19: the rotation Lambda's resource policy let Secrets Manager of any account invoke it."""
    prod = stack_templates["erp-prod-data"]
    permissions = [
        p["Properties"]
        for p in resources_of(prod, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
    ]
    assert permissions and all(p.get("SourceAccount") == configs["prod"].account for p in permissions)

"""Per-consumer MySQL users and the migrations: secrets, rotation, the migration function and
the Trigger that runs it during the deploy, after the database."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from config import load_environment
from config.sections import DatabaseConfig
from constructs_lib.data.database import ErpDatabase
from constructs_lib.data.database_users import DatabaseUsers, db_user_name
from stacks.data import DataStack
from stacks.network import NetworkStack
from tests.conftest import properties_of, resources_of

ENVS = ["dev", "prod"]


def data(stack_templates, env) -> dict:
    return stack_templates[f"erp-{env}-data"]


def migrator(template: dict) -> tuple[str, dict]:
    found = [
        (k, v)
        for k, v in resources_of(template, "AWS::Lambda::Function").items()
        if "MASTER_SECRET_ARN" in v["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(found) == 1
    return found[0]


def logical_id_of(template: dict, resource_type: str, **props) -> str:
    found = [
        k
        for k, v in resources_of(template, resource_type).items()
        if all(v["Properties"].get(key) == value for key, value in props.items())
    ]
    assert len(found) == 1, (resource_type, props)
    return found[0]


@pytest.mark.parametrize("env", ENVS)
def test_employee_app_secret_is_generated_in_the_rds_shape(stack_templates, env):
    template = data(stack_templates, env)
    secret_id = logical_id_of(template, "AWS::SecretsManager::Secret", Name=f"erp/{env}/mysql/employee_app")
    generate = template["Resources"][secret_id]["Properties"]["GenerateSecretString"]
    template_json = (
        json.loads(generate["SecretStringTemplate"])
        if isinstance(generate["SecretStringTemplate"], str)
        else generate["SecretStringTemplate"]
    )
    assert "employee_app" in json.dumps(template_json) and "masterarn" in json.dumps(template_json)
    assert generate["GenerateStringKey"] == "password"
    attachments = [
        a["Properties"]
        for a in resources_of(template, "AWS::SecretsManager::SecretTargetAttachment").values()
        if a["Properties"]["SecretId"] == {"Ref": secret_id}
    ]
    assert len(attachments) == 1 and attachments[0]["TargetType"] == "AWS::RDS::DBInstance"


@pytest.mark.parametrize("env", ENVS)
def test_migration_function_uses_master_and_lists_the_consumers(stack_templates, env):
    template = data(stack_templates, env)
    _, function = migrator(template)
    props = function["Properties"]
    variables = props["Environment"]["Variables"]
    assert variables["MASTER_SECRET_ARN"] == {"Ref": "DatabaseInstanceSecretAttachment3E4FDC61"} or (
        "DatabaseInstanceSecret" in json.dumps(variables["MASTER_SECRET_ARN"])
    )
    assert variables["DB_TLS"] == "true" and "DB_CA_BUNDLE" not in variables
    consumers = json.dumps(variables["CONSUMERS"])
    assert '\\"employee_app\\":{\\"secret_arn\\":' in consumers and '\\"privileges\\":\\"DML\\"' in consumers
    assert props["Handler"] == "app.handler" and props["Runtime"] == "python3.13"
    assert "privateSubnet" in json.dumps(props["VpcConfig"]["SubnetIds"])


@pytest.mark.parametrize("env", ENVS)
def test_trigger_runs_the_migrator_after_the_database_and_the_user_secrets(stack_templates, env):
    template = data(stack_templates, env)
    function_id, _ = migrator(template)
    triggers = resources_of(template, "Custom::Trigger")
    assert len(triggers) == 1
    (trigger,) = triggers.values()
    assert trigger["Properties"]["InvocationType"] == "RequestResponse"  # a failed migration fails the deploy
    handler = json.dumps(trigger["Properties"]["HandlerArn"])
    assert function_id.removesuffix(function_id[-8:]) + "CurrentVersion" in handler  # a version of the migrator
    depends = trigger.get("DependsOn", [])
    assert "DatabaseInstanceAA8A5FDE" in depends
    assert any("employeeapp" in d and "Attachment" in d for d in depends), depends


@pytest.mark.parametrize("env", ENVS)
def test_migrator_reaches_mysql_through_the_database_security_group(stack_templates, env):
    template = data(stack_templates, env)
    _, function = migrator(template)
    sg_ref = function["Properties"]["VpcConfig"]["SecurityGroupIds"][0]
    ingress = properties_of(template, "AWS::EC2::SecurityGroupIngress", SourceSecurityGroupId=sg_ref)
    assert [(r["FromPort"], r["ToPort"]) for r in ingress] == [(3306, 3306)]


def test_prod_rotates_each_user_secret_with_the_multi_user_strategy(stack_templates):
    template = data(stack_templates, "prod")
    secret_id = logical_id_of(template, "AWS::SecretsManager::Secret", Name="erp/prod/mysql/employee_app")
    schedules = [
        s["Properties"]
        for s in resources_of(template, "AWS::SecretsManager::RotationSchedule").values()
        if "employeeapp" in json.dumps(s["Properties"]["SecretId"]) or s["Properties"]["SecretId"] == {"Ref": secret_id}
    ]
    assert len(schedules) == 1
    # The SAR application behind the schedule is AWS's multi-user MySQL rotation.
    (schedule,) = schedules
    app_id = schedule["RotationLambdaARN"]["Fn::GetAtt"][0]
    mapping = template["Resources"][app_id]["Properties"]["Location"]["ApplicationId"]["Fn::FindInMap"][0]
    assert template["Mappings"][mapping]["aws"]["applicationId"].endswith("/SecretsManagerRDSMySQLRotationMultiUser")
    assert resources_of(data(stack_templates, "dev"), "AWS::SecretsManager::RotationSchedule") == {}


def test_first_rotation_waits_for_the_trigger_that_creates_the_user(stack_templates):
    template = data(stack_templates, "prod")
    (trigger_id,) = resources_of(template, "Custom::Trigger")
    schedules = [
        v for k, v in resources_of(template, "AWS::SecretsManager::RotationSchedule").items() if "employeeapp" in k
    ]
    assert len(schedules) == 1
    assert trigger_id in schedules[0].get("DependsOn", [])
    depends = template["Resources"][trigger_id].get("DependsOn", [])
    assert not any("RotationSchedule" in d and "employeeapp" in d for d in depends)


def test_the_construct_takes_a_list_of_consumers_and_refuses_bad_ones():
    app = cdk.App()
    stack = cdk.Stack(app, "T", env=cdk.Environment(account="123456789012", region="ap-northeast-2"))
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
        ],
    )
    config = DatabaseConfig(multi_az=False, backup_retention_days=1, deletion_protection=False, removal="destroy")
    database = ErpDatabase(stack, "Db", vpc=vpc, config=config, production=False, secret_name="erp/t/mysql")
    users = DatabaseUsers(
        stack,
        "Users",
        database=database,
        vpc=vpc,
        database_name="erp",
        secret_prefix="erp/t/mysql",  # pragma: allowlist secret
        consumers={"employee_app": "DML", "approval_request": "DML"},
        rotation_days=None,
        business_timezone="Asia/Seoul",
        log_retention_days=7,
        production=False,
    )
    users.add_consumer("schema_owner", "DDL")
    assert sorted(users.secrets) == ["approval_request", "employee_app", "schema_owner"]
    assert users.secret("schema_owner") is users.secrets["schema_owner"]
    with pytest.raises(KeyError, match="known"):
        users.secret("nobody")
    for name, level in (("Bad-Name", "DML"), ("x" * 27, "DML"), ("ok_name", "ALL"), ("employee_app", "DML")):
        with pytest.raises(ValueError):
            users.add_consumer(name, level)
    env = cdk.assertions.Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    consumers = [
        json.dumps(f["Properties"]["Environment"]["Variables"].get("CONSUMERS"))
        for f in env.values()
        if "CONSUMERS" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(consumers) == 1 and all(n in consumers[0] for n in ("approval_request", "schema_owner", "DDL"))


def test_migrator_bundle_holds_migrations_ca_bundle_and_yoyo(stack_templates, cdk_out):
    _, function = migrator(data(stack_templates, "dev"))
    key = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    (bundle,) = list(cdk_out.rglob(f"asset.{key}"))
    names = {p.name for p in bundle.iterdir()}
    assert {"app.py", "migrations", "rds-ca-bundle.pem", "yoyo", "pymysql", "sqlparse"} <= names
    assert {p.name for p in (bundle / "migrations").iterdir()} >= {"0001_baseline.sql", "0002_lookup_indexes.py"}
    shipped = (bundle / "rds-ca-bundle.pem").read_bytes()
    source = Path(__file__).resolve().parents[2] / "lambda_handlers" / "employee" / "rds-ca-bundle.pem"
    assert not (bundle / "rds-ca-bundle.pem").is_symlink() and shipped == source.read_bytes()


def test_an_eks_service_that_declares_mysql_gets_its_own_user():
    """Issue 12 item 3 / issue 10 item 2: the ERP's services use no MySQL, but one that declares it logs in as
    its own DML user (erp/{env}/mysql/<user>), handed to the charts through DataEndpoints."""
    dev = load_environment("dev")
    service = dev.services[1]
    config = dev.model_copy(
        update={
            "services": [s.model_copy(update={"uses": [*s.uses, "mysql"]}) if s is service else s for s in dev.services]
        }
    )
    app = cdk.App()
    network = NetworkStack(
        app, "Network", config=config, env=cdk.Environment(account=config.account, region=config.region)
    )
    data = DataStack(
        app, "Data", config=config, vpc=network.vpc, env=cdk.Environment(account=config.account, region=config.region)
    )
    user = db_user_name(service.name)
    assert set(data.endpoints.service_db_secrets) == {service.name}
    names = [
        r["Properties"].get("Name")
        for r in Template.from_stack(data).to_json()["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::Secret"
    ]
    assert f"erp/dev/mysql/{user}" in names


def test_service_mysql_user_names_fit_mysql_and_rotation():
    assert len(db_user_name("x" * 40) + "_clone") <= 32  # multi-user rotation adds _clone
    with pytest.raises(ValueError, match="no valid MySQL user name"):
        db_user_name("9-starts-with-a-digit")

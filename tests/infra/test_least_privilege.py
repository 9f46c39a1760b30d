"""Issue 18 item 17: least privilege between the cluster and the data tier.

- The External Secrets controller's Pod Identity role could read `erp/<env>/*`, the master DB secret included. It
  may now read exactly the secrets the rendered ExternalSecrets reference (resolved from the synthesized Workloads
  manifests to the Data stack's secret names), by name with Secrets Manager's six-character suffix.
- The cluster security group (every pod, and the kubectl Lambda) reached MySQL on 3306 although no EKS service
  declares `mysql`; a rule to a data store now exists only when some service declares it.
"""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks

from constructs_lib.cluster.external_secrets import synced_secret_names
from constructs_lib.cluster.workload_access import WorkloadAccess
from k8s_charts import names
from tests.conftest import resources_of
from tests.support.cloudformation import Stacks

ENVS = ["dev", "prod"]
SUFFIX = re.compile(r":secret:(?P<name>.+)-\?{6}$")


def eso_statements(stacks: Stacks, env: str) -> list[dict]:
    cluster = f"erp-{env}-cluster"
    (association,) = [
        a["Properties"]
        for a in stacks.resources(cluster, "AWS::EKS::PodIdentityAssociation").values()
        if a["Properties"]["ServiceAccount"] == names.EXTERNAL_SECRETS_SERVICE_ACCOUNT
        and a["Properties"]["Namespace"] == names.EXTERNAL_SECRETS_NAMESPACE
    ]
    role = association["RoleArn"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in stacks.resources(cluster, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def secret_name(stacks: Stacks, resolved: str) -> str:
    """The Name of the secret a resolved ARN stands for (an attachment's Ref is its secret's ARN)."""
    origin = stacks.origin(resolved)
    resource = stacks.resource(origin.stack, origin.logical_id)
    if resource["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
        resource = stacks.resource(origin.stack, resource["Properties"]["SecretId"]["Ref"])
    assert resource["Type"] == "AWS::SecretsManager::Secret", resource["Type"]
    return resource["Properties"]["Name"]


def referenced_secret_names(stacks: Stacks, env: str) -> set[str]:
    workloads = f"erp-{env}-workloads"
    found = set()
    for logical_id in stacks.resources(workloads, "Custom::AWSCDK-EKS-KubernetesResource"):
        for document in stacks.manifest(workloads, logical_id):
            if document.get("kind") == "ExternalSecret":
                found |= {secret_name(stacks, d["remoteRef"]["key"]) for d in document["spec"]["data"]}
    return found


@pytest.mark.parametrize("env", ENVS)
def test_external_secrets_reads_exactly_the_secrets_its_external_secrets_reference(stack_templates, configs, env):
    config = configs[env]
    stacks = Stacks(stack_templates, region=config.region, account=config.account)
    referenced = referenced_secret_names(stacks, env)
    assert referenced  # MongoDB's URI at least
    statements = eso_statements(stacks, env)
    granted = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert sorted(statement["Action"]) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            arn = stacks.resolve(f"erp-{env}-cluster", resource)
            assert arn.startswith(f"arn:aws:secretsmanager:{config.region}:{config.account}:secret:"), arn
            assert "*" not in arn, arn
            granted.add(SUFFIX.search(arn)["name"])
    assert granted == referenced == set(synced_secret_names(config))
    assert config.secret_name("mysql") not in granted  # the master DB secret


def test_a_mysql_service_gets_its_own_users_secret_and_never_the_masters(configs):
    config = configs["dev"]
    first, *rest = config.services
    with_mysql = config.model_copy(update={"services": [first.model_copy(update={"uses": ["mysql"]}), *rest]})
    added = set(synced_secret_names(with_mysql)) - set(synced_secret_names(config))
    # The name DataStack gives that service's user's secret (DatabaseUsers: "<mysql secret>/<db user>").
    assert added == {f"{config.secret_name('mysql')}/{first.name.replace('-', '_')}"}


def _access_rules(config) -> dict[int, dict]:
    app = cdk.App()
    stack = cdk.Stack(app, "T", env=cdk.Environment(account=config.account, region=config.region))
    cluster = eks.Cluster.from_cluster_attributes(
        stack, "Cluster", cluster_name="c", cluster_security_group_id="sg-0123456789abcdef0"
    )
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["ap-northeast-2a"]
    )
    database = ec2.SecurityGroup(stack, "Db", vpc=vpc)
    cache = ec2.SecurityGroup(stack, "Cache", vpc=vpc)
    WorkloadAccess(
        stack, "Access", config=config, cluster=cluster, database_security_group=database, cache_security_group=cache
    )
    template = app.synth().get_stack_by_name("T").template
    return {
        r["Properties"]["FromPort"]: r["Properties"]
        for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
    }


def test_pods_reach_mysql_only_when_a_service_declares_it(configs):
    config = configs["dev"]
    assert not any("mysql" in s.uses for s in config.services)
    rules = _access_rules(config)
    assert 3306 not in rules
    assert rules[6379]["GroupId"]["Fn::GetAtt"][0].startswith("Cache")  # notification-service declares `cache`
    first, *rest = config.services
    with_mysql = config.model_copy(update={"services": [first.model_copy(update={"uses": ["mysql"]}), *rest]})
    rule = _access_rules(with_mysql)[3306]
    assert rule["GroupId"]["Fn::GetAtt"][0].startswith("Db") and rule["SourceSecurityGroupId"] == "sg-0123456789abcdef0"
    assert json.dumps(rule).count("3306") == 2  # FromPort and ToPort only

"""What a first deploy into fresh accounts needs from the templates (issue 13)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, resources_of

ENVS = ["dev", "prod"]
# Properties whose literal value must be unique in an account/region: a retained orphan of a failed first
# create makes the retry fail with "already exists".
UNIQUE_NAMES = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SecretsManager::Secret": "Name",  # pragma: allowlist secret
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SSM::Parameter": "Name",
    "AWS::EKS::Nodegroup": "NodegroupName",
}


def test_fixed_name_resources_are_not_retained_after_a_failed_first_create(stack_templates):
    """Retain + a fixed name: RetainExceptOnCreate (kept on update/delete, deleted when its own create fails)."""
    checked = []
    for stack, template in stack_templates.items():
        for logical_id, resource in template["Resources"].items():
            name = resource.get("Properties", {}).get(UNIQUE_NAMES.get(resource["Type"], ""))
            if isinstance(name, str) and resource.get("DeletionPolicy", "Delete") != "Delete":
                checked.append(name)
                assert resource["DeletionPolicy"] == "RetainExceptOnCreate", f"{stack}/{logical_id} ({name})"
                assert resource.get("UpdateReplacePolicy") == "Retain", f"{stack}/{logical_id}"
    # The prod secrets, repositories and fixed-name log groups are among them.
    assert {"erp/prod/mysql", "erp/prod/cache", "erp/approval-request-service", "/aws/eks/erp-prod/cluster"} <= set(
        checked
    )


@pytest.mark.parametrize("env", ENVS)
def test_helm_releases_wait_for_the_node_groups(stack_templates, env):
    template = stack_templates[f"erp-{env}-cluster"]
    nodegroups = set(resources_of(template, "AWS::EKS::Nodegroup"))
    charts = resources_of(template, "Custom::AWSCDK-EKS-HelmChart")
    assert len(charts) == 4  # AWS Load Balancer Controller, External Secrets, Reloader, Cluster Autoscaler
    for logical_id, chart in charts.items():
        assert nodegroups <= set(chart.get("DependsOn", [])), logical_id
        # --wait everywhere (issue 18 item 15): the awake check keeps night deploys out of a sleeping stage.
        assert chart["Properties"].get("Wait") is True, logical_id


def test_dev_nat_instance_image_is_pinned_by_the_committed_lookup(stack_templates, configs):
    """ImageId is create-only: an AMI read from SSM at deploy time would replace the NAT instance on its own.
    The lookup is the one of dev's account as configured (not a typed account id: replacing the placeholder
    account must not break this test; issue 18 item 2)."""
    dev = configs["dev"]
    template = stack_templates[f"{dev.resource_prefix}-network"]
    (instance,) = resources_of(template, "AWS::EC2::Instance").values()
    image = instance["Properties"]["ImageId"]
    assert isinstance(image, str) and image.startswith("ami-")
    ssm = [p for p in template.get("Parameters", {}) if p != "BootstrapVersion"]
    assert ssm == [] and "resolve:ssm" not in json.dumps(template["Resources"])
    context = json.loads((REPO / "cdk.context.json").read_text())
    lookups = [v for k, v in context.items() if k.startswith(f"ami:account={dev.account}:") and dev.region in k]
    assert image in lookups


def test_admin_roles_are_access_entries_that_need_the_role_to_exist(stack_templates, configs):
    """EKS refuses an access entry for a role that does not exist: a README precondition."""
    readme = (REPO / "README.md").read_text()
    for env in ENVS:
        entries = resources_of(stack_templates[f"erp-{env}-cluster"], "AWS::EKS::AccessEntry").values()
        principals = {
            e["Properties"]["PrincipalArn"] for e in entries if isinstance(e["Properties"]["PrincipalArn"], str)
        }
        assert set(configs[env].cluster.admin_role_arns) <= principals
    assert "## First deploy into fresh accounts" in readme
    assert "admin_role_arns" in readme.split("## First deploy into fresh accounts")[1]

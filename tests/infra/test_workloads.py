"""What the cluster runs, as deployed: real tokens in, sizes under the limits, charts in order."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import resources_of

# CloudFormation's template body limit (via S3), and a margin under the 256 KiB Lambda payload
# the kubectl provider receives a manifest in.
TEMPLATE_LIMIT = 1_000_000
MANIFEST_LIMIT = 200_000
ENVS = ["dev", "prod"]


def manifests(stack_templates, env) -> dict[str, dict]:
    return {
        logical_id: resource
        for logical_id, resource in resources_of(
            stack_templates[f"erp-{env}-workloads"], "Custom::AWSCDK-EKS-KubernetesResource"
        ).items()
    }


def test_every_template_is_under_cloudformations_limit(stack_templates):
    sizes = {name: len(json.dumps(t, separators=(",", ":"))) for name, t in stack_templates.items()}
    assert max(sizes.values()) < TEMPLATE_LIMIT, sizes


@pytest.mark.parametrize("env", ENVS)
def test_every_manifest_is_under_the_kubectl_payload_limit(stack_templates, env):
    for logical_id, resource in manifests(stack_templates, env).items():
        size = len(json.dumps(resource["Properties"]["Manifest"], separators=(",", ":")))
        assert size < MANIFEST_LIMIT, f"{logical_id}: {size} bytes"


@pytest.mark.parametrize("env", ENVS)
def test_charts_are_applied_in_order(stack_templates, env):
    resources = manifests(stack_templates, env)
    order = ["namespace", "secrets", "kafka", "services", "logging", "tracing"]
    ids = {name: next(k for k in resources if k.startswith(name)) for name in order}
    access = [k for k in stack_templates[f"erp-{env}-workloads"]["Resources"] if k.startswith("Access")]
    for before, after in zip(order, order[1:], strict=False):
        depends = resources[ids[after]].get("DependsOn", [])
        assert ids[before] in depends, f"{after} must wait for {before}"
    for name in order:
        # Pod Identity associations (Fluent Bit, X-Ray daemon) and the pods' SG rules come before any pod.
        depends = resources[ids[name]].get("DependsOn", [])
        assert sorted(set(depends) - set(ids.values())) == sorted(access), name
    assert any("FluentBitIdentityAssociation" in a for a in access)
    assert any("XRayDaemonIdentityAssociation" in a for a in access)


@pytest.mark.parametrize("env", ENVS)
def test_target_group_bindings_get_the_api_stacks_real_arns(stack_templates, configs, env):
    resources = manifests(stack_templates, env)
    services = next(r for k, r in resources.items() if k.startswith("services"))
    parts = services["Properties"]["Manifest"]["Fn::Join"][1]
    for service in configs[env].services:
        marker = f'"serviceRef":{{"name":"{service.name}","port":{service.port}}},"targetGroupARN":"'
        index = next(i for i, p in enumerate(parts) if isinstance(p, str) and p.endswith(marker))
        reference = parts[index + 1]
        assert isinstance(reference, dict), "the ARN must be a CloudFormation reference, never a typed string"
        assert f"erp-{env}-api" in json.dumps(reference)
    # No hand-typed account id or ARN anywhere in the manifests.
    literal = "".join(p for p in parts if isinstance(p, str))
    assert "arn:aws:elasticloadbalancing" not in literal
    assert configs[env].account not in literal


@pytest.mark.parametrize("env", ENVS)
def test_fluent_bit_writes_where_the_alarms_read(stack_templates, configs, env):
    name = configs[env].application_log_group
    logging = next(r for k, r in manifests(stack_templates, env).items() if k.startswith("logging"))
    manifest = logging["Properties"]["Manifest"]
    text = manifest if isinstance(manifest, str) else "".join(p for p in manifest["Fn::Join"][1] if isinstance(p, str))
    assert re.search(rf"log_group_name\s+{re.escape(name)}(\\n|\s)", text), "Fluent Bit must write to " + name
    groups = resources_of(stack_templates[f"erp-{env}-observability"], "AWS::Logs::LogGroup").values()
    assert name in {g["Properties"].get("LogGroupName") for g in groups}


@pytest.mark.parametrize("env", ENVS)
def test_pods_reach_database_and_cache_through_the_cluster_security_group(stack_templates, env):
    rules = resources_of(stack_templates[f"erp-{env}-workloads"], "AWS::EC2::SecurityGroupIngress").values()
    ports = sorted(r["Properties"]["FromPort"] for r in rules)
    assert ports == [3306, 6379]
    for rule in rules:
        assert f"erp-{env}-cluster" in json.dumps(rule["Properties"]["SourceSecurityGroupId"])
        assert f"erp-{env}-data" in json.dumps(rule["Properties"]["GroupId"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_employee_proxy_is_the_one_caller_of_the_function_url(stack_templates, env):
    """The in-cluster employee-service proxy's Pod Identity role may invoke the employee Lambda through its
    IAM-only function URL and do nothing else; the manifest gets the URL's host from the Api stack."""
    workloads = stack_templates[f"erp-{env}-workloads"]
    (association,) = [
        a["Properties"]
        for a in resources_of(workloads, "AWS::EKS::PodIdentityAssociation").values()
        if a["Properties"]["ServiceAccount"] == "employee-service"
    ]
    assert association["Namespace"] == f"erp-{env}"
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources_of(workloads, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert sorted(s["Action"] for s in statements) == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    for statement in statements:
        assert f"erp-{env}-api" in json.dumps(statement["Resource"]) and "EmployeeService" in json.dumps(
            statement["Resource"]
        )
        assert statement["Condition"]  # only through the function URL (IAM auth type)
    assert "ManagedPolicyArns" not in workloads["Resources"][role_id]["Properties"]
    assert f"erp-{env}-employee-function-url-host" in json.dumps(workloads)

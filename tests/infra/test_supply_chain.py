"""Supply chain (issue 12 item 6): every image the cluster runs comes from the stage's ECR, third-party ones
through pull-through cache rules, digest-pinned where a multi-arch digest is known, and all are scan-gated."""

from __future__ import annotations

import json
import re

import pytest

from k8s_charts.images import KAFKA, THIRD_PARTY, XRAY_DAEMON, image_uri, registry_host
from tests.conftest import resources_of

ENVS = ["dev", "prod"]
_IMAGE = re.compile(r'\\"image\\":\\"(?P<image>[^\\"]*)\\"')


PSEUDO = {"AWS::Region": "ap-northeast-2", "AWS::URLSuffix": "amazonaws.com"}


def manifest_images(template: dict, account: str) -> list[str]:
    """Image strings of every manifest, with the registry host's pseudo-parameters filled in as deployed."""

    def flat(value) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and set(value) == {"Fn::Join"}:
            return "".join(flat(p) for p in value["Fn::Join"][1])
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return account if value["Ref"] == "AWS::AccountId" else PSEUDO.get(value["Ref"], "<ref>")
        return "<token>"

    texts = [
        json.dumps(flat(r["Properties"]["Manifest"]))
        for r in template["Resources"].values()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource"
    ]
    return [m["image"] for text in texts for m in _IMAGE.finditer(text)]


@pytest.mark.parametrize("env", ENVS)
def test_no_container_image_comes_from_a_public_registry(stack_templates, configs, env):
    images = manifest_images(stack_templates[f"erp-{env}-workloads"], configs[env].account)
    assert len(images) >= 4
    host = registry_host(configs[env])
    for image in images:
        # The registry host is CloudFormation's AccountId/Region/URLSuffix (no typed account id).
        assert image.startswith(f"{host}/"), image
    text = json.dumps(stack_templates[f"erp-{env}-workloads"])
    for public in ("docker.io/", "public.ecr.aws/", '\\"image\\":\\"apache/'):
        assert public not in text


@pytest.mark.parametrize("env", ENVS)
def test_digest_pinned_images_are_used_by_digest(stack_templates, configs, env):
    text = json.dumps(stack_templates[f"erp-{env}-workloads"])
    for image in (KAFKA, XRAY_DAEMON):
        assert image.digest and f"{image.repository()}@{image.digest}" in text
        assert image_uri(image, configs[env]).endswith(f"@{image.digest}")


def test_every_third_party_image_is_digest_pinned_or_says_why_not():
    for name, image in THIRD_PARTY.items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image.digest or "") or "no digest found" in image.source, name
        assert image.tag and image.tag != "latest"


@pytest.mark.parametrize("env", ENVS)
def test_pull_through_cache_rules_and_registry_scanning(stack_templates, configs, env):
    registry = stack_templates[f"erp-{env}-registry"]
    rules = {
        r["Properties"]["EcrRepositoryPrefix"]: r["Properties"]
        for r in resources_of(registry, "AWS::ECR::PullThroughCacheRule").values()
    }
    assert rules["ecr-public"]["UpstreamRegistryUrl"] == "public.ecr.aws"
    assert rules["docker-hub"]["UpstreamRegistryUrl"] == "registry-1.docker.io"
    assert rules["docker-hub"]["CredentialArn"] == configs[env].registry.docker_hub_credential_arn
    assert ":secret:ecr-pullthroughcache/" in rules["docker-hub"]["CredentialArn"]
    (scanning,) = resources_of(registry, "AWS::ECR::RegistryScanningConfiguration").values()
    assert scanning["Properties"]["Rules"] == [
        {"ScanFrequency": "SCAN_ON_PUSH", "RepositoryFilters": [{"Filter": "*", "FilterType": "WILDCARD"}]}
    ]


@pytest.mark.parametrize("env", ENVS)
def test_nodes_may_import_into_the_cached_repositories(stack_templates, env):
    text = json.dumps(stack_templates[f"erp-{env}-cluster"])
    assert "ecr:BatchImportUpstreamImage" in text
    assert "repository/ecr-public/*" in text and "repository/docker-hub/*" in text


@pytest.mark.parametrize("env", ENVS)
def test_load_balancer_controller_image_comes_through_the_cache(stack_templates, configs, env):
    text = json.dumps(stack_templates[f"erp-{env}-cluster"])
    assert f"{registry_host(configs[env])}/ecr-public/eks/aws-load-balancer-controller" in text


def test_prod_scan_gate_checks_every_third_party_image(stack_templates, configs):
    pipeline = stack_templates["erp-pipeline"]
    specs = [
        json.loads(p["Properties"]["Source"]["BuildSpec"])
        for p in resources_of(pipeline, "AWS::CodeBuild::Project").values()
        if "tools.scan_gate" in p["Properties"]["Source"].get("BuildSpec", "")
    ]
    (spec,) = specs
    command = spec["phases"]["build"]["commands"][-1].split()
    for image in THIRD_PARTY.values():
        assert image_uri(image, configs["prod"]) in command


@pytest.mark.parametrize("env", ENVS)
def test_reloader_is_pinned_and_pulled_through_the_cache_after_the_nodes(stack_templates, configs, env):
    cluster = stack_templates[f"erp-{env}-cluster"]
    charts = [
        (k, r)
        for k, r in cluster["Resources"].items()
        if r["Type"] == "Custom::AWSCDK-EKS-HelmChart" and r["Properties"].get("Chart") == "reloader"
    ]
    ((logical_id, chart),) = charts
    props = chart["Properties"]
    assert props["Version"] == configs[env].cluster.helm.reloader
    assert props["Repository"] == "https://stakater.github.io/stakater-charts"
    values = json.loads(props["Values"]) if isinstance(props["Values"], str) else props["Values"]
    text = json.dumps(values)
    assert f"{registry_host(configs[env])}/docker-hub/stakater/reloader" in text
    # Watches only the workloads' namespace (a Role there), not every Secret of the cluster.
    assert values["reloader"]["watchGlobally"] is False and values["reloader"]["namespaces"] == [configs[env].namespace]
    nodegroups = {k for k, r in cluster["Resources"].items() if r["Type"] == "AWS::EKS::Nodegroup"}
    assert nodegroups and nodegroups <= set(chart.get("DependsOn", []))

"""Supply chain (issue 12 item 6): every image the cluster runs comes from the stage's ECR, third-party ones
through pull-through cache rules, digest-pinned where a multi-arch digest is known, and all are scan-gated."""

from __future__ import annotations

import json
import re

import pytest

from k8s_charts.images import (
    ADOT_COLLECTOR,
    CACHE_PREFIXES,
    EXTERNAL_SECRETS,
    KAFKA,
    LOAD_BALANCER_CONTROLLER,
    RELOADER,
    THIRD_PARTY,
    image_uri,
    node_platforms,
    registry_host,
)
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
    for image in (KAFKA, ADOT_COLLECTOR):
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
    # External Secrets' image is on GHCR only: its own rule, with a GitHub token (issue 18 item 18).
    assert rules["ghcr"]["UpstreamRegistry"] == "github-container-registry"
    assert rules["ghcr"]["UpstreamRegistryUrl"] == "ghcr.io"
    assert rules["ghcr"]["CredentialArn"] == configs[env].registry.github_credential_arn
    assert set(rules) == set(CACHE_PREFIXES)
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


@pytest.mark.parametrize("env", ENVS)
def test_repositories_the_cache_creates_have_immutable_tags(stack_templates, env):
    """Issue 18 item 18: a cached repository got ECR's defaults (mutable tags): a tag could come to mean another
    image than the one scanned and gated. A creation template per cache prefix makes them immutable, and
    exists before the rule can create a repository."""
    registry = stack_templates[f"erp-{env}-registry"]
    templates = {
        r["Properties"]["Prefix"]: (logical_id, r["Properties"])
        for logical_id, r in resources_of(registry, "AWS::ECR::RepositoryCreationTemplate").items()
    }
    assert set(templates) == set(CACHE_PREFIXES)
    for prefix, (logical_id, props) in templates.items():
        assert props["AppliedFor"] == ["PULL_THROUGH_CACHE"]
        assert props["ImageTagMutability"] == "IMMUTABLE"
        assert props["EncryptionConfiguration"] == {"EncryptionType": "AES256"}
        (rule,) = [
            r for r in resources_of(registry, "AWS::ECR::PullThroughCacheRule").values()
            if r["Properties"]["EcrRepositoryPrefix"] == prefix
        ]  # fmt: skip
        assert logical_id in rule.get("DependsOn", [])


@pytest.mark.parametrize("env", ENVS)
def test_the_controllers_run_pinned_gated_images_through_the_cache(stack_templates, configs, env):
    """Issue 18 item 18: the Load Balancer Controller ran its chart's appVersion tag and External Secrets came from
    ghcr.io directly; neither was in the scan gate's list. Each controller's images are now pinned in its Helm
    values to an entry of k8s_charts/images.THIRD_PARTY (which the gate checks), through the stage registry."""
    cluster = stack_templates[f"erp-{env}-cluster"]
    host = registry_host(configs[env])

    def values(chart: str) -> dict:
        (resource,) = [
            r["Properties"]["Values"] for r in cluster["Resources"].values()
            if r["Type"] == "Custom::AWSCDK-EKS-HelmChart" and r["Properties"]["Chart"] == chart
        ]  # fmt: skip
        text = (
            resource
            if isinstance(resource, str)
            else "".join(p if isinstance(p, str) else "<token>" for p in resource["Fn::Join"][1])
        )
        return json.loads(text)

    expected = {
        "aws-load-balancer-controller": (LOAD_BALANCER_CONTROLLER, [("image",)]),
        "external-secrets": (EXTERNAL_SECRETS, [("image",), ("webhook", "image"), ("certController", "image")]),
        "reloader": (RELOADER, [("image",)]),
    }
    for chart, (image, paths) in expected.items():
        assert image in THIRD_PARTY.values()
        chart_values = values(chart)
        for path in paths:
            node = chart_values
            for key in path:
                node = node[key]
            assert node["repository"] == f"{host}/{image.repository()}", (chart, path)
            assert node["tag"] == image.tag, (chart, path)


@pytest.mark.parametrize("env", ENVS)
def test_every_image_a_pod_runs_is_a_service_image_or_a_gated_third_party_one(stack_templates, configs, env):
    config = configs[env]
    known = {image_uri(image, config) for image in THIRD_PARTY.values()}
    services = {f"{registry_host(config)}/{s.image.repository}" for s in config.services}
    for image in manifest_images(stack_templates[f"erp-{env}-workloads"], config.account):
        assert image in known or image.rsplit(":", 1)[0].split("@")[0] in services, image


@pytest.mark.parametrize("env", ENVS)
def test_the_registry_stack_warms_the_cache_by_tag_before_the_cluster_pulls(
    stack_templates, stack_artifacts, configs, env
):
    """Issue 18 item 5: a first pull by digest does not fill the cache (aws/containers-roadmap#2837), so digest-pinned
    Kafka and the X-Ray daemon sat in ImagePullBackOff in a fresh account. The Registry stack's deploy pulls every
    third-party image by tag (a Trigger; its handler is tested in tests/handlers/test_cache_warmer.py), after the
    cache rules exist, and the Cluster and Workloads stacks deploy after it."""
    config = configs[env]
    registry = stack_templates[f"erp-{env}-registry"]
    (function_id, function) = next(
        (k, r) for k, r in resources_of(registry, "AWS::Lambda::Function").items()
        if "IMAGES" in r["Properties"].get("Environment", {}).get("Variables", {})
    )  # fmt: skip
    variables = function["Properties"]["Environment"]["Variables"]
    warmed = json.loads(variables["IMAGES"])
    assert [(i["repository"], i["tag"], i["digest"]) for i in warmed] == [
        (image.repository(), image.tag, image.digest) for image in THIRD_PARTY.values()
    ]
    assert json.loads(variables["PLATFORMS"]) == node_platforms(config)
    assert variables["REGISTRY"] == registry_host(config)
    (trigger,) = resources_of(registry, "Custom::Trigger").values()
    version = registry["Resources"][trigger["Properties"]["HandlerArn"]["Ref"]]
    assert version["Type"] == "AWS::Lambda::Version" and version["Properties"]["FunctionName"] == {"Ref": function_id}
    rules_and_templates = [
        k for k, r in registry["Resources"].items()
        if r["Type"] in ("AWS::ECR::PullThroughCacheRule", "AWS::ECR::RepositoryCreationTemplate", "AWS::ECR::RegistryScanningConfiguration")
    ]  # fmt: skip
    assert set(rules_and_templates) <= set(trigger.get("DependsOn", []))
    # Its role pulls through the cache prefixes only.
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s for policy in resources_of(registry, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]  # fmt: skip
    pull = next(s for s in statements if "ecr:BatchImportUpstreamImage" in s["Action"])
    resources = [json.dumps(r) for r in pull["Resource"]]
    assert len(resources) == len(CACHE_PREFIXES)
    assert all(any(f"repository/{prefix}/*" in r for r in resources) for prefix in CACHE_PREFIXES)
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert {a for s in wildcard for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} <= {
        "ecr:GetAuthorizationToken", "xray:PutTraceSegments", "xray:PutTelemetryRecords"
    }  # fmt: skip
    for later in ("cluster", "workloads"):
        directory, props = stack_artifacts[f"erp-{env}-{later}"]
        manifest = json.loads((directory / "manifest.json").read_text())
        deps = next(
            a.get("dependencies", []) for a in manifest["artifacts"].values()
            if a.get("properties", {}).get("stackName") == f"erp-{env}-{later}"
        )  # fmt: skip
        registry_id = next(
            k for k, a in manifest["artifacts"].items()
            if a.get("properties", {}).get("stackName") == f"erp-{env}-registry"
        )  # fmt: skip
        assert registry_id in deps, later

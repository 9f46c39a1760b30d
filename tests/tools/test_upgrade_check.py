"""The offline rehearsal of the next Kubernetes minor (tools/upgrade_check.py) on tiny hand-made cloud assemblies
and the fixture table: every blocker it must raise, and the lines it must not turn into blockers."""

from __future__ import annotations

import copy
import json
import re
from datetime import date, timedelta
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from config import load_environment
from config.base import SUPPORTED_KUBERNETES
from config.sections import HelmVersions
from tools import upgrade_check as uc

FIXTURES = Path(__file__).parent / "fixtures" / "upgrade_check"
TABLE_FILE = FIXTURES / "kubernetes-versions.yaml"
HELM = HelmVersions(aws_load_balancer_controller="3.5.0", external_secrets="2.9.0", reloader="2.2.16")
ADDONS = ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
REQUIREMENTS = (uc.ROOT / "requirements.txt").read_text()


def table() -> dict:
    return yaml.safe_load(TABLE_FILE.read_text())


def kres(manifest) -> dict:
    return {"Type": uc.KUBERNETES_RESOURCE, "Properties": {"ServiceToken": "x", "Manifest": manifest}}


def addon(name: str) -> dict:
    return {"Type": uc.ADDON, "Properties": {"AddonName": name, "ClusterName": {"Ref": "Cluster"}}}


def write_assembly(root: Path, stacks: dict[str, dict[str, dict]]) -> Path:
    """cdk.out as the pipeline lays it out: manifest.json -> assembly-ErpPipeline-<Stage>/manifest.json ->
    one template per stack."""
    root.mkdir(parents=True, exist_ok=True)
    top = {}
    for stage in sorted({name.split("-")[1] for name in stacks}):
        folder = root / f"assembly-ErpPipeline-{stage.title()}"
        folder.mkdir()
        artifacts = {}
        for name, resources in stacks.items():
            if name.split("-")[1] != stage:
                continue
            artifact_id = name.replace("-", "")
            (folder / f"{artifact_id}.template.json").write_text(json.dumps({"Resources": resources}))
            artifacts[artifact_id] = {
                "type": "aws:cloudformation:stack",
                "environment": "aws://111111111111/ap-northeast-2",
                "properties": {"templateFile": f"{artifact_id}.template.json", "stackName": name},
            }
        (folder / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
        top[folder.name] = {"type": "cdk:cloud-assembly", "properties": {"directoryName": folder.name}}
    (root / "manifest.json").write_text(json.dumps({"artifacts": top}))
    return root


STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "gp3-encrypted"},
    "provisioner": "ebs.csi.aws.com",
    "parameters": {"type": "gp3", "encrypted": "true"},
}
# What CDK writes for a manifest holding tokens: the JSON cut around them (here a GetAtt inside a string).
POLICY_JOIN = {
    "Fn::Join": [
        "",
        [
            '[{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"allow-api",'
            '"namespace":"erp"},"spec":{"podSelector":{},"egress":[{"to":[{"ipBlock":{"cidr":"',
            {"Fn::GetAtt": ["ApiServerServiceIp", "Value"]},
            '/32"}},{"ipBlock":{"cidr":"',
            {"Fn::GetStackOutput": {"StackName": "erp-dev-network", "OutputName": "VpcCidr"}},
            '"}}]}],"policyTypes":["Egress"]}},'
            '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"api","namespace":"erp"}}]',
        ],
    ]
}


def deployment(**container_extra) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "employee", "namespace": "erp"},
        "spec": {
            "selector": {"matchLabels": {"app": "employee"}},
            "template": {
                "metadata": {"labels": {"app": "employee"}},
                "spec": {"containers": [{"name": "app", "image": "employee:1", **container_extra}]},
            },
        },
    }


@pytest.fixture
def assembly(tmp_path: Path) -> Path:
    return write_assembly(
        tmp_path / "cdk.out",
        {
            "erp-dev-cluster": {
                "Cluster": {"Type": "AWS::EKS::Cluster", "Properties": {"Version": "1.36"}},
                "StorageClass": kres(json.dumps([STORAGE_CLASS])),
                **{name: addon(name) for name in ADDONS},
            },
            "erp-dev-workloads": {
                "Policies": kres(POLICY_JOIN),
                "Secret": kres(
                    json.dumps(
                        [
                            {
                                "apiVersion": "external-secrets.io/v1",
                                "kind": "ExternalSecret",
                                "metadata": {"name": "db", "namespace": "erp"},
                                "spec": {"anything": True},
                            }
                        ]
                    )
                ),
            },
            "erp-prod-cluster": {"Other": kres(json.dumps([deployment(bogus=1)])), "Obs": addon("only-in-prod")},
        },
    )


def blockers(findings: list[uc.Finding]) -> list[str]:
    return [f.text for f in findings if f.kind == "blocker"]


# ------------------------------------------------------------------------------------------------ the step


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("1.36", "1.37", []),
        ("1.36", "1.38", ["1.38 is two minors past 1.36: EKS upgrades one minor at a time (1.37 first)"]),
        ("1.36", "1.35", ["1.35 is older than 1.36: EKS never downgrades a control plane"]),
        ("1.36", "1.36", ["1.36 is the current minor: nothing to upgrade (the next one is 1.37)"]),
        ("1.36", "2.0", ["2.0 is not the next minor after 1.36: EKS upgrades one minor at a time"]),
    ],
)
def test_step_is_exactly_one_minor_up(current, target, expected):
    assert blockers(uc.check_step(current, target)) == expected


# -------------------------------------------------------------------------------------------- the assembly


def test_manifests_of_reads_strings_and_joins_of_the_env_stacks_only(assembly):
    manifests = uc.manifests_of(assembly, "erp-dev")
    assert [(m.stack, m.kind) for m in manifests] == [
        ("erp-dev-cluster", "StorageClass"),
        ("erp-dev-workloads", "NetworkPolicy"),
        ("erp-dev-workloads", "ServiceAccount"),
        ("erp-dev-workloads", "ExternalSecret"),
    ]
    policy = manifests[1].obj
    assert [rule["ipBlock"]["cidr"] for rule in policy["spec"]["egress"][0]["to"]] == ["TOKEN/32", "TOKEN"]
    assert uc.addons_of(assembly, "erp-dev") == ADDONS
    assert uc.addons_of(assembly, "erp-prod") == ["only-in-prod"]
    assert uc.cluster_versions_of(assembly, "erp-dev") == ["1.36"]


def test_a_token_standing_for_a_whole_number_is_typed_not_reported(tmp_path):
    join = {"Fn::Join": ["", [json.dumps(deployment())[:-2] + ', "replicas": ', {"Ref": "Replicas"}, "}}"]]}
    out = write_assembly(tmp_path / "cdk.out", {"erp-dev-workloads": {"App": kres(join)}})
    [manifest] = uc.manifests_of(out, "erp-dev")
    assert manifest.obj["spec"]["replicas"] == "TOKEN"
    assert blockers(uc.schema_findings([manifest], "1.36", "1.37")) == []


def test_an_unreadable_manifest_is_a_blocker_not_a_silent_pass(tmp_path):
    out = write_assembly(
        tmp_path / "cdk.out", {"erp-dev-workloads": {"A": kres("[{not json"), "B": kres({"Fn::Sub": "x"})}}
    )
    found = blockers(uc.schema_findings(uc.manifests_of(out, "erp-dev"), "1.36", "1.37"))
    assert len(found) == 2
    assert all(line.startswith("not checked: manifest of ") for line in found)


# --------------------------------------------------------------------------------------------- the schemas


def test_the_synthesized_manifests_pass_and_custom_resources_are_counted(assembly):
    findings = uc.schema_findings(uc.manifests_of(assembly, "erp-dev"), "1.36", "1.37")
    assert blockers(findings) == []
    notes = [f.text for f in findings if f.kind == "note"]
    assert "3 of 4 manifest objects validated against 1.37 (strict)" in notes
    assert any(
        n.startswith("1 custom resources skipped") and "ExternalSecret (external-secrets.io/v1) x1" in n for n in notes
    )


# storage.k8s.io/v1beta1 VolumeAttributesClass (and networking.k8s.io/v1beta1 IPAddress, ServiceCIDR) are in
# kubernetes-validate 1.37.0's 1.36 strict schemas and not in its 1.37 ones: a real removal between bundled minors.
VOLUME_ATTRIBUTES_CLASS = {
    "apiVersion": "storage.k8s.io/v1beta1",
    "kind": "VolumeAttributesClass",
    "metadata": {"name": "gp3-fast"},
    "driverName": "ebs.csi.aws.com",
    "parameters": {"iops": "6000"},
}


def test_an_api_the_target_removed_is_a_blocker_naming_the_object():
    m = uc.Manifest("erp-dev-workloads", "Vac", VOLUME_ATTRIBUTES_CLASS)
    assert blockers(uc.schema_findings([m], "1.36", "1.37")) == [
        "removed in 1.37: storage.k8s.io/v1beta1/VolumeAttributesClass gp3-fast (stack erp-dev-workloads)"
    ]
    assert blockers(uc.schema_findings([m], "1.35", "1.36")) == []  # still served by 1.36


def test_an_unknown_field_in_strict_mode_names_its_path():
    m = uc.Manifest("erp-dev-workloads", "App", deployment(bogus=1))
    assert blockers(uc.schema_findings([m], "1.36", "1.37")) == [
        "1.37 strict schema: apps/v1/Deployment erp/employee (stack erp-dev-workloads): "
        "spec.template.spec.containers[0].bogus: unknown field"
    ]


def test_a_wrong_type_names_its_path_too():
    m = uc.Manifest("s", "App", {**deployment(), "spec": {**deployment()["spec"], "replicas": "two"}})
    [line] = blockers(uc.schema_findings([m], "1.36", "1.37"))
    assert line.startswith("1.37 strict schema: apps/v1/Deployment erp/employee (stack s): spec.replicas: ")


def test_a_target_without_bundled_schemas_is_one_blocker_naming_kubernetes_validate():
    minors = uc.bundled_minors()
    assert {"1.34", "1.35", "1.36", "1.37"} <= set(minors)
    beyond = f"1.{uc.parse_minor(minors[-1])[1] + 1}"
    m = uc.Manifest("s", "App", deployment())
    assert blockers(uc.schema_findings([m, m], minors[-1], beyond)) == [
        f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for {beyond} "
        f"(it ships {minors[0]}..{minors[-1]}): pin a release that has them in requirements-dev.txt"
    ]


@pytest.mark.parametrize(
    ("api_version", "custom"),
    [
        ("v1", False),
        ("apps/v1", False),
        ("networking.k8s.io/v1", False),
        ("external-secrets.io/v1", True),
        ("elbv2.k8s.aws/v1beta1", True),
    ],
)
def test_custom_resource_groups(api_version, custom):
    assert uc.is_custom(api_version) is custom


# ----------------------------------------------------------------------------------------------- the table


def test_an_add_on_without_a_version_for_the_target_is_a_blocker():
    assert blockers(uc.table_findings(table(), ADDONS, HELM, "1.37")) == [
        "add-on aws-ebs-csi-driver has no recorded version for 1.37 "
        "(config/kubernetes-versions.yaml; source: fixture: no build for 1.37 listed yet)"
    ]
    missing = blockers(uc.table_findings(table(), ["snapshot-controller"], HELM, "1.36"))
    assert missing == ["add-on snapshot-controller has no recorded version for 1.36 (config/kubernetes-versions.yaml)"]
    assert blockers(uc.table_findings(table(), ADDONS, HELM, "1.36")) == []
    t = table()
    t["minors"]["1.37"]["addons"]["coredns"] = {"version": None, "why": "1.37 not on EKS per the sources above"}
    assert "add-on coredns has no recorded version for 1.37 (config/kubernetes-versions.yaml; why: 1.37 not on EKS" in (
        "\n".join(blockers(uc.table_findings(t, ["coredns"], HELM, "1.37")))
    )


def test_a_chart_whose_kube_version_excludes_the_target_is_a_blocker_and_a_config_change():
    t = table()
    t["charts"]["external-secrets"]["kube_version"] = ">= 1.19.0-0 < 1.37.0-0"
    assert blockers(uc.table_findings(t, [], HELM, "1.37")) == [
        "chart external-secrets 2.9.0 does not admit 1.37.0 (kubeVersion '>= 1.19.0-0 < 1.37.0-0'; source: fixture)"
    ]
    assert [f.text for f in uc.config_changes("config/dev.yaml", "1.36", "1.37", HELM, t)] == [
        "config/dev.yaml: cluster.kubernetes_version: 1.36 -> 1.37",
        "config/dev.yaml: cluster.helm.external_secrets: 2.9.0 -> a external-secrets release whose kubeVersion "
        "admits 1.37",
    ]
    assert [f.kind for f in uc.config_changes("config/dev.yaml", "1.36", "1.37", HELM, t)] == ["change", "change"]


def test_a_chart_recorded_at_another_version_than_config_is_a_blocker():
    helm = HelmVersions(aws_load_balancer_controller="3.5.0", external_secrets="2.9.0", reloader="2.2.17")
    assert blockers(uc.table_findings(table(), [], helm, "1.37")) == [
        "chart reloader: config has 2.2.17, config/kubernetes-versions.yaml recorded 2.2.16: "
        "record kubeVersion of chart reloader version 2.2.17"
    ]


def test_a_minor_eks_has_not_released_or_the_table_lacks_is_a_blocker():
    assert blockers(uc.release_findings(table(), "1.38")) == [
        "EKS has not released 1.38 (as of the table's read_on 2026-12-04)"
    ]
    assert blockers(uc.release_findings(table(), "1.39")) == [
        "1.39 is not in config/kubernetes-versions.yaml: record its EKS dates, add-on versions and kubectl layer"
    ]
    assert uc.release_findings(table(), "1.37") == []


def test_a_table_with_unquoted_minors_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("read_on: 2026-12-04\nminors:\n  1.30: {}\ncharts: {}\n")
    _, problems = uc.load_table(path)
    assert [f.kind for f in problems] == ["blocker"]
    assert "minors must be quoted strings" in problems[0].text


# --------------------------------------------------------------------------------------- the kubectl layer


def test_a_kubectl_layer_missing_from_requirements_is_a_blocker_naming_the_pip_line(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("aws-cdk-lib==2.275.0\naws-cdk.lambda-layer-kubectl-v36==2.0.1\n")
    assert blockers(uc.layer_findings(table(), "1.37", requirements, lambda _: False)) == [
        f"add aws-cdk.lambda-layer-kubectl-v37==2.0.0 to {requirements} (the kubectl layer for 1.37), then make setup"
    ]
    requirements.write_text("aws-cdk.lambda-layer-kubectl-v37==2.0.0  # kubectl 1.37\n")
    assert blockers(uc.layer_findings(table(), "1.37", requirements, lambda _: False)) == [
        f"aws-cdk.lambda-layer-kubectl-v37 is pinned in {requirements} but aws_cdk.lambda_layer_kubectl_v37 is "
        "not installed: make setup"
    ]
    assert blockers(uc.layer_findings(table(), "1.37", requirements, lambda m: True)) == []
    assert blockers(uc.layer_findings(table(), "1.38", requirements, lambda m: True)) == [
        "no kubectl layer recorded for 1.38 (kubectl_layer.package in the table)"
    ]


def test_importable_finds_an_installed_layer_without_importing_aws_cdk():
    installed = f"aws_cdk.lambda_layer_kubectl_{SUPPORTED_KUBERNETES[max(SUPPORTED_KUBERNETES, key=uc.parse_minor)]}"
    assert uc.importable(installed)
    assert not uc.importable("aws_cdk.lambda_layer_kubectl_v99")
    assert not uc.importable("no_such_package_here")


# ---------------------------------------------------------------------------------------------- the calendar


def test_standard_support_ending_within_90_days_is_a_warning_only():
    end = date(2027, 8, 10)  # 1.36's end of standard support in the fixture
    lines, findings = uc.support_lines(table(), {"dev": "1.36", "prod": "1.35"}, end - timedelta(days=60))
    warned = [f.text for f in findings if f.kind == "warning"]
    assert any(w.startswith("dev: standard support of 1.36 ends 2027-08-10 (in 60 days)") for w in warned)
    assert all(f.kind == "warning" for f in findings)
    assert "dev: 1.36, standard support until 2027-08-10 (60 days left as of 2027-06-11)" in lines
    assert re.search(r"^1\.36\s+2026-06-10\s+2027-08-10\s+2028-08-10\s+dev$", "\n".join(lines), re.M)

    _, findings = uc.support_lines(table(), {"dev": "1.36"}, end - timedelta(days=120))
    assert not [f for f in findings if "dev:" in f.text]


def test_an_old_table_is_a_warning_to_refresh_it():
    _, findings = uc.support_lines(table(), {}, date(2026, 12, 4) + timedelta(days=91))
    assert [f.text for f in findings] == [
        "kubernetes-versions.yaml was read on 2026-12-04, 91 days ago: refresh it (README: Kubernetes upgrades)"
    ]
    _, findings = uc.support_lines(table(), {}, date(2026, 12, 4) + timedelta(days=90))
    assert findings == []


# -------------------------------------------------------------------------------------- Helm's version ranges


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [
        (None, "1.37.0", True),
        ("", "1.37.0", True),
        (">= 1.22.0-0", "1.37.0", True),  # aws-load-balancer-controller
        (">= 1.22.0-0", "1.21.9", False),
        (">=1.19.0-0", "1.37.0", True),  # external-secrets, kube-prometheus-stack
        (">=1.19.0-0 <1.38", "1.37.0", True),
        (">=1.19.0-0 <1.38", "1.38.0", False),
        (">= 1.19.0-0 < 1.37.0-0", "1.37.0", False),
        (">=1.20, <1.37", "1.37.0", False),  # comma = AND
        ("<1.20.0 || >=1.30.0-0", "1.37.0", True),
        ("<1.20.0 || >=1.38.0-0", "1.37.0", False),
        ("~1.36.0", "1.36.4", True),
        ("~1.36.0", "1.37.0", False),
        ("^1.20", "1.37.0", True),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("1.19 - 1.36", "1.36.9", True),
        ("1.19 - 1.36", "1.37.0", False),
        ("1.37.x", "1.37.0", True),
        ("!=1.37.0", "1.37.0", False),
        ("!= 1.36.x", "1.37.0", True),
        (">1.36", "1.36.5", False),
        (">1.36", "1.37.0", True),
        (">1", "1.37.0", False),
        ("<=1.36", "1.36.9", True),
        ("<=1.36", "1.37.0", False),
        # EKS reports v1.37.2-eks-...: a prerelease to semver, admitted only by a range naming one (the -0).
        (">=1.22.0", "1.37.2-eks-113cf36", False),
        (">=1.22.0-0", "1.37.2-eks-113cf36", True),
    ],
)
def test_helm_kube_version_ranges(constraint, version, expected):
    assert uc.admits(constraint, version) is expected


@pytest.mark.parametrize("constraint", [">= banana", "1.2.3 ||", ">=1.20 &&  <1.30"])
def test_a_range_helm_would_refuse_is_an_error(constraint):
    with pytest.raises(ValueError, match="improper constraint"):
        uc.admits(constraint, "1.37.0")


# ---------------------------------------------------------------------------------------------- the command


def _set_version(config_dir: Path, env: str, minor: str) -> None:
    path = config_dir / f"{env}.yaml"
    path.write_text(re.sub(r'(?m)^(\s*kubernetes_version:\s*)"[^"]*"', rf'\g<1>"{minor}"', path.read_text()))


def test_the_command_prints_one_line_per_blocker(config_dir, tmp_path, capsys):
    current = yaml.safe_load((config_dir / "dev.yaml").read_text())["cluster"]["kubernetes_version"]
    major, minor = uc.parse_minor(current)
    rc = uc.main(
        ["--to", f"{major}.{minor + 2}", "--config-dir", str(config_dir), "--env", "dev", "--versions", str(TABLE_FILE)]
        + ["--cdk-out", str(tmp_path / "none"), "--today", "2026-12-04"]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert [line for line in out.splitlines() if line.startswith("blocker: ")] == [
        f"blocker: dev: {major}.{minor + 2} is two minors past {current}: EKS upgrades one minor at a time "
        f"({major}.{minor + 1} first)"
    ]


def test_warnings_never_change_the_exit_status(config_dir, tmp_path, capsys):
    """A clean step between two minors config allows (so their kubectl layers are pinned and installed),
    rehearsed on a date 60 days before the current minor leaves standard support: warnings, exit 0."""
    allowed = sorted(SUPPORTED_KUBERNETES, key=uc.parse_minor)
    pairs = [(a, b) for a, b in zip(allowed, allowed[1:], strict=False) if uc.check_step(a, b) == []]
    assert pairs, f"SUPPORTED_KUBERNETES holds no two consecutive minors: {allowed}"
    current, target = pairs[-1]
    _set_version(config_dir, "dev", current)
    fixture = table()
    end = date(2027, 3, 27)
    t = {
        "read_on": "2026-12-04",
        "minors": {
            current: {**fixture["minors"]["1.35"], "end_of_standard_support": end.isoformat()},
            target: {
                **copy.deepcopy(fixture["minors"]["1.36"]),
                "kubectl_layer": {"package": f"aws-cdk.lambda-layer-kubectl-{SUPPORTED_KUBERNETES[target]}"},
            },
        },
        # config's own chart versions, whatever they are today, with ranges that admit the target
        "charts": {
            uc.chart_name(field): {"version": version, "kube_version": ">= 1.19.0-0"}
            for field, version in load_environment("dev", config_dir).cluster.helm.model_dump().items()
        },
    }
    versions = tmp_path / "versions.yaml"
    versions.write_text(yaml.safe_dump(t))
    out_dir = write_assembly(
        tmp_path / "cdk.out",
        {
            "erp-dev-cluster": {
                "Cluster": {"Type": "AWS::EKS::Cluster", "Properties": {"Version": current}},
                "StorageClass": kres(json.dumps([STORAGE_CLASS])),
                **{name: addon(name) for name in ADDONS},
            },
            "erp-dev-workloads": {"Policies": kres(POLICY_JOIN)},
        },
    )
    argv = ["--to", target, "--config-dir", str(config_dir), "--env", "dev", "--versions", str(versions)]
    argv += ["--cdk-out", str(out_dir)]
    for days, warned in ((60, True), (120, False)):
        rc = uc.main([*argv, "--today", (end - timedelta(days=days)).isoformat()])
        out = capsys.readouterr().out
        assert [line for line in out.splitlines() if line.startswith("blocker")] == [], out
        assert rc == 0
        assert (f"warning: dev: standard support of {current} ends {end}" in out) is warned
        assert f"config/dev.yaml: cluster.kubernetes_version: {current} -> {target}" in out or (
            f"dev.yaml: cluster.kubernetes_version: {current} -> {target}" in out
        )

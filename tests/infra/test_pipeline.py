"""Delivery: what a push goes through before it reaches prod, read from the synthesized pipeline stack."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from config import load_environment, load_toolchain
from config.base import CI_TAG_PREFIX
from constructs_lib.api.routes import smoke_paths
from constructs_lib.delivery.github_oidc import DIFF_ENVIRONMENT, DIFF_READ_ACTIONS
from constructs_lib.delivery.workload_inventory import HELM_WORKLOADS, WORKLOAD_KINDS, expected_workloads
from tests.conftest import REPO, resources_of

PIPELINE_STACK = "erp-pipeline"

PIPELINE = "erp-pipeline"


@pytest.fixture(scope="module")
def toolchain():
    return load_toolchain()


@pytest.fixture(scope="module")
def pipeline_json(stack_templates) -> dict:
    return stack_templates[PIPELINE]


@pytest.fixture(scope="module")
def pipeline(pipeline_json) -> dict:
    (resource,) = resources_of(pipeline_json, "AWS::CodePipeline::Pipeline").values()
    return resource["Properties"]


def stage(pipeline: dict, name: str) -> list[dict]:
    return next(s["Actions"] for s in pipeline["Stages"] if s["Name"] == name)


def project(pipeline_json: dict, action: dict) -> dict:
    return pipeline_json["Resources"][action["Configuration"]["ProjectName"]["Ref"]]["Properties"]


def buildspec(pipeline_json: dict, action: dict) -> dict:
    return json.loads(project(pipeline_json, action)["Source"]["BuildSpec"])


def deploy_actions(actions: list[dict]) -> list[dict]:
    return [a for a in actions if a["ActionTypeId"]["Provider"] == "CloudFormation"]


def test_pipeline_is_v2_and_named(pipeline):
    assert pipeline["PipelineType"] == "V2"
    assert pipeline["Name"] == "erp-platform"


def test_stages_in_order(pipeline, toolchain, configs):
    names = [s["Name"] for s in pipeline["Stages"]]
    expected = ["Source", "Build", "UpdatePipeline", *(configs[n].stage_id for n in toolchain.stages)]
    assert [n for n in names if n != "Assets"] == expected
    if "Assets" in names:  # asset publishing sits between self-mutation and the first deploy
        assert names.index("Assets") == names.index("UpdatePipeline") + 1


def test_source_is_the_connection_to_the_configured_branch(pipeline, toolchain):
    (source,) = stage(pipeline, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == toolchain.connection_arn
    assert source["Configuration"]["FullRepositoryId"] == toolchain.repository
    assert source["Configuration"]["BranchName"] == toolchain.branch
    # The trigger starts the pipeline; the action's own change detection would ignore the path filter.
    assert source["Configuration"]["DetectChanges"] is False


def test_trigger_ignores_pushes_that_touch_only_ignored_paths(pipeline, toolchain):
    (source,) = stage(pipeline, "Source")
    (trigger,) = pipeline["Triggers"]
    assert trigger["ProviderType"] == "CodeStarSourceConnection"
    git = trigger["GitConfiguration"]
    assert git["SourceActionName"] == source["Name"]
    (push,) = git["Push"]
    assert push["Branches"] == {"Includes": [toolchain.branch]}
    assert push["FilePaths"] == {"Excludes": list(toolchain.ignored_paths)}
    assert "**/*.md" in push["FilePaths"]["Excludes"]


def build_actions(pipeline: dict, pipeline_json: dict) -> tuple[dict, dict]:
    """(the action that writes the cloud assembly, the action that runs `make test`) of the Build stage."""
    actions = stage(pipeline, "Build")
    (synth,) = [a for a in actions if a.get("OutputArtifacts")]
    (tests,) = [a for a in actions if "make test" in buildspec(pipeline_json, a)["phases"]["build"]["commands"]]
    return synth, tests


def test_synth_installs_and_synthesizes_only(pipeline, pipeline_json):
    """Issue 23 item 3: the suite is no longer the synth's first command; it runs as its own action."""
    synth, tests = build_actions(pipeline, pipeline_json)
    assert synth is not tests
    spec = buildspec(pipeline_json, synth)
    commands = spec["phases"]["build"]["commands"]
    assert commands[-1] == "make synth PLACEHOLDERS=refuse"
    assert not any("make test" in c for c in commands)
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    assert spec["phases"]["install"]["runtime-versions"]["python"] == "3.11"
    assert project(pipeline_json, synth)["Environment"]["Image"] == "aws/codebuild/standard:7.0"


def test_tests_run_beside_the_synth_and_self_mutation_waits_for_both(pipeline, pipeline_json):
    """CodePipeline starts a stage's actions of one run order together and the next stage only when all of them
    succeeded: tests and synth in parallel, and a red test run stops the pipeline before it mutates or deploys."""
    names = [s["Name"] for s in pipeline["Stages"]]
    (source,) = stage(pipeline, "Source")
    synth, tests = build_actions(pipeline, pipeline_json)
    assert tests["RunOrder"] == synth["RunOrder"]
    assert tests["InputArtifacts"] == synth["InputArtifacts"] == source["OutputArtifacts"]
    assert tests["ActionTypeId"]["Category"] == "Test"
    (mutate,) = stage(pipeline, "UpdatePipeline")
    assert mutate["Name"] == "SelfMutate" and mutate["InputArtifacts"] == synth["OutputArtifacts"]
    assert names.index("Build") < names.index("UpdatePipeline")
    deploying = [s["Name"] for s in pipeline["Stages"] if deploy_actions(s["Actions"])]
    assert deploying and all(names.index("UpdatePipeline") < names.index(n) for n in deploying)


def make_rules() -> dict[str, tuple[list[str], str]]:
    """The Makefile's rules: target -> (prerequisites, recipe text)."""
    rules: dict[str, tuple[list[str], str]] = {}
    current = None
    for line in (REPO / "Makefile").read_text().splitlines():
        rule = re.match(r"^([^\s:#=]+)\s*:(?![:=])\s*(.*)$", line)
        if rule and not line.startswith("\t"):
            current = rule.group(1)
            rules[current] = (rule.group(2).split("#")[0].split(), "")
        elif line.startswith("\t") and current is not None:
            prerequisites, recipe = rules[current]
            rules[current] = (prerequisites, recipe + line + "\n")
        elif line and not line.startswith("\t"):
            current = None
    return rules


def make_closure(target: str, rules: dict[str, tuple[list[str], str]]) -> set[str]:
    seen, stack = set(), [target]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(rules.get(name, ([], ""))[0])
    return seen


def test_mariadb_is_installed_by_the_test_action_only(pipeline, pipeline_json, cdk_out):
    """Every CodeBuild project of the pipeline, through the make targets its buildspec runs (Makefile prerequisites
    followed): only the Test action's reaches the rule that installs mariadb-server."""
    rules = make_rules()
    installers = {t for t, (_, recipe) in rules.items() if "apt-get" in recipe and "mariadb-server" in recipe}
    assert installers, "no Makefile rule installs mariadb-server"
    installing = set()
    for logical_id, text in buildspec_texts(pipeline_json, cdk_out).items():
        reached = set().union(set(), *(make_closure(t, rules) for t in re.findall(r"\bmake ([\w-]+)", text)))
        if reached & installers or "mariadb" in text:
            installing.add(logical_id)
    _, tests = build_actions(pipeline, pipeline_json)
    assert installing == {tests["Configuration"]["ProjectName"]["Ref"]}


CACHED = {".venv/**/*", "node_modules/**/*", "/root/.cache/pip/**/*", "/root/.npm/**/*"}


def test_build_actions_share_an_s3_dependency_cache_keyed_on_the_requirements(pipeline, pipeline_json):
    """The venv, node_modules (the pinned CDK CLI) and the pip/npm downloads persist between runs; the key hashes the
    requirements and the lock file, so a change of either writes a new cache instead of reusing a stale venv."""
    caches, specs = [], []
    for action in build_actions(pipeline, pipeline_json):
        props = project(pipeline_json, action)
        caches.append(props["Cache"])
        spec = buildspec(pipeline_json, action)
        specs.append(spec["cache"])
        assert set(spec["cache"]["paths"]) >= CACHED
        key = spec["cache"]["key"]
        hashed = re.search(r"\$\(codebuild-hash-files ([^)]*)\)", key).group(1).split()
        assert {"requirements.txt", "requirements-dev.txt", "package.json", "package-lock.json"} <= set(hashed)
        assert spec["cache"]["fallback-keys"] and all(key.startswith(k) for k in spec["cache"]["fallback-keys"])
        # The restored venv is checked (and moved to this build's path) before make runs; stamped after setup.
        assert any("dependency_cache restore" in c for c in spec["phases"]["install"]["commands"])
        commands = spec["phases"]["build"]["commands"]
        save = next(i for i, c in enumerate(commands) if "dependency_cache save" in c)
        assert commands.index("make setup") < save < len(commands) - 1
    assert caches[0] == caches[1] and specs[0] == specs[1]  # one cache, both actions
    assert caches[0]["Type"] == "S3" and caches[0]["CacheNamespace"]
    bucket_id = caches[0]["Location"]["Fn::Join"][1][0]["Ref"]
    bucket = pipeline_json["Resources"][bucket_id]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert "LoggingConfiguration" in bucket
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and 0 < rule["ExpirationInDays"] <= 90
    policy = next(
        p["Properties"]["PolicyDocument"]
        for p in resources_of(pipeline_json, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in policy["Statement"])


def fake_checkout(root: Path) -> Path:
    """Dependency files, a venv whose console script and activate name their absolute path, and make's stamps."""
    from constructs_lib.delivery import dependency_cache as dc

    repo = root / "src"
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / "node_modules").mkdir()
    for name in dc.DEPENDENCY_FILES:
        (repo / name).write_text(f"{name} pins\n")
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (repo / ".venv" / "bin" / "pip").write_text(f"#!{repo}/.venv/bin/python\nimport pip\n")
    (repo / ".venv" / "bin" / "ruff").write_bytes(b"\x7fELF\0" + f"{repo}/.venv".encode())
    for name in dc.MAKE_STAMPS:
        (repo / name).touch()
        os.utime(repo / name, (0, 0))
    dc.save(repo)
    return repo


def test_a_restored_venv_is_moved_to_the_new_build_path_and_make_skips_reinstalling(tmp_path):
    from constructs_lib.delivery import dependency_cache as dc

    old = fake_checkout(tmp_path / "build-1")
    new = tmp_path / "build-2" / "src"
    new.parent.mkdir()
    old.rename(new)
    assert "hit" in dc.restore(new)
    assert (new / ".venv/bin/pip").read_text().splitlines()[0] == f"#!{new}/.venv/bin/python"
    assert f"{old}/.venv".encode() in (new / ".venv/bin/ruff").read_bytes()  # a native binary is left alone
    assert all((new / name).stat().st_mtime > 0 for name in dc.MAKE_STAMPS)


def test_a_restored_venv_of_other_requirements_is_removed(tmp_path):
    from constructs_lib.delivery import dependency_cache as dc

    repo = fake_checkout(tmp_path)
    (repo / "requirements.txt").write_text("a new pin\n")
    assert "stale" in dc.restore(repo)
    assert not (repo / ".venv").exists() and not (repo / "node_modules").exists()
    repo = fake_checkout(tmp_path / "again")
    (repo / dc.STAMP).unlink()
    assert "miss" in dc.restore(repo) and not (repo / ".venv").exists()
    repo = fake_checkout(tmp_path / "new-image")  # the interpreter the venv links to is gone
    (repo / ".venv/bin/python").unlink()
    (repo / ".venv/bin/python").symlink_to(tmp_path / "gone")
    assert "miss" in dc.restore(repo) and not (repo / ".venv").exists()


def test_self_mutation_deploys_the_pipeline_stack(pipeline, pipeline_json):
    (mutate,) = stage(pipeline, "UpdatePipeline")
    spec = buildspec(pipeline_json, mutate)
    commands = " ".join(spec["phases"]["build"]["commands"])
    assert "cdk -a . deploy" in commands and "ErpPipeline" in commands
    # The CLI that `make synth` uses (package.json), not whatever npm calls latest.
    cli = json.loads((REPO / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert spec["phases"]["install"]["commands"] == [f"npm install -g aws-cdk@{cli}"]


def lookup_role(config) -> str:
    return f":iam::{config.account}:role/cdk-hnb659fds-lookup-role-{config.account}-{config.region}"


def assumable_roles(pipeline_json: dict, project_props: dict) -> list[str]:
    role = project_props["ServiceRole"]["Fn::GetAtt"][0]
    return [
        json.dumps(s["Resource"])
        for policy in resources_of(pipeline_json, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sts:AssumeRole"
    ]


PACKAGE = json.loads((REPO / "package.json").read_text())["devDependencies"]
CLI_INSTALL = re.compile(r"npm (?:install|i|ci)\b[^\n\"]*")


def buildspec_texts(pipeline_json: dict, cdk_out) -> dict[str, str]:
    """Every CodeBuild project's buildspec text (CDK Pipelines writes a long one to a file of the assembly)."""
    texts = {}
    for logical_id, resource in resources_of(pipeline_json, "AWS::CodeBuild::Project").items():
        spec = resource["Properties"]["Source"].get("BuildSpec", "")
        if isinstance(spec, str) and spec.endswith(".yaml") and (cdk_out / spec).is_file():
            texts[logical_id] = (cdk_out / spec).read_text()
        else:
            texts[logical_id] = json.dumps(spec)
    return texts


def test_every_codebuild_project_installs_only_the_pinned_clis(pipeline_json, cdk_out):
    """Issue 18 item 11: CDK Pipelines' defaults install `aws-cdk` and `cdk-assets@latest`; a 3.x CLI cannot read
    these assemblies. Every install of either names the exact version package.json pins (package-lock locks it)."""
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    installs = []
    for logical_id, text in buildspec_texts(pipeline_json, cdk_out).items():
        for command in CLI_INSTALL.findall(text):
            for name in ("aws-cdk", "cdk-assets"):
                for spec in re.findall(rf"(?<![\w/-]){name}(@[^\s\\\"]+)?(?![\w-])", command):
                    installs.append((logical_id, name, spec))
    assert {name for _, name, _ in installs} == {"aws-cdk", "cdk-assets"}, installs
    for logical_id, name, spec in installs:
        assert spec == f"@{PACKAGE[name]}", f"{logical_id} installs {name}{spec or ' (unpinned)'}"
        assert lock[f"node_modules/{name}"]["version"] == PACKAGE[name]
    # The permissions-broadening check, self-mutation and asset publishing are all among them.
    projects = {logical_id for logical_id, _, _ in installs}
    assert any("SecurityCheck" in p for p in projects) and any("SelfMutation" in p for p in projects)
    assert any("Assets" in p for p in projects)


def test_every_stage_smoke_tests_its_api_through_the_edge_after_deploying(pipeline, pipeline_json, toolchain, configs):
    """Through the distribution (the address users have), so the edge's /api/* behaviour is proven with the API."""
    for name in toolchain.stages:
        config = configs[name]
        actions = stage(pipeline, config.stage_id)
        smoke = next(a for a in actions if a["Name"] == f"{config.stage_id}SmokeTest")
        assert smoke["RunOrder"] > max(a["RunOrder"] for a in deploy_actions(actions))
        variables = json.loads(smoke["Configuration"]["EnvironmentVariables"])
        (variable,) = [v for v in variables if v["name"] == "API_URL"]
        edge_deploy = next(a for a in actions if a["Name"] == f"{config.project}-{name}-edge.Deploy")
        assert edge_deploy["Region"] == "us-east-1"
        assert variable["value"] == f"#{{{edge_deploy['Namespace']}.Url}}"
        commands = buildspec(pipeline_json, smoke)["phases"]["build"]["commands"]
        assert '"${API_URL%/}/api/health"' in commands[0] and 'test "$status" = 200' in commands[0]
        assert "--retry 10" in commands[0]
        # Anonymous calls to every backend route must be refused by the authorizer.
        routes = smoke_paths(config)
        http = [c for c in commands if "API_URL" in c]
        assert {"/api/employees", "/api/attendance", "/api/quests", "/api/leaves", "/api/approvals"} <= set(routes)
        assert "/api/process/smoke-test" in routes and "/api/notifications" in routes
        assert [c for c in http[1:] if 'test "$status" = 401' in c] == http[1:]
        assert [r for r in routes if any(f'"${{API_URL%/}}{r}"' in c for c in http[1:])] == routes


def test_smoke_test_proves_every_service_has_a_healthy_target(pipeline, pipeline_json, toolchain, configs):
    """The HTTP checks are answered by the Lambda and the authorizer; the services prove themselves by target
    health (tools/smoke_check.py fails when no pod is Ready), read through the stage's lookup role."""
    for name in toolchain.stages:
        config = configs[name]
        smoke = next(a for a in stage(pipeline, config.stage_id) if a["Name"] == f"{config.stage_id}SmokeTest")
        commands = buildspec(pipeline_json, smoke)["phases"]["build"]["commands"]
        assert commands[-1].startswith(
            f"AWS_PROFILE=stage python3 -m tools.smoke_check --stack erp-{name}-api --region {config.region}"
            f" --max-wait 600 --health-parameter /erp/{name}/smoke/workloads --workload "
        )
        assert "credential_source = EcsContainer" in commands[-2] and "$LOOKUP_ROLE_ARN" in commands[-2]
        props = project(pipeline_json, smoke)
        role_env = next(v for v in props["Environment"]["EnvironmentVariables"] if v["Name"] == "LOOKUP_ROLE_ARN")
        assert lookup_role(config) in json.dumps(role_env["Value"])
        assert assumable_roles(pipeline_json, props) == [json.dumps(role_env["Value"])]


def manifests(template: dict) -> list[dict]:
    """Every Kubernetes object of the template's manifests, CloudFormation references flattened to text."""

    def flat(value) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and set(value) == {"Fn::Join"}:
            return "".join(flat(part) for part in value["Fn::Join"][1])
        return "<token>"

    return [
        obj
        for r in template["Resources"].values()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource"
        for obj in json.loads(flat(r["Properties"]["Manifest"]))
    ]


def smoke_workloads(pipeline, pipeline_json, config) -> list[str]:
    smoke = next(a for a in stage(pipeline, config.stage_id) if a["Name"] == f"{config.stage_id}SmokeTest")
    command = buildspec(pipeline_json, smoke)["phases"]["build"]["commands"][-1].split()
    return [command[i + 1] for i, word in enumerate(command) if word == "--workload"]


def test_smoke_test_requires_every_workload_the_platform_ships(pipeline, pipeline_json, toolchain, configs):
    """Build item 4: the services, the employee-service proxy, Kafka, the collectors and the controllers, read
    from the charts (never typed), so a crash-looping pod without a target group (the SigV4 proxy) fails."""
    for name in toolchain.stages:
        config = configs[name]
        workloads = smoke_workloads(pipeline, pipeline_json, config)
        assert workloads == [str(w) for w in expected_workloads(config)]
        ns = config.namespace
        for service in config.services:
            assert f"{ns}/Deployment/{service.name}" in workloads
        assert f"{ns}/StatefulSet/kafka" in workloads and f"{ns}/Deployment/otel-collector" in workloads
        assert "logging/DaemonSet/fluent-bit" in workloads
        assert "kube-system/Deployment/aws-load-balancer-controller" in workloads
        assert {"external-secrets/Deployment/external-secrets", "reloader/Deployment/reloader-reloader"} <= set(
            workloads
        )


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_smoke_workloads_are_exactly_what_the_templates_deploy(pipeline, pipeline_json, configs, stack_templates, env):
    """Every workload of the Workloads stack's manifests is expected, and every Helm release of the Cluster stack
    has its workloads listed (a new add-on or chart workload without them fails here)."""
    config = configs[env]
    expected = set(smoke_workloads(pipeline, pipeline_json, config))
    rendered = {
        f"{m['metadata'].get('namespace', 'default')}/{m['kind']}/{m['metadata']['name']}"
        for m in manifests(stack_templates[f"erp-{env}-workloads"])
        if m["kind"] in WORKLOAD_KINDS
    }
    assert rendered and rendered <= expected
    charts = {
        r["Properties"]["Chart"]
        for r in stack_templates[f"erp-{env}-cluster"]["Resources"].values()
        if r["Type"] == "Custom::AWSCDK-EKS-HelmChart"
    }
    assert charts == set(HELM_WORKLOADS)
    assert expected - rendered == {
        w for w in expected if not w.startswith(f"{config.namespace}/") and not w.startswith("logging/")
    }


def test_the_workload_report_is_written_from_inside_the_vpc_with_view_access(stack_templates, configs):
    """The smoke test cannot reach the Kubernetes API (prod's endpoint is private): the stage's reporter reads it
    from the private subnets with an EKS access entry of AmazonEKSViewPolicy (cluster scope, no Secrets), writes
    only its SSM parameter, and checks the same workloads the pipeline expects."""
    for env in ("dev", "prod"):
        config = configs[env]
        cluster = stack_templates[f"erp-{env}-cluster"]
        (function_id, function) = next(
            (k, r) for k, r in resources_of(cluster, "AWS::Lambda::Function").items()
            if "WORKLOADS" in r["Properties"].get("Environment", {}).get("Variables", {})
        )  # fmt: skip
        variables = function["Properties"]["Environment"]["Variables"]
        assert json.loads(variables["WORKLOADS"]) == [str(w) for w in expected_workloads(config)]
        assert function["Properties"]["VpcConfig"]["SubnetIds"]
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        (entry,) = [
            r["Properties"] for r in resources_of(cluster, "AWS::EKS::AccessEntry").values()
            if r["Properties"]["PrincipalArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
        ]  # fmt: skip
        (policy,) = entry["AccessPolicies"]
        assert json.dumps(policy["PolicyArn"]).endswith(':cluster-access-policy/AmazonEKSViewPolicy"]]}')
        assert policy["AccessScope"] == {"Type": "cluster"}
        (parameter_id, parameter) = next(
            (k, r) for k, r in resources_of(cluster, "AWS::SSM::Parameter").items()
            if r["Properties"].get("Name") == f"/erp/{env}/smoke/workloads"
        )  # fmt: skip
        assert variables["PARAMETER"] == {"Ref": parameter_id}
        writes = [
            s for p in resources_of(cluster, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"] if "ssm:PutParameter" in json.dumps(s["Action"])
        ]  # fmt: skip
        (write,) = writes
        assert write["Action"] == "ssm:PutParameter" and parameter_id in json.dumps(write["Resource"])
        rules = [r for r in resources_of(cluster, "AWS::Events::Rule").values() if function_id in json.dumps(r["Properties"]["Targets"])]  # fmt: skip
        assert [r["Properties"]["ScheduleExpression"] for r in rules] == ["rate(1 minute)"]


def test_dev_deploys_without_a_gate(pipeline):
    kinds = {a["ActionTypeId"]["Category"] for a in stage(pipeline, "Dev")}
    assert "Approval" not in kinds


def test_prod_approval_and_broadening_check_before_any_deploy(pipeline):
    actions = stage(pipeline, "Prod")
    order = {a["Name"]: a["RunOrder"] for a in actions}
    first_deploy = min(a["RunOrder"] for a in deploy_actions(actions))
    assert order["PromoteProd"] < order["ProdPermissionsBroadening.Check"]
    assert order["ProdPermissionsBroadening.Confirm"] < first_deploy
    approvals = [a for a in actions if a["ActionTypeId"]["Category"] == "Approval"]
    assert all(a["RunOrder"] < first_deploy for a in approvals)
    assert len(approvals) == 2


def test_prod_scan_gate_runs_after_the_registry_exists_and_before_any_image_runs(pipeline):
    """On a first deploy the prod repositories do not exist until erp-prod-registry is deployed (its deploy also
    pulls the third-party images into the cache). Issue 18 item 18: the gate ran after the Cluster stack had
    installed Reloader and the controllers; it now runs before any stack that pulls an image."""
    order = {a["Name"]: a["RunOrder"] for a in stage(pipeline, "Prod")}
    (gate_name,) = [name for name in order if name.endswith("ProdImageScanGate")]
    gate = order[gate_name]
    assert order["erp-prod-registry.Deploy"] < gate
    for stack in ("cluster", "workloads"):  # the Helm releases and the charts: every pod of the stage
        assert gate < order[f"erp-prod-{stack}.Prepare"] < order[f"erp-prod-{stack}.Deploy"]


def test_the_cluster_stack_comes_after_the_registry_in_every_stage(pipeline, toolchain, configs):
    """The Helm releases pull through the registry's pull-through cache rules, warmed by its deploy."""
    for name in toolchain.stages:
        order = {a["Name"]: a["RunOrder"] for a in stage(pipeline, configs[name].stage_id)}
        assert order[f"erp-{name}-registry.Deploy"] < order[f"erp-{name}-cluster.Prepare"]


def test_scan_gate_checks_every_prod_image_in_the_prod_account(pipeline, pipeline_json, toolchain, configs):
    prod = configs["prod"]
    gate = next(a for a in stage(pipeline, "Prod") if a["Name"].endswith(".ProdImageScanGate"))
    spec = buildspec(pipeline_json, gate)
    command = spec["phases"]["build"]["commands"][-1]
    assert command.startswith("AWS_PROFILE=gate python3 -m tools.scan_gate ")
    # CRITICAL and HIGH block whatever config says (issue 18 item 18); an index is judged by the node platforms.
    fail_on = command.split("--fail-on ")[1].split()[0].split(",")
    assert fail_on[:2] == ["CRITICAL", "HIGH"] and set(toolchain.scan_fail_on) <= set(fail_on)
    platforms = sorted({f"linux/{'arm64' if g.arm64 else 'amd64'}" for g in prod.cluster.node_groups})
    assert f"--platforms {','.join(platforms)}" in command
    assert f"--max-wait {toolchain.scan_max_wait_seconds}" in command
    host = f"{prod.account}.dkr.ecr.{prod.region}.amazonaws.com"
    for service in prod.services:
        assert f"{host}/{service.image.repository}:{service.image.tag}" in command.split()
    # Reads findings through the prod account's read-only lookup role, and may assume nothing else.
    gate_project = project(pipeline_json, gate)
    (role_env,) = gate_project["Environment"]["EnvironmentVariables"]
    assert role_env["Name"] == "SCAN_ROLE_ARN" and lookup_role(prod) in json.dumps(role_env["Value"])
    assert assumable_roles(pipeline_json, gate_project) == [json.dumps(role_env["Value"])]


def test_source_action_may_use_the_connection_under_its_own_prefix(pipeline_json, toolchain):
    """AWS matches the IAM action's service prefix to the connection ARN's (codeconnections vs codestar-connections)."""
    prefix = toolchain.connection_arn.split(":")[2]
    assert prefix == "codeconnections"
    granted = [
        s["Action"]
        for policy in resources_of(pipeline_json, "AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Resource") == toolchain.connection_arn
    ]
    assert any(f"{prefix}:UseConnection" in (a if isinstance(a, list) else [a]) for a in granted)


def test_the_source_is_a_clone_every_build_reading_it_may_make(pipeline, pipeline_json, toolchain):
    """The default zip turns symlinks (lambda_handlers/*/kube_api.py) into text files, which the Lambda bundles would
    ship: the source is a clone reference, and each CodeBuild project that takes it clones through the connection."""
    (source,) = stage(pipeline, "Source")
    assert source["Configuration"]["OutputArtifactFormat"] == "CODEBUILD_CLONE_REF"
    (output,) = (a["Name"] for a in source["OutputArtifacts"])
    prefix = toolchain.connection_arn.split(":")[2]
    readers = [
        a
        for s in pipeline["Stages"][1:]
        for a in s["Actions"]
        if a["ActionTypeId"]["Provider"] == "CodeBuild" and output in [i["Name"] for i in a.get("InputArtifacts", [])]
    ]
    assert {a["Name"] for a in readers} >= {"Synth", "Test"}
    policies = resources_of(pipeline_json, "AWS::IAM::Policy").values()
    for action in readers:
        role = project(pipeline_json, action)["ServiceRole"]["Fn::GetAtt"][0]
        granted = [
            s["Action"]
            for policy in policies
            if {"Ref": role} in policy["Properties"]["Roles"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s.get("Resource") == toolchain.connection_arn
        ]
        assert any(f"{prefix}:UseConnection" in (a if isinstance(a, list) else [a]) for a in granted), action["Name"]


@pytest.mark.parametrize(
    ("arn", "action"),
    [
        ("arn:aws:codeconnections:ap-northeast-2:333333333333:connection/abc", "codeconnections:UseConnection"),
        (
            "arn:aws:codestar-connections:ap-northeast-2:333333333333:connection/abc",
            "codestar-connections:UseConnection",
        ),
    ],
)
def test_connection_action_matches_the_arn_prefix(arn, action):
    from constructs_lib.delivery.steps import connection_use_action

    assert connection_use_action(arn) == action


def test_prod_replacement_guard_runs_before_the_approval(pipeline, pipeline_json, configs, stack_artifacts):
    """Issue 12 item 7: nothing stateful is replaced in prod without a reviewed allowance; the diff reads every
    stack of the stage, so the guard may assume the lookup role of each region the stage deploys to."""
    prod = configs["prod"]
    actions = stage(pipeline, "Prod")
    order = {a["Name"]: a["RunOrder"] for a in actions}
    assert order["ProdReplacementGuard"] < order["PromoteProd"]
    guard = next(a for a in actions if a["Name"] == "ProdReplacementGuard")
    commands = buildspec(pipeline_json, guard)["phases"]["build"]["commands"]
    assert any("cdk diff --app cdk.out --method template 'ErpPipeline/Prod/*'" in c for c in commands)
    assert commands[-1] == "python3 -m tools.replacement_guard diff.txt --allowances config/allowed-replacements.yaml"
    role = project(pipeline_json, guard)["ServiceRole"]["Fn::GetAtt"][0]
    assumes = [
        json.dumps(s["Resource"])
        for policy in resources_of(pipeline_json, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sts:AssumeRole"
    ]
    assert len(assumes) == 1
    regions = set()
    for name, (directory, _) in stack_artifacts.items():
        if name.startswith(f"{prod.resource_prefix}-"):
            artifacts = json.loads((directory / "manifest.json").read_text())["artifacts"].values()
            regions |= {a["environment"].rsplit("/", 1)[1] for a in artifacts if a["type"].endswith("stack")}
    assert len(regions) == 3  # its own, the edge's (us-east-1), the backup copy's
    granted = set(re.findall(rf"cdk-hnb659fds-lookup-role-{prod.account}-([a-z0-9-]+)", assumes[0]))
    assert granted == regions
    # The synthesized assembly is the build's second input, mounted as cdk.out.
    assert len(guard["InputArtifacts"]) == 2


def test_notifications_on_failure_and_pending_approval(pipeline_json, toolchain):
    (rule,) = resources_of(pipeline_json, "AWS::CodeStarNotifications::NotificationRule").values()
    # The stage's failure (it names the stage) rather than the execution's, which would say the same twice.
    assert sorted(rule["Properties"]["EventTypeIds"]) == [
        "codepipeline-pipeline-manual-approval-needed",
        "codepipeline-pipeline-stage-execution-failed",
    ]
    (pipeline_id,) = resources_of(pipeline_json, "AWS::CodePipeline::Pipeline")
    assert {"Ref": pipeline_id} in rule["Properties"]["Resource"]["Fn::Join"][1]
    (target,) = rule["Properties"]["Targets"]
    topic_id = target["TargetAddress"]["Ref"]
    topic = pipeline_json["Resources"][topic_id]["Properties"]
    key = pipeline_json["Resources"][topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]
    assert key["EnableKeyRotation"] is True
    service = "codestar-notifications.amazonaws.com"

    def services(statement: dict) -> list[str]:  # CDK merges the grants of several services into one statement
        found = statement["Principal"].get("Service", []) if isinstance(statement["Principal"], dict) else []
        return found if isinstance(found, list) else [found]

    assert any(service in services(s) for s in key["KeyPolicy"]["Statement"])
    (policy,) = resources_of(pipeline_json, "AWS::SNS::TopicPolicy").values()
    assert any(
        service in services(s) and s["Action"] == "sns:Publish" and s["Effect"] == "Allow"
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )
    emails = sorted(
        s["Properties"]["Endpoint"]
        for s in resources_of(pipeline_json, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": topic_id}
    )
    assert emails == sorted(toolchain.notification_emails)


def artifact_store(pipeline: dict, region: str) -> dict:
    """The pipeline's artifact store in `region`: its own in the toolchain region, CDK's replication bucket in
    us-east-1 for the edge's deploy actions (ArtifactStores, one per region)."""
    (store,) = [s["ArtifactStore"] for s in pipeline["ArtifactStores"] if s["Region"] == region]
    return store


def test_artifacts_are_cmk_encrypted_ssl_only_and_access_logged(pipeline, pipeline_json, toolchain):
    store = artifact_store(pipeline, toolchain.region)
    bucket_id = store["Location"]["Ref"]
    bucket = pipeline_json["Resources"][bucket_id]["Properties"]
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert "LoggingConfiguration" in bucket
    policy = next(
        p["Properties"]["PolicyDocument"]
        for p in resources_of(pipeline_json, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in policy["Statement"])
    # Every CodeBuild project encrypts with the same customer-managed key.
    key = store["EncryptionKey"]["Id"]
    for build in resources_of(pipeline_json, "AWS::CodeBuild::Project").values():
        assert build["Properties"]["EncryptionKey"] == key


def copy_region(env: str) -> str | None:
    copy = load_environment(env).backup.copy
    return copy.region if copy else None


def test_github_oidc_role_is_for_this_repositorys_pull_requests_only(pipeline_json, toolchain):
    (provider_id, provider) = next(iter(resources_of(pipeline_json, "AWS::IAM::OIDCProvider").items()))
    assert provider["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    role_id, role = next(
        (k, r)
        for k, r in resources_of(pipeline_json, "AWS::IAM::Role").items()
        if "Federated" in r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    )
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Federated": {"Ref": provider_id}}
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    # Issue 18 item 16: a protected GitHub Environment, not any pull request (whose workflow the PR can edit).
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:{toolchain.repository}:environment:{DIFF_ENVIRONMENT}",
        }
    }
    assert "ManagedPolicyArns" not in role["Properties"]
    actions = {
        action
        for policy in resources_of(pipeline_json, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assumable = {
        json.dumps(resource, sort_keys=True)
        for policy in resources_of(pipeline_json, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "sts:AssumeRole"
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
    }
    # Exactly the lookup roles of the configured accounts (issue 12: it could assume roles in ANY account).
    accounts = {(toolchain.account, toolchain.region)} | {
        (load_environment(name).account, region)
        for name in toolchain.stages
        # its own region, the edge's (us-east-1), and prod's backup copy region
        for region in (load_environment(name).region, "us-east-1", *filter(None, [copy_region(name)]))
    }
    assert assumable == {json.dumps(f"arn:aws:iam::{a}:role/cdk-hnb659fds-lookup-role-{a}-{r}") for a, r in accounts}
    # Read-only: assume the CDK lookup roles, read templates, read the bootstrap version.
    assert actions == {"sts:AssumeRole", *DIFF_READ_ACTIONS, "ssm:GetParameter"}
    outputs = [o for o in pipeline_json["Outputs"].values() if o["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}]
    assert len(outputs) == 1


def test_cross_account_deploy_roles_can_read_the_artifacts(
    pipeline, pipeline_json, stack_templates, configs, toolchain
):
    key_id = artifact_store(pipeline, toolchain.region)["EncryptionKey"]["Id"]["Fn::GetAtt"][0]
    statements = json.dumps(pipeline_json["Resources"][key_id]["Properties"]["KeyPolicy"])
    # The edge's actions read their artifacts from CDK's us-east-1 replication bucket, under its own key.
    (support_key,) = resources_of(stack_templates[f"{PIPELINE_STACK}-support-us-east-1"], "AWS::KMS::Key").values()
    edge_statements = json.dumps(support_key["Properties"]["KeyPolicy"])
    assert support_key["Properties"]["EnableKeyRotation"] is True
    for name in toolchain.stages:
        account = configs[name].account
        if account != toolchain.account:
            assert f":iam::{account}:role/cdk-hnb659fds-deploy-role-{account}-" in statements
            assert f":iam::{account}:role/cdk-hnb659fds-deploy-role-{account}-us-east-1" in edge_statements


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_registry_one_immutable_scanned_repository_per_service(stack_templates, configs, env):
    config = configs[env]
    registry = stack_templates[f"erp-{env}-registry"]
    repos = {r["Properties"]["RepositoryName"]: r for r in resources_of(registry, "AWS::ECR::Repository").values()}
    assert set(repos) == {f"erp/{s.name}" for s in config.services}
    for repo in repos.values():
        props = repo["Properties"]
        assert props["ImageTagMutability"] == "IMMUTABLE"
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
        # Absent means ECR's default, AES256 (CDK leaves the default out).
        assert props.get("EncryptionConfiguration", {"EncryptionType": "AES256"}) == {"EncryptionType": "AES256"}
        rules = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
        assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "tagged"]
        assert rules[1]["selection"]["tagPrefixList"] == [CI_TAG_PREFIX]
        assert all(r["selection"]["tagStatus"] != "any" for r in rules)
        if config.production:
            # Kept on delete, but not after a failed first create (the retry would hit "already exists").
            assert repo["DeletionPolicy"] == "RetainExceptOnCreate"
        else:
            assert repo["DeletionPolicy"] == "Delete" and props["EmptyOnDelete"] is True
    (parameter,) = resources_of(registry, "AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Name"] == f"/erp/{env}/ecr/repository-prefix"
    value = json.dumps(parameter["Properties"]["Value"])
    assert re.search(rf"{config.account}\.dkr\.ecr\.{config.region}\..*/erp", value)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_workloads_pull_each_pinned_image_from_the_stage_registry(stack_templates, configs, env):
    config = configs[env]
    workloads = json.dumps(stack_templates[f"erp-{env}-workloads"])
    # The registry host comes from the stack's own pseudo parameters, never a typed account id.
    assert '{"Ref": "AWS::AccountId"}, ".dkr.ecr.", {"Ref": "AWS::Region"}' in workloads
    for service in config.services:
        assert f"/{service.image.repository}:{service.image.tag}" in workloads


def test_a_sleeping_stage_is_checked_awake_before_anything_deploys(pipeline, pipeline_json, toolchain, configs):
    for name in toolchain.stages:
        config = configs[name]
        actions = stage(pipeline, config.stage_id)
        check = [a for a in actions if a["Name"] == f"{config.stage_id}AwakeCheck"]
        if config.schedule is None:
            assert check == []
            continue
        (check,) = check
        assert check["RunOrder"] < min(a["RunOrder"] for a in deploy_actions(actions))
        commands = buildspec(pipeline_json, check)["phases"]["build"]["commands"]
        assert commands[-1] == (
            f"AWS_PROFILE=stage python3 -m tools.awake_check --cluster erp-{name} --region {config.region}"
            f" --scheduler-stack erp-{name}-cluster"
        )
        props = project(pipeline_json, check)
        role_env = next(v for v in props["Environment"]["EnvironmentVariables"] if v["Name"] == "LOOKUP_ROLE_ARN")
        assert assumable_roles(pipeline_json, props) == [json.dumps(role_env["Value"])]

"""What the platform passes to each pinned third-party component exists in that component's contract.

A contract (k8s_charts/contracts/<component>.yaml, format in its README.md) records facts read from the
component's upstream source at the pinned tag: the flags, environment variables and config keys an image
reads; the values a Helm chart takes and the namespaces it renders into for them; a CLI's commands and
options. These tests read what the platform ships, never a copy of it: container specs from the built
charts (build_charts, what the Workloads stack applies); Helm values, dependencies and namespaces from the
synthesized erp-<env>-cluster templates; CLI command lines from the synthesized pipeline's buildspecs (and
the PR workflow and Makefile). They check:

1. every flag, argument, env variable and config key a container of a pinned image gets, and every option
   a pipeline command line gives a pinned CLI, is in the contract;
2. every Helm value key a release sets is a value of the chart (or inside a free-form one);
3. every namespace a chart renders into for the platform's values exists before the release is installed:
   a system namespace, the release's own with CreateNamespace, or created by a resource the release
   depends on (DependsOn, Ref and GetAtt, transitively) in the same template;
4. the pinned versions are the contracts' versions, so a bump without re-reading the source fails with
   one line naming the contract file to update.

`pinned_by` in a contract names a module attribute (`k8s_charts.images.KAFKA`: its tag), a field of each
environment's EnvironmentConfig when it starts with `config.` (`config.cluster.helm.reloader`), or a key of a
JSON file (`package.json#devDependencies.aws-cdk`).
Each checker returns its violations; the last tests feed each a known-bad input, so none passes vacuously.
Issue 18: item 2 (the contracts), item 1 (Reloader before its namespace), item 12 (`--strip-header`).
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.kubernetes_versions import addon_version
from k8s_charts import names
from k8s_charts.images import CACHE_PREFIXES, THIRD_PARTY, ThirdPartyImage
from tests.charts.conftest import ENVIRONMENTS, build
from tests.conftest import resources_of
from tests.support.charts import Manifest, find, workloads

REPO = Path(__file__).resolve().parents[2]
CONTRACT_DIR = REPO / "k8s_charts" / "contracts"
HELM_RELEASE = "Custom::AWSCDK-EKS-HelmChart"
KUBERNETES_MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
# Created by the API server itself (its system-namespaces controller), before anything can be installed.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
TOKEN = "<cfn-token>"  # stands for a CloudFormation intrinsic inside a JSON string property
COMMIT = re.compile(r"^[0-9a-f]{40}$")
MISSING = object()


# --- contracts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    path: Path
    data: dict[str, Any]

    @property
    def file(self) -> str:
        return self.path.relative_to(REPO).as_posix()

    @property
    def component(self) -> str:
        return self.data["component"]

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def version(self) -> str:
        return str(self.data["version"])

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@cache
def contracts() -> dict[str, Contract]:
    found = {}
    for path in sorted(CONTRACT_DIR.glob("*.yaml")):
        contract = Contract(path, yaml.safe_load(path.read_text()))
        found[contract.component] = contract
    return found


def of_kind(kind: str) -> list[Contract]:
    return [c for c in contracts().values() if c.kind == kind]


def resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def config_field(env_config: Any, dotted: str) -> Any:
    value = env_config
    for part in dotted.split(".")[1:]:  # drop the leading `config`
        value = getattr(value, part)
    return value


def contract_image(contract: Contract) -> ThirdPartyImage:
    """The pinned image a contract covers: an image contract's `pinned_by`, a chart contract's `image`."""
    image = resolve(contract["pinned_by"] if contract.kind == "image" else contract["image"])
    assert isinstance(image, ThirdPartyImage), contract.file
    return image


def image_contract_ids() -> list[str]:
    return [c.component for c in of_kind("image")]


def chart_contract_ids() -> list[str]:
    return [c.component for c in of_kind("helm-chart")]


# --- containers (check 1) -----------------------------------------------------------------------------------


def containers_running(image: ThirdPartyImage, manifests: list[Manifest]) -> list[tuple[str, Manifest, Manifest]]:
    """(namespace/workload/container, container, pod spec) of every container that runs `image`."""
    pattern = re.compile(rf"/{re.escape(image.repository())}[:@]")
    return [
        (f"{workload.key}/{container['name']}", container, workload.pod_spec)
        for workload in workloads(manifests)
        for container in workload.containers
        if pattern.search(container["image"])
    ]


def arg_violations(args: list[str], spec: dict[str, Any]) -> list[str]:
    """Parse `args` the way the image's flag parser does (as recorded in the contract)."""
    either = spec.get("dashes") == "either"  # Go `flag`: -name and --name are the same flag

    def key(name: str) -> str:
        return name.lstrip("-") if either else name

    flags = {key(name): flag for flag in spec["flags"] for name in (flag["name"], flag.get("short")) if name}
    wrong = {key(entry["name"]): entry["why"] for entry in spec.get("not_flags", [])}
    problems = []
    tokens = iter(args)
    for token in tokens:
        if not token.startswith("-"):
            problems.append(f"{token!r}: a positional argument; the pinned version takes none")
            continue
        name, inline = token.partition("=")[0], "=" in token
        flag = flags.get(key(name))
        if flag is None:
            problems.append(f"{name}: not a flag of the pinned version ({wrong.get(key(name), spec['parser'])})")
        elif flag["value"] and not inline and next(tokens, None) is None:
            problems.append(f"{name}: takes a value and none follows")
    return problems


def server_property(name: str, rules: dict[str, Any]) -> str:
    """The broker property a KAFKA_* variable becomes, by the conversion rule the contract records."""
    stripped = name[len(rules["server_property_prefix"]) :].lower()
    return stripped.replace("_", ".").replace("...", "-").replace("..", "_")


def env_violations(env_names: list[str], contract: Contract) -> list[str]:
    env = contract["env"]
    if isinstance(env, list):
        known, rules, properties = {e["name"] for e in env}, None, set()
    else:
        known, rules = {e["name"] for e in env["names"]}, env["rules"]
        properties = {p["name"] for p in env["server_properties"]}
    problems = []
    for name in env_names:
        if name in known:
            continue
        if rules and name.startswith(rules["server_property_prefix"]) and name not in rules["not_server_properties"]:
            prop = server_property(name, rules)
            if prop not in properties:
                problems.append(f"{name}: becomes broker property {prop!r}, not one found defined in the source")
        else:
            problems.append(f"{name}: not an environment variable the pinned version reads")
    return problems


def shell_script(container: Manifest) -> str | None:
    command = container.get("command")
    if not command:
        return None
    assert command[:2] in (["bash", "-c"], ["sh", "-c"]) and len(command) == 3, container["name"]
    return command[2]


def script_violations(script: str, contract: Contract) -> list[str]:
    """A shell `command` replacing the image's entrypoint: what it execs, exports, runs and passes."""
    paths = {p["path"] for p in contract.get("paths", [])} | set(contract["entrypoint"][:1])
    tools = contract.get("tools", {})
    problems = env_violations(re.findall(r"^\s*export (\w+)=", script, re.MULTILINE), contract)
    problems += [
        f"exec {target}: not a path of the image"
        for target in re.findall(r"\bexec\s+(\S+)", script)
        if target not in paths
    ]
    wrappers = dict(re.findall(r"(\w+)\(\)\s*\{\s*(/\S+)", script))  # shell functions wrapping a tool
    for line in script.splitlines():
        called = re.findall(r"(/\S+/bin/[\w.-]+)", line) or [
            wrappers[word] for word in re.findall(r"\b(\w+)\b", line) if word in wrappers
        ]
        if not called:
            continue
        tool_path = called[0]
        tool = tool_path.rsplit("/", 1)[1]
        if tool_path not in paths or tool not in tools:
            problems.append(f"{tool_path}: not a tool of the image")
            continue
        for option in re.findall(r"(?<![\w-])(--[a-z][\w.-]*)", line):
            if option not in tools[tool]:
                problems.append(f"{tool} {option}: not an option of the pinned version")
    if "client_properties" in contract.data:
        known = {p["name"] for p in contract["client_properties"]}
        text = script.replace("\\n", "\n")  # printf'd property files
        for prop in re.findall(r"(?<![\w.$/-])([a-z]+(?:\.[a-z]+)+)=", text):
            if prop not in known:
                problems.append(f"{prop}: not a client or topic property found defined in the source")
    return problems


def config_files(container: Manifest, pod: Manifest, manifests: list[Manifest], namespace: str) -> dict[str, str]:
    """path -> text of every file a ConfigMap volume puts into the container."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        source = volumes[mount["name"]].get("configMap")
        if not source:
            continue
        assert "items" not in source and "subPath" not in mount, "extend config_files for items/subPath"
        (config_map,) = [
            m for m in find(manifests, "ConfigMap", source["name"]) if m["metadata"]["namespace"] == namespace
        ]
        for key, text in config_map.get("data", {}).items():
            files[f"{mount['mountPath'].rstrip('/')}/{key}"] = text
    return files


def fluent_bit_sections(text: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    section: tuple[str, list[tuple[str, str]]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            if section:
                yield section
            section = (line[1:-1].strip().upper(), [])
            continue
        assert section is not None and not line.startswith("@"), f"unhandled line {line!r}"
        key, _, value = line.partition(" ")
        section[1].append((key, value.strip()))
    if section:
        yield section


def fluent_bit_violations(text: str, contract: Contract) -> list[str]:
    config = contract["config"]

    def lower(keys: list[str]) -> set[str]:
        return {k.lower() for k in keys}

    problems = []
    for section, entries in fluent_bit_sections(text):
        plugin = next((value for key, value in entries if key.lower() == "name"), None)
        if section == "SERVICE":
            allowed = lower(config["service"])
        elif section in ("INPUT", "FILTER", "OUTPUT"):
            plugins = config["plugins"][section.lower()]
            if plugin not in plugins:
                problems.append(f"[{section}] Name {plugin}: not a plugin the contract covers")
                continue
            allowed = lower(config[f"{section.lower()}_common"]) | lower(plugins[plugin])
        else:
            problems.append(f"[{section}]: a section the contract does not cover")
            continue
        label = f"[{section}]" + (f" {plugin}" if plugin else "")
        for key, value in entries:
            if key.lower() not in allowed:
                problems.append(f"{label} {key}: not a key of the pinned version")
            if key.lower() == "multiline.parser":
                for parser in (p.strip() for p in value.split(",")):
                    if parser not in config["builtin_multiline_parsers"]:
                        problems.append(f"{label} multiline.parser {parser}: not a built-in parser")
    return problems


def container_violations(contract: Contract, manifests: list[Manifest]) -> dict[str, list[str]]:
    """container -> what it passes that the contract does not have (every container running the image)."""
    found = {}
    for label, container, pod in containers_running(contract_image(contract), manifests):
        namespace = label.split("/", 1)[0]
        problems = []
        if "args" in container:
            problems += arg_violations(container["args"], contract["args"])
        if container.get("envFrom"):
            problems.append("envFrom: names not known at synth; pass env explicitly")
        problems += env_violations([e["name"] for e in container.get("env", [])], contract)
        script = shell_script(container)
        if script is not None:
            problems += script_violations(script, contract)
        if "config_file" in contract.data:
            files = config_files(container, pod, manifests, namespace)
            if contract["config_file"] not in files:
                problems.append(f"{contract['config_file']}: the file the image loads is not the platform's")
            else:
                problems += fluent_bit_violations(files[contract["config_file"]], contract)
        found[label] = problems
    return found


# --- Helm releases (checks 2 and 3) -------------------------------------------------------------------------


def cfn_json(value: Any) -> Any:
    """A JSON property CDK wrote as a string, or as Fn::Join of strings and intrinsics (now TOKEN)."""
    if isinstance(value, str):
        return json.loads(value)
    separator, parts = value["Fn::Join"]
    return json.loads(separator.join(p if isinstance(p, str) else TOKEN for p in parts))


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            yield node["Ref"]
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            yield target[0] if isinstance(target, list) else target.split(".")[0]
        for child in node.values():
            yield from references(child)
    elif isinstance(node, list):
        for child in node:
            yield from references(child)


def dependency_closure(template: dict, logical_id: str) -> set[str]:
    """Every resource CloudFormation creates before `logical_id`: DependsOn, Ref and GetAtt, transitively."""
    resources = template["Resources"]
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        resource = resources[todo.pop()]
        depends = resource.get("DependsOn", [])
        direct = {*([depends] if isinstance(depends, str) else depends), *references(resource.get("Properties", {}))}
        for dependency in direct & resources.keys() - seen:
            seen.add(dependency)
            todo.append(dependency)
    return seen


def namespaces_created_by(resource: dict) -> set[str]:
    props = resource.get("Properties", {})
    if resource["Type"] == KUBERNETES_MANIFEST and "Manifest" in props:
        return {m["metadata"]["name"] for m in cfn_json(props["Manifest"]) if m.get("kind") == "Namespace"}
    if resource["Type"] == HELM_RELEASE and props.get("CreateNamespace"):
        return {props["Namespace"]}
    return set()


@dataclass(frozen=True)
class Release:
    logical_id: str
    properties: dict[str, Any]
    values: dict[str, Any]

    @property
    def chart(self) -> str:
        return self.properties["Chart"]

    @property
    def namespace(self) -> str:
        return self.properties["Namespace"]


def releases(template: dict) -> list[Release]:
    return [
        Release(logical_id, r["Properties"], cfn_json(r["Properties"].get("Values", "{}")))
        for logical_id, r in template["Resources"].items()
        if r["Type"] == HELM_RELEASE
    ]


def release_contract(release: Release) -> Contract | None:
    return next(
        (
            c
            for c in of_kind("helm-chart")
            if c["chart"] == release.chart and c["repository"] == release.properties.get("Repository")
        ),
        None,
    )


def lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def setting(contract: Contract, values: dict[str, Any], path: str) -> Any:
    """The value the chart renders with: the platform's, else the chart default the contract records."""
    value = lookup(values, path)
    if value is not MISSING:
        return value
    if path in contract.get("defaults", {}):
        return contract["defaults"][path]
    for entry in contract["values"]:
        if entry["path"] == path:
            return entry.get("default")
    raise KeyError(f"{contract.file} records no default for {path}")


def leaf_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def value_violations(values: dict[str, Any], contract: Contract) -> list[str]:
    known = {entry["path"] for entry in contract["values"]}
    free_form = [entry["path"] for entry in contract["values"] if entry.get("free_form")]
    return [
        f"{path}: not a value of chart {contract['chart']} {contract.version}"
        for path in leaf_paths(values)
        if path not in known and not any(path.startswith(f"{parent}.") for parent in free_form)
    ]


def rendered_namespaces(release: Release, contract: Contract) -> set[str]:
    """Every namespace the chart puts an object into for the release's values (contract `renders`)."""
    cases = [
        case
        for case in contract["renders"]
        if all(setting(contract, release.values, path) == want for path, want in case["when"].items())
    ]
    assert len(cases) == 1, f"{contract.file}: {len(cases)} `renders` cases match the values of {release.logical_id}"
    found = set()
    for into in cases[0]["into"]:
        target = into["namespace"]
        if target == "release":
            found.add(release.namespace)
        else:
            value = setting(contract, release.values, target["value"])
            found |= {name or release.namespace for name in (value if isinstance(value, list) else [value])}
    return found


def namespace_violations(template: dict, release: Release, contract: Contract) -> list[str]:
    exists_first = set(SYSTEM_NAMESPACES)
    if release.properties.get("CreateNamespace"):
        exists_first.add(release.namespace)
    for dependency in dependency_closure(template, release.logical_id):
        exists_first |= namespaces_created_by(template["Resources"][dependency])
    return [
        f"{release.chart} renders into {namespace}, which nothing it depends on creates"
        for namespace in sorted(rendered_namespaces(release, contract) - exists_first)
    ]


# --- CLIs the pipeline installs (checks 1 and 4) -----------------------------------------------------------

# `cdk ...`, `npx cdk ...`, `cdk-assets ...` as a command (not inside a word or a quoted message), up to the
# next shell operator.
INVOCATION = re.compile(r"(?:^|[\s;&|(])(?:npx\s+)?(cdk-assets|cdk)\s+([^;&|<>)\n]*)([<>]?)")
NPM_INSTALL = re.compile(r"\bnpm\s+(?:install|i)\b([^;&|\n]*)")


def cli_contracts() -> dict[str, Contract]:
    return {c["executable"]: c for c in of_kind("cli")}


def package_json_pin(contract: Contract) -> str:
    file, _, dotted = contract["pinned_by"].partition("#")
    value: Any = json.loads((REPO / file).read_text())
    for part in dotted.split("."):
        value = value[part]
    return value


def buildspec_commands(spec: dict) -> list[str]:
    return [cmd for phase in spec.get("phases", {}).values() for cmd in phase.get("commands", [])]


def shell_lines(stack_templates: dict[str, dict], cdk_out: Path) -> list[tuple[str, str]]:
    """(where, command line) of every command the pipeline's CodeBuild projects run, the asset-publishing
    buildspecs CDK Pipelines writes into the assembly, the PR workflow's `run` steps and the Makefile recipes."""
    found = []
    files = {path.name: path for path in cdk_out.glob("buildspec-*.y*ml")}
    for logical_id, project in resources_of(stack_templates["erp-pipeline"], "AWS::CodeBuild::Project").items():
        spec = project["Properties"]["Source"].get("BuildSpec")
        if spec is None:
            continue
        if isinstance(spec, str) and spec.endswith((".yaml", ".yml")):
            spec = yaml.safe_load(files.pop(spec).read_text())
        else:
            spec = cfn_json(spec)
        found += [(f"erp-pipeline {logical_id}", cmd) for cmd in buildspec_commands(spec)]
    for name, path in sorted(files.items()):  # written into the assembly, referenced by no project here
        found += [(name, cmd) for cmd in buildspec_commands(yaml.safe_load(path.read_text()))]
    for path in sorted((REPO / ".github" / "workflows").glob("*.y*ml")):
        for job in yaml.safe_load(path.read_text()).get("jobs", {}).values():
            for step in job.get("steps", []):
                found += [(f"{path.name} {step.get('name', '')}", line) for line in step.get("run", "").splitlines()]
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("\t"):
            found.append(("Makefile", re.sub(r"\$\((\w+)\)", r"\1", line)))  # make variables as plain words
    return [
        (where, line)
        for where, line in found
        if not line.strip().startswith(("#", "echo ", "@echo ", "printf "))  # comments and messages
    ]


def invocations(line: str) -> Iterator[tuple[str, list[str]]]:
    for executable, segment, stop in INVOCATION.findall(line):
        if stop:  # `2>&1`, `< /dev/null`: a file descriptor number is not an argument
            segment = re.sub(r"\s\d+\s*$", "", segment)
        yield executable, shlex.split(segment)


def cli_violations(argv: list[str], contract: Contract) -> list[str]:
    """Parse `argv` the way the CLI's yargs definition (as recorded) does; name what it does not know."""

    def table(options: list[dict]) -> dict[str, dict]:
        return {name: o for o in options for name in (o["name"], *o.get("alias", []))}

    cli, commands = contract["executable"], contract["commands"]
    known, command, positionals, problems = table(contract["global_options"]), None, [], []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token.startswith("-") and token != "-":
            name, inline, value = token.partition("=")
            option = known.get(name)
            if option is None and name.startswith("--no-"):
                negated = known.get(f"--{name[5:]}")
                option = negated if negated and negated["type"] == "boolean" else None
            if option is None:
                where = f"{cli} {command}" if command else cli
                problems.append(f"{where} {name}: not an option of {cli} {contract.version}")
                continue
            if option["type"] == "boolean":
                continue
            values = [value] if inline else []
            while i < len(argv) and not argv[i].startswith("-") and (not values or option["type"] == "array"):
                values.append(argv[i])
                i += 1
            if not values:
                problems.append(f"{cli} {name}: takes a value and none follows")
            problems += [
                f"{cli} {name} {v}: not one of {option['choices']}"
                for v in values
                if v not in option.get("choices", [v])
            ]
        elif command is None:
            command = token
            if token not in commands:
                problems.append(f"{cli} {token}: not a command of {cli} {contract.version}")
                continue
            known = {**known, **table(commands[token]["options"])}
        else:
            positionals.append(token)
    if command in commands:
        spec = commands[command]["positionals"]
        limit = 0 if not spec["name"] else len(positionals) if spec["variadic"] else 1
        if len(positionals) > limit:
            problems.append(f"{cli} {command}: takes at most {limit} arguments, got {positionals}")
    elif command is None:
        problems.append(f"{cli}: no command")
    return problems


def install_pins(lines: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(where, package, version or '') of every npm install of a package a CLI contract covers."""
    packages = {c["source"]["package"]["name"] for c in of_kind("cli")}
    found = []
    for where, line in lines:
        for arguments in NPM_INSTALL.findall(line):
            for word in shlex.split(arguments):
                name, _, version = word.rpartition("@") if "@" in word[1:] else (word, "", "")
                if name in packages:
                    found.append((where, name, version))
    return found


# --- versions (check 4) ---------------------------------------------------------------------------------------


def pins(
    contract: Contract, configs: dict, templates: dict[str, dict], lines: list[tuple[str, str]] = ()
) -> list[tuple[str, str, str]]:
    """(where the platform pins it, the pinned value, the contract's value) for every pin the contract covers."""
    found = []
    if contract.kind == "image":
        found.append((f"{contract['pinned_by']}.tag", contract_image(contract).tag, contract.version))
        return found
    if contract.kind == "eks-addon":
        # EKS runs its build of the driver, pinned per Kubernetes minor (config/kubernetes-versions.yaml); unpinned
        # (None: EKS's default at create) stands for the newest tag read.
        for env, config in sorted(configs.items()):
            minor = config.cluster.kubernetes_version
            pinned = addon_version(minor, contract.component)
            driver = pinned.split("-eksbuild")[0] if pinned else contract.version
            read = driver if driver in contract["read_at"] else f"one of {contract['read_at']}"
            found.append((f"{env}: kubernetes-versions.yaml {minor} addons.{contract.component}", driver, read))
        return found
    if contract.kind == "cli":
        found.append((contract["pinned_by"], package_json_pin(contract), contract.version))
        package = contract["source"]["package"]["name"]
        for where, name, version in install_pins(lines):
            if name == package:
                found.append((f"{where}: npm install {name}", version or "(unpinned)", contract.version))
        return found
    for env, config in sorted(configs.items()):
        found.append((f"{env}: {contract['pinned_by']}", config_field(config, contract["pinned_by"]), contract.version))
    image = contract_image(contract)
    found.append((f"{contract['image']}.tag", image.tag, str(contract["app_version"])))
    for name, template in sorted(templates.items()):
        for release in releases(template):
            if release_contract(release) is not contract:
                continue
            found.append((f"{name} {release.logical_id} Version", release.properties["Version"], contract.version))
            for path in leaf_paths(release.values):
                if path == "image.tag" or path.endswith(".image.tag"):
                    running = str(lookup(release.values, path)).split("@")[0]
                    found.append((f"{name} {release.logical_id} {path}", running, str(contract["app_version"])))
    return found


def version_message(contract: Contract, mismatches: list[tuple[str, str, str]]) -> str:
    """ONE line: what moved, and the contract file to re-read and update."""
    moved = "; ".join(f"{where} = {pinned!r} (contract: {recorded!r})" for where, pinned, recorded in mismatches)
    return (
        f"{contract.component} pin moved without its contract: {moved} -> re-read "
        f"{contract['source']['repository']} at the new tag and update {contract.file}"
    )


def cluster_templates(stack_templates: dict[str, dict]) -> dict[str, dict]:
    return {f"erp-{env}-cluster": stack_templates[f"erp-{env}-cluster"] for env in ENVIRONMENTS}


# --- the contracts themselves -------------------------------------------------------------------------------


@pytest.mark.parametrize("component", sorted(contracts()))
def test_contract_records_its_source(component):
    contract = contracts()[component]
    source = contract["source"]
    assert source["repository"].startswith("https://github.com/") and source["tag"]
    assert contract.kind in ("image", "helm-chart", "cli", "eks-addon")
    assert source["status"] in ("read", "unavailable", "published-package"), contract.file
    if source["status"] == "published-package":  # read from the package the lock file resolves, not from git
        package = source["package"]
        assert package["integrity"].startswith("sha512-") and str(package["version"]) == contract.version
        assert source["files"], contract.file
        return
    read = source if source["status"] == "read" else source["nearest"]
    assert COMMIT.match(read["commit"]) and read["tag"] and read["files"], contract.file
    if source["status"] == "unavailable":
        warnings.warn(
            f"{contract.file}: {component} {contract.version} unverified: its source was not readable, the "
            f"facts are of {read['tag']} ({read['commit'][:8]}); re-read at {source['tag']} when available",
            stacklevel=1,
        )


def test_every_third_party_image_and_chart_has_a_contract(stack_templates):
    covered = {contract_image(c) for c in contracts().values() if c.kind == "image" or "image" in c.data}
    assert {name for name, image in THIRD_PARTY.items() if image not in covered} == set()
    for name, template in cluster_templates(stack_templates).items():
        assert [r.chart for r in releases(template) if release_contract(r) is None] == [], name
    # The controllers' ADDONs are the releases the chart contracts describe.
    for contract in of_kind("helm-chart"):
        addon = resolve(contract["addon"])
        assert (addon.chart, addon.repository) == (contract["chart"], contract["repository"]), contract.file
        assert contract["pinned_by"] == f"config.cluster.helm.{addon.version_field}", contract.file


def test_one_contract_per_pinned_image():
    """An image run with several configs keeps one contract (its flags, env and source are the image's), with a
    section per config (aws-otel-collector.yaml: collector_config.configs)."""
    pins = [c["pinned_by"] for c in of_kind("image")]
    assert sorted({pin for pin in pins if pins.count(pin) > 1}) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pulled_through_image_a_container_runs_has_a_contract(env):
    manifests = build(env).everything
    running = {label for c in of_kind("image") for label, _, _ in containers_running(contract_image(c), manifests)}
    cached = re.compile(rf"/({'|'.join(map(re.escape, CACHE_PREFIXES))})/")
    uncovered = [
        f"{w.key}/{c['name']}"
        for w in workloads(manifests)
        for c in w.containers
        if cached.search(c["image"]) and f"{w.key}/{c['name']}" not in running
    ]
    assert uncovered == []


# --- 1. containers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("component", image_contract_ids())
def test_containers_pass_only_what_the_pinned_image_reads(component, env):
    found = container_violations(contracts()[component], build(env).everything)
    assert found, f"no container runs {component}: the check would pass vacuously"
    assert {label: problems for label, problems in found.items() if problems} == {}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_employee_proxy_args_are_flags_of_aws_sigv4_proxy(env):
    """Item 12: `--strip-header` is no flag of aws-sigv4-proxy 1.11 (kingpin exits: the pod crash-loops)."""
    contract = contracts()["aws-sigv4-proxy"]
    (deployment,) = find(build(env).chart("services"), "Deployment", names.EMPLOYEE_PROXY)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert contract_image(contract).repository() in container["image"]
    args = container["args"]
    assert arg_violations(args, contract["args"]) == []
    # What the wrong flag meant is still asked for: the caller's Authorization header is dropped.
    assert ["--strip", "Authorization"] in [args[i : i + 2] for i in range(len(args) - 1)]


# --- 2. and 3. Helm releases --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("component", chart_contract_ids())
def test_helm_values_are_values_of_the_pinned_chart(stack_templates, component, env):
    contract = contracts()[component]
    (release,) = [r for r in releases(stack_templates[f"erp-{env}-cluster"]) if release_contract(r) is contract]
    assert release.values, f"{release.logical_id} sets no values: the check would pass vacuously"
    assert value_violations(release.values, contract) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("component", chart_contract_ids())
def test_every_namespace_a_chart_renders_into_exists_before_it_is_installed(stack_templates, component, env):
    template = stack_templates[f"erp-{env}-cluster"]
    contract = contracts()[component]
    (release,) = [r for r in releases(template) if release_contract(r) is contract]
    assert namespace_violations(template, release, contract) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_reloader_is_installed_after_the_erp_namespace_it_renders_into(stack_templates, configs, env):
    """Item 1: scoped Reloader renders a Role and RoleBinding into erp-<env>; Helm fails if it does not exist.
    The Cluster stack creates it (retained) and the release depends on that; no later stack owns it."""
    template = stack_templates[f"erp-{env}-cluster"]
    namespace = configs[env].namespace
    contract = contracts()["reloader"]
    (release,) = [r for r in releases(template) if release_contract(r) is contract]
    assert namespace in rendered_namespaces(release, contract)
    creators = [lid for lid, r in template["Resources"].items() if namespace in namespaces_created_by(r)]
    assert len(creators) == 1, creators
    (creator,) = creators
    assert creator in dependency_closure(template, release.logical_id)
    assert template["Resources"][creator].get("DeletionPolicy") == "Retain"
    assert template["Resources"][creator].get("UpdateReplacePolicy") == "Retain"
    elsewhere = [
        (stack, lid)
        for stack, other in stack_templates.items()
        if stack.startswith(f"erp-{env}-") and stack != f"erp-{env}-cluster"
        for lid, r in other["Resources"].items()
        if namespace in namespaces_created_by(r)
    ]
    assert elsewhere == []


def test_reloader_renders_no_cluster_wide_rbac_for_the_platform_values(stack_templates):
    contract = contracts()["reloader"]
    for template in cluster_templates(stack_templates).values():
        (release,) = [r for r in releases(template) if release_contract(r) is contract]
        (case,) = [
            c
            for c in contract["renders"]
            if all(setting(contract, release.values, k) == v for k, v in c["when"].items())
        ]
        assert case["cluster_scoped"] == []


# --- 1. (CLIs) command lines ---------------------------------------------------------------------------------


def test_cli_command_lines_use_only_options_of_the_pinned_clis(stack_templates, cdk_out):
    """The CDK CLI ignores an unknown option (yargs, not strict): a misspelt `--security-only` would turn the
    permissions-broadening check off without an error. Every command line must be the pinned CLI's."""
    lines = shell_lines(stack_templates, cdk_out)
    by_cli: dict[str, int] = {}
    problems = []
    for where, line in lines:
        for executable, argv in invocations(line):
            contract = cli_contracts()[executable]
            by_cli[executable] = by_cli.get(executable, 0) + 1
            problems += [f"{where}: {p}" for p in cli_violations(argv, contract)]
    assert set(by_cli) == set(cli_contracts()), f"a CLI contract no command line uses: {by_cli}"
    assert problems == []


# --- 4. versions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", sorted(contracts()))
def test_pinned_version_is_the_contract_version(stack_templates, cdk_out, configs, component):
    contract = contracts()[component]
    lines = shell_lines(stack_templates, cdk_out)
    found = pins(contract, configs, cluster_templates(stack_templates), lines)
    mismatches = [pin for pin in found if pin[1] != pin[2]]
    if mismatches:
        pytest.fail(version_message(contract, mismatches), pytrace=False)


# --- every check can fail -----------------------------------------------------------------------------------


def test_the_container_checks_reject_what_the_pinned_versions_do_not_have():
    proxy, adot, kafka, fluent_bit = (
        contracts()[c] for c in ("aws-sigv4-proxy", "aws-otel-collector", "kafka", "aws-for-fluent-bit")
    )
    # Item 12's flag, a misspelt one, a dangling value flag, a positional.
    problem, then = arg_violations(["--strip-header", "Authorization"], proxy["args"])
    assert problem.startswith("--strip-header: not a flag") and "--strip / -s" in problem
    assert then == "'Authorization': a positional argument; the pinned version takes none"
    assert arg_violations(["-s", "Authorization", "--strip=X-Amz-Security-Token"], proxy["args"]) == []
    assert arg_violations(["-strip", "Authorization"], proxy["args"])  # kingpin: long names take two dashes
    assert arg_violations(["--config"], adot["args"]) == ["--config: takes a value and none follows"]
    assert arg_violations(["--config=file:/c.yaml", "--set", "processors.batch.timeout=2s"], adot["args"]) == []
    # pflag parses after Go `flag`: a single-dash long name is not the flag.
    assert arg_violations(["-config=/c.yaml", "--configs=x"], adot["args"]) == [
        "-config: not a flag of the pinned version (" + adot["args"]["parser"] + ")",
        "--configs: not a flag of the pinned version (" + adot["args"]["parser"] + ")",
    ]
    assert env_violations(["AWS_REGION", "AOT_CONFIG"], adot) == [
        "AOT_CONFIG: not an environment variable the pinned version reads"
    ]
    assert env_violations(["KAFKA_NODE_ID", "KAFKA_HEAP_OPTS", "CLUSTER_ID"], kafka) == []
    assert env_violations(["KAFKA_LOG_DIR", "KAFKA_HEAP_OPT"], kafka) == [
        "KAFKA_LOG_DIR: becomes broker property 'log.dir', not one found defined in the source",
        "KAFKA_HEAP_OPT: becomes broker property 'heap.opt', not one found defined in the source",
    ]
    script = 'topics() { /opt/kafka/bin/kafka-topics.sh --bootstrap-server k "$@"; }\ntopics --create --partition 3 --config retention.hours=1\nexec /etc/kafka/docker/start\n'
    assert script_violations(script, kafka) == [
        "exec /etc/kafka/docker/start: not a path of the image",
        "kafka-topics.sh --partition: not an option of the pinned version",
        "retention.hours: not a client or topic property found defined in the source",
    ]
    config = "[SERVICE]\n    Flush 5\n[INPUT]\n    Name tail\n    multiline.parser cri, containerd\n[OUTPUT]\n    Name cloudwatch_logs\n    log_group log\n[OUTPUT]\n    Name cloudwatch\n"
    assert fluent_bit_violations(config, fluent_bit) == [
        "[INPUT] tail multiline.parser containerd: not a built-in parser",
        "[OUTPUT] cloudwatch_logs log_group: not a key of the pinned version",
        "[OUTPUT] Name cloudwatch: not a plugin the contract covers",
    ]


def test_the_helm_checks_reject_unknown_values_missing_namespaces_and_moved_pins(stack_templates, configs):
    template = json.loads(json.dumps(stack_templates["erp-dev-cluster"]))
    contract = contracts()["reloader"]
    (release,) = [r for r in releases(template) if release_contract(r) is contract]
    assert value_violations({**release.values, "watchNamespace": "erp-dev"}, contract) == [
        "watchNamespace: not a value of chart reloader 2.2.16"
    ]
    # Item 1's old behaviour: the release does not wait for whatever creates erp-dev.
    resource = template["Resources"][release.logical_id]
    creators = {lid for lid, r in template["Resources"].items() if "erp-dev" in namespaces_created_by(r)}
    resource["DependsOn"] = [d for d in resource.get("DependsOn", []) if d not in creators]
    assert namespace_violations(template, release, contract) == [
        "reloader renders into erp-dev, which nothing it depends on creates"
    ]
    # A chart bump in config without a contract update: one line naming the file.
    dev = configs["dev"]
    helm = dev.cluster.helm.model_copy(update={"reloader": "2.2.17"})
    bumped = {**configs, "dev": dev.model_copy(update={"cluster": dev.cluster.model_copy(update={"helm": helm})})}
    mismatches = [pin for pin in pins(contract, bumped, {}) if pin[1] != pin[2]]
    message = version_message(contract, mismatches)
    assert "\n" not in message and message.endswith("update k8s_charts/contracts/reloader.yaml")
    assert "dev: config.cluster.helm.reloader = '2.2.17' (contract: '2.2.16')" in message


def test_the_cli_checks_reject_what_the_pinned_clis_do_not_have():
    cdk, assets = cli_contracts()["cdk"], cli_contracts()["cdk-assets"]
    line = 'npx cdk diff -a . --security-onyl --fail --method changeset $STAGE_PATH/ > d.txt 2>&1 || echo "cdk diff failed"'
    ((executable, argv),) = invocations(line)
    assert (executable, argv[:4]) == ("cdk", ["diff", "-a", ".", "--security-onyl"])
    assert cli_violations(argv, cdk) == [
        "cdk diff --security-onyl: not an option of cdk 2.1148.1",
        "cdk --method changeset: not one of ['auto', 'change-set', 'template']",
    ]
    assert cli_violations(["-a", ".", "deploy", "S", "--require-approval=never", "--no-rollback", "-v"], cdk) == []
    assert cli_violations(["--path", "a.json", "--verbose", "publish", "h:d", "--force"], assets) == [
        "cdk-assets publish --force: not an option of cdk-assets 4.7.3"
    ]
    assert cli_violations(["upload"], assets) == ["cdk-assets upload: not a command of cdk-assets 4.7.3"]
    assert install_pins([("x", "npm install -g aws-cdk cdk-assets@4.7.3")]) == [
        ("x", "aws-cdk", ""),
        ("x", "cdk-assets", "4.7.3"),
    ]

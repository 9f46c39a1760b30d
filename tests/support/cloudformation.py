"""Synthesized templates read as CloudFormation would resolve them, as far as the test models need.

`Stacks` resolves the intrinsics a value is made of (Ref, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split,
Fn::Sub, Fn::GetStackOutput, Fn::ImportValue) across every stack of the assembly. A resource's physical
id is stood in for by a string derived from its stack and logical id, and every such string remembers
where it came from (`origin`), so a model can follow a reference the way AWS does: an authorizer's
audience to the user pool client, an integration's URI to an NLB listener, a trigger ARN to its function,
a function URL host to the function behind it. Anything else (conditions, Fn::If, AZ lookups) raises
`Unresolvable`, so a model never works from a value it silently guessed.

`deployed_function` loads a Lambda function the way Lambda runs it: the code of its asset (or its inline
code) with the environment variables of its `AWS::Lambda::Function` resource.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PSEUDO_PARAMETERS = {"AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws", "AWS::StackName": None}


class Unresolvable(ValueError):
    """A value the models cannot resolve without guessing."""


@dataclass(frozen=True)
class Origin:
    """Where a resolved string came from: a resource's Ref (attribute None) or one of its attributes."""

    stack: str
    logical_id: str
    attribute: str | None = None


@dataclass
class Stacks:
    templates: Mapping[str, dict]
    region: str
    account: str
    _origins: dict[str, Origin] = field(default_factory=dict)

    # --- reading -------------------------------------------------------------------------------

    def resources(self, stack: str, resource_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == resource_type}

    def resource(self, stack: str, logical_id: str) -> dict:
        return self.templates[stack]["Resources"][logical_id]

    def only(self, stack: str, resource_type: str) -> tuple[str, dict]:
        found = self.resources(stack, resource_type)
        if len(found) != 1:
            raise Unresolvable(f"{stack}: expected one {resource_type}, found {sorted(found)}")
        return next(iter(found.items()))

    def origin(self, value: object) -> Origin:
        """The resource a resolved string stands for."""
        if not isinstance(value, str) or value not in self._origins:
            raise Unresolvable(f"{value!r} is not the physical id or attribute of a resource in these templates")
        return self._origins[value]

    # --- resolving -----------------------------------------------------------------------------

    def ref(self, stack: str, logical_id: str) -> str:
        if logical_id in PSEUDO_PARAMETERS:
            return self._pseudo(stack, logical_id)
        if logical_id == "AWS::Region":
            return self.region
        if logical_id == "AWS::AccountId":
            return self.account
        resources = self.templates[stack]["Resources"]
        if logical_id not in resources:
            if logical_id in self.templates[stack].get("Parameters", {}):
                raise Unresolvable(f"{stack}: parameter {logical_id} has no value at synth time")
            raise Unresolvable(f"{stack}: Ref to unknown {logical_id}")
        value = f"{stack}.{logical_id}".lower()
        self._origins[value] = Origin(stack, logical_id)
        return value

    def get_att(self, stack: str, logical_id: str, attribute: str) -> str:
        resource_type = self.resource(stack, logical_id)["Type"]
        ref = self.ref(stack, logical_id)
        if attribute == "Arn":
            service = resource_type.split("::")[1].lower()
            value = f"arn:aws:{service}:{self.region}:{self.account}:{ref}"
        elif attribute == "FunctionUrl":
            value = f"https://{ref.replace('.', '-')}.lambda-url.{self.region}.on.aws/"
        else:
            value = f"{ref}.{attribute}"
        self._origins[value] = Origin(stack, logical_id, attribute)
        return value

    def _pseudo(self, stack: str, name: str) -> str:
        return stack if name == "AWS::StackName" else PSEUDO_PARAMETERS[name]

    def output(self, stack: str, name: str) -> Any:
        outputs = self.templates[stack].get("Outputs", {})
        if name not in outputs:
            raise Unresolvable(f"{stack} has no output {name}")
        return self.resolve(stack, outputs[name]["Value"])

    def export(self, name: str) -> Any:
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                export = output.get("Export")
                if export and self.resolve(stack, export["Name"]) == name:
                    return self.resolve(stack, output["Value"])
        raise Unresolvable(f"no stack exports {name}")

    def resolve(self, stack: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(stack, v) for k, v in value.items()}
        ((name, arg),) = value.items()
        if name == "Ref":
            return self.ref(stack, arg)
        if name == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(stack, logical_id, attribute)
        if name == "Fn::Join":
            separator, parts = arg
            return separator.join(str(self.resolve(stack, p)) for p in self.resolve(stack, parts))
        if name == "Fn::Select":
            index, items = arg
            return self.resolve(stack, items)[int(self.resolve(stack, index))]
        if name == "Fn::Split":
            separator, text = arg
            return self.resolve(stack, text).split(separator)
        if name == "Fn::Sub":
            return self._sub(stack, arg)
        if name == "Fn::GetStackOutput":
            other = self.resolve(stack, arg["StackName"])
            if other not in self.templates:
                raise Unresolvable(f"Fn::GetStackOutput names unknown stack {other}")
            return self.output(other, self.resolve(stack, arg["OutputName"]))
        if name == "Fn::ImportValue":
            return self.export(self.resolve(stack, arg))
        if name.startswith("Fn::") or name == "Condition":
            raise Unresolvable(f"{stack}: {name} is not modelled")
        return {name: self.resolve(stack, arg)}

    def _sub(self, stack: str, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(stack, variables[name]))
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(stack, logical_id, attribute)
            return self.ref(stack, name)

        return re.sub(r"\$\{([^!}][^}]*)\}", replace, text)

    def manifest(self, stack: str, logical_id: str) -> list[dict]:
        """The Kubernetes objects of a KubernetesManifest resource (tokens resolved in place)."""
        raw = self.resolve(stack, self.resource(stack, logical_id)["Properties"]["Manifest"])
        return json.loads(raw) if isinstance(raw, str) else raw


# --- Lambda functions as deployed ------------------------------------------------------------------


@dataclass
class DeployedFunction:
    """One AWS::Lambda::Function: its handler, loaded from the code the template deploys, and its
    environment variables, set around every invocation as the Lambda runtime would have them."""

    stack: str
    logical_id: str
    environment: dict[str, str]
    handler: Callable[[dict, Any], Any]
    modules: types.SimpleNamespace | None = None

    def invoke(self, event: dict, context: Any = None) -> Any:
        with environment(self.environment):
            return self.handler(event, context)


@contextlib.contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def function_environment(stacks: Stacks, stack: str, logical_id: str) -> dict[str, str]:
    """Environment.Variables of the function; a variable whose value the models cannot resolve (a secret's
    ARN from another stack, say) keeps a placeholder naming the intrinsic: overrides replace those."""
    variables = stacks.resource(stack, logical_id)["Properties"].get("Environment", {}).get("Variables", {})
    resolved = {}
    for name, value in variables.items():
        try:
            resolved[name] = str(stacks.resolve(stack, value))
        except Unresolvable as exc:
            resolved[name] = f"<unresolved: {exc}>"
    return resolved


def asset_directory(stack_dir: Path, code: dict) -> Path:
    """The directory of the function's zip asset in the cloud assembly (<stack>.assets.json maps its hash)."""
    key = code.get("S3Key")
    if not isinstance(key, str) or not key.endswith(".zip"):
        raise Unresolvable(f"code {code} is not a zip asset")
    asset_hash = key.removesuffix(".zip")
    for manifest in stack_dir.glob("*.assets.json"):
        files = json.loads(manifest.read_text()).get("files", {})
        if asset_hash in files:
            return (stack_dir / files[asset_hash]["source"]["path"]).resolve()
    raise Unresolvable(f"asset {asset_hash} is in no assets manifest of {stack_dir}")


def source_folder(asset: Path, candidates: Path) -> Path:
    """The function folder whose modules the asset bundles byte for byte (the bundle adds pip packages)."""
    bundled = {p.name: p.read_bytes() for p in asset.glob("*.py")}  # pip adds top-level modules (six.py) too
    found = []
    for folder in sorted(p for p in candidates.iterdir() if p.is_dir()):
        own = {p.name: p.read_bytes() for p in folder.glob("*.py")}
        if own and all(bundled.get(name) == code for name, code in own.items()):
            found.append(folder)
    if len(found) == 1:
        return found[0]
    raise Unresolvable(
        f"no folder under {candidates} holds the modules of {asset.name} ({sorted(bundled)}): the synthesized "
        "assembly is older than the handler sources"
    )


def deployed_function(
    stacks: Stacks,
    stack: str,
    logical_id: str,
    *,
    stack_dir: Path,
    load_folder: Callable[[Path], types.SimpleNamespace],
    sources: Path,
    base_environment: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> DeployedFunction:
    """Load a function from what the template deploys.

    Inline code (Code.ZipFile) runs as written. An asset with only the function's own modules is imported
    from the assembly itself; one that also bundles pip packages (built for the Lambda runtime's platform)
    is imported from the function folder holding the very same modules, with this interpreter's packages.
    `load_folder` imports a folder's modules as Lambda would (tests/handlers/conftest.py:load_function);
    `overrides` replace variables that only mean something in AWS (a secret ARN, TLS to RDS).
    """
    properties = stacks.resource(stack, logical_id)["Properties"]
    variables = {**(base_environment or {}), **function_environment(stacks, stack, logical_id), **(overrides or {})}
    module_name, _, attribute = properties["Handler"].rpartition(".")
    code = properties["Code"]
    with environment(variables):
        if "ZipFile" in code:
            module = types.ModuleType(f"inline_{logical_id}")
            exec(compile(stacks.resolve(stack, code["ZipFile"]), f"<{stack}/{logical_id}>", "exec"), module.__dict__)
            modules = types.SimpleNamespace(**{module_name: module})
        else:
            asset = asset_directory(stack_dir, code)
            bundles_packages = any(asset.glob("*.dist-info"))
            modules = load_folder(source_folder(asset, sources) if bundles_packages else asset)
    handler = getattr(getattr(modules, module_name), attribute)
    return DeployedFunction(stack, logical_id, variables, handler, modules)

"""References that follow their producers across stacks.

Cross-stack references are weak (`Fn::GetStackOutput`, cdk.json) so that a producer can change or drop an
output without the export "deadly embrace". The price: CloudFormation updates only the resources whose
template changed, so when a producer resource is REPLACED (new id / ARN behind the same output name) a
consumer whose template did not change keeps the old value.

The fix: a consumer resource carries a fingerprint of the producers it reads, made of each producer's
stack, logical id and the values of its create-only properties (CloudFormation's own list, from the
resource provider schemas cfn-lint ships). Whenever a producer would be replaced, the fingerprint - and so
the consumer's template - changes in the same deploy, and CloudFormation re-reads every reference of that
consumer. Changes that update a producer in place keep its id, so they leave the consumer alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import jsii
import jsii._kernel
from aws_cdk import CfnResource, IStableStringProducer, Lazy, Stack, Stage
from constructs import IConstruct

FINGERPRINT_PROPERTY = "ProducerFingerprint"
SCHEMA_REGION = "us-east-1"


@cache
def create_only_paths(resource_type: str) -> tuple[str, ...]:
    """CloudFormation's create-only property paths of a resource type (`/properties/Port`, `/properties/A/B`)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type).schema
    return tuple(sorted(schema.get("createOnlyProperties", [])))


def create_only_properties(resource_type: str) -> tuple[str, ...]:
    """Top-level properties holding a create-only path (conservative: a nested create-only field counts
    for its whole property)."""
    return tuple(sorted({path.split("/")[2] for path in create_only_paths(resource_type)}))


def _python_name(cfn_name: str) -> str:
    """CloudFormation `VpcId` -> the L1 attribute `vpc_id` (jsii's snake_case)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cfn_name).lower()


def _cfn(producer: IConstruct) -> CfnResource:
    resource = producer if isinstance(producer, CfnResource) else producer.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{producer.node.path}: not a CloudFormation resource")
    return resource


def identity(producer: IConstruct, _seen: frozenset[str] = frozenset()) -> dict:
    """What changes exactly when CloudFormation would replace the producer (resolved in its own stack).

    Transitive: a create-only value that refers to another resource (a target group's VpcId) carries that
    resource's identity too, so replacing the VPC changes the fingerprint of everything built in it.
    """
    facts = _facts(producer)
    seen = _seen | {facts.logical_id}
    referenced = {
        target: identity(found, seen)
        for target in sorted(_referenced_ids(facts.values) - seen)
        if (found := facts.resources_by_logical_id().get(target)) is not None
    }
    return {
        "stack": facts.stack_name,
        "logicalId": facts.logical_id,
        "type": facts.resource_type,
        "createOnly": copy.deepcopy(facts.values),
        "references": referenced,
    }


@dataclass
class _Facts:
    """One producer as its fingerprint sees it, read from the jsii kernel (about 15 round trips)."""

    resource: CfnResource
    stack_name: str
    logical_id: str
    resource_type: str
    values: dict
    _index: dict[str, CfnResource] | None = None

    def resources_by_logical_id(self) -> dict[str, CfnResource]:
        if self._index is None:
            self._index = _resources_by_logical_id(self.resource)
        return self._index


def _read_facts(producer: IConstruct) -> _Facts:
    resource = _cfn(producer)
    stack = Stack.of(resource)
    resource_type = resource.cfn_resource_type
    values = {}
    for name in create_only_properties(resource_type):
        attribute = _python_name(name)
        if not hasattr(resource, attribute):
            raise AttributeError(f"{resource.node.path}: {resource_type} has no attribute {attribute}")
        values[name] = stack.resolve(getattr(resource, attribute))
    return _Facts(resource, stack.stack_name, stack.resolve(resource.logical_id), resource_type, values)


# The kernel call whose callbacks the facts below were read in, and those facts by producer.
_pass: tuple[object, dict[str, _Facts]] | None = None
_CALLBACK_LOOP = getattr(getattr(jsii, "_kernel", None), "_callback_till_result", None)


def _facts(producer: IConstruct) -> _Facts:
    """Read once per synthesis pass: a stage's fingerprints all resolve in callbacks of one kernel call
    (its synth), typically 9 producers x 116 consumers of 33 distinct resources. Re-reading them cost
    ~40,000 kernel round trips, a third of `make synth`'s CPU. Outside such a call (a test resolving, mutating a
    producer and resolving again) nothing is reused.
    """
    global _pass
    scope = _outermost_kernel_call()
    if scope is None:
        return _read_facts(producer)
    if _pass is None or _pass[0] is not scope:
        _pass = (scope, {})
    key = producer.__jsii_ref__.ref
    facts = _pass[1].get(key)
    if facts is None:
        facts = _pass[1][key] = _read_facts(producer)
    return facts


def _outermost_kernel_call() -> object | None:
    """The frame of the outermost jsii call this code runs in a callback of (None outside a callback, or on a
    jsii runtime without `_callback_till_result`: then nothing is reused, which is only slower)."""
    frame, outer = sys._getframe(1), None
    code = getattr(_CALLBACK_LOOP, "__code__", None)
    while frame is not None:
        if frame.f_code is code:
            outer = frame
        frame = frame.f_back
    return outer


def _referenced_ids(value: object) -> set[str]:
    if isinstance(value, dict):
        found = set()
        if isinstance(value.get("Ref"), str):
            found.add(value["Ref"])
        if isinstance(value.get("Fn::GetAtt"), list):
            found.add(value["Fn::GetAtt"][0])
        for item in value.values():
            found |= _referenced_ids(item)
        return found
    if isinstance(value, list):
        return set().union(*(_referenced_ids(item) for item in value)) if value else set()
    return set()


def _resources_by_logical_id(resource: CfnResource) -> dict[str, CfnResource]:
    """Every CloudFormation resource of the producer's stage (references may cross its stacks); built once
    per stage, when the first fingerprint resolves (the construct tree is complete by then)."""
    root = Stage.of(resource) or resource.node.root
    index = getattr(root, "_erp_resources_by_logical_id", None)
    if index is None:
        found = [c for c in root.node.find_all() if isinstance(c, CfnResource)]
        # A logical id resolves alike in any stack (a lazy value of its own element): one resolve for the whole
        # stage instead of three kernel round trips per resource (~1,000 per stage).
        logical_ids = Stack.of(resource).resolve([c.logical_id for c in found])
        index = dict(zip(logical_ids, found, strict=True))
        root._erp_resources_by_logical_id = index
    return index


@jsii.implements(IStableStringProducer)
class _Fingerprint:
    def __init__(self, producers: tuple[IConstruct, ...]) -> None:
        self.producers = producers

    def produce(self) -> str:
        identities = sorted((identity(p) for p in self.producers), key=lambda i: (i["stack"], i["logicalId"]))
        return hashlib.sha256(json.dumps(identities, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(producers: Iterable[IConstruct]) -> str:
    """A token: 16 hex digits that change whenever any of the producers would be replaced."""
    return Lazy.string(_Fingerprint(tuple(producers)))


def follow(consumer: IConstruct, producers: Iterable[IConstruct]) -> None:
    """Make a custom resource (e.g. a KubernetesManifest) re-apply whenever a producer it reads is replaced.

    Custom resources pass unknown properties to their handler, which ignores them; native resources would
    reject one, so they are refused here.
    """
    resource = _cfn(consumer)
    if not resource.cfn_resource_type.startswith("Custom::"):
        raise TypeError(f"{resource.node.path}: only custom resources can carry {FINGERPRINT_PROPERTY}")
    resource.add_property_override(FINGERPRINT_PROPERTY, fingerprint(producers))

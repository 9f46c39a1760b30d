"""What the Workloads manifests read from the running cluster before they apply (issue 18 items 15 and 19).

`WebhooksReady`: the add-ons' admission webhooks refuse (failurePolicy Fail) every TargetGroupBinding,
ExternalSecret, ClusterSecretStore and every pod of the erp namespace while their Deployment has no available
pod: a night-time stage, nodes just woken, a controller still starting after its Helm release. Each
manifest therefore waits until every webhook Deployment reports an available replica. The Helm releases wait
for their pods too (helm_addon.py), but only when the release itself changes; this gate runs whenever the
manifests change (its `ManifestsDigest` property is a digest of what they apply), so every deploy that goes
through the webhooks checks first. A KubernetesObjectValue polls `kubectl get` until the value is non-empty
(`.status.availableReplicas` is absent while it is 0) and fails the deploy after GATE_TIMEOUT, before any
manifest is touched.

`api_server_service_ip`: the ClusterIP of `default/kubernetes`, which in-cluster API clients dial; EKS picks the
service range itself when none is configured and CloudFormation exposes no attribute for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import jsii
from aws_cdk import CfnResource, Duration, IStableStringProducer, Lazy, Stack
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct, IConstruct

from constructs_lib.common.reference_fingerprint import fingerprint
from k8s_charts.addon_policies import ADDON_PODS

GATE_TIMEOUT = Duration.minutes(10)
DIGEST_PROPERTY = "ManifestsDigest"


@jsii.implements(IStableStringProducer)
class _Digest:
    def __init__(self, stack: Stack, manifests: object, producers: tuple[IConstruct, ...]) -> None:
        self.stack, self.manifests, self.producers = stack, manifests, producers

    def produce(self) -> str:
        resolved = self.stack.resolve([self.manifests, fingerprint(self.producers)])
        return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


class WebhooksReady(Construct):
    """One readiness check per add-on Deployment that serves an admission webhook."""

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster) -> None:
        super().__init__(scope, id)
        self.checks: dict[str, eks.KubernetesObjectValue] = {}
        for pod in ADDON_PODS:
            if pod.webhook_port is None:
                continue
            self.checks[pod.deployment] = eks.KubernetesObjectValue(
                self,
                pod.deployment,
                cluster=cluster,
                object_type="deployment",
                object_name=pod.deployment,
                object_namespace=pod.namespace,
                json_path=".status.availableReplicas",
                timeout=GATE_TIMEOUT,
            )

    def follow(self, manifests: object, producers: Iterable[IConstruct]) -> None:
        """Re-run the checks whenever `manifests` (what the Workloads stack applies) or a producer they read change."""
        digest = Lazy.string(_Digest(Stack.of(self), manifests, tuple(producers)))
        for check in self.checks.values():
            resource = check.node.find_child("Resource").node.default_child
            assert isinstance(resource, CfnResource)
            resource.add_property_override(DIGEST_PROPERTY, digest)


def api_server_service_ip(scope: Construct, id: str, *, cluster: eks.ICluster) -> str:
    return eks.KubernetesObjectValue(
        scope,
        id,
        cluster=cluster,
        object_type="service",
        object_name="kubernetes",
        object_namespace="default",
        json_path=".spec.clusterIP",
    ).value

"""Refuses, before the control plane is touched, a kubernetes_version EKS would refuse half-way through a deploy.

EKS upgrades a cluster one minor at a time and never downgrades. Config alone cannot see what runs (a minor in
SUPPORTED_KUBERNETES may still be a step back, or two ahead of a cluster left behind); CloudFormation would learn
it only at the cluster's UpdateClusterVersion, after other resources of the stack changed. This custom resource
reads the live version (DescribeCluster) and fails first, with one line, when the configured one is a downgrade
or more than one minor ahead; the cluster depends on it, so the update rolls back before anything else moves.
Inline (CloudFormation provides `cfnresponse` to inline Python only), no dependencies.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs_lib.common.python_function import PythonFunction

GUARD_TYPE = "Custom::KubernetesVersionGuard"

GUARD_CODE = '''
import boto3
import cfnresponse


def _minor(version):
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def verdict(current, target):
    """None when target may follow current (same, next minor, or no cluster yet); else why not, one line."""
    if current is None or current == target:
        return None
    (c_major, c_minor), (t_major, t_minor) = _minor(current), _minor(target)
    if (t_major, t_minor) < (c_major, c_minor):
        return (
            f"kubernetes_version {target} is older than the running cluster's {current}: EKS cannot downgrade "
            "a cluster (set it back to " + current + ")"
        )
    if t_major != c_major or t_minor - c_minor > 1:
        return (
            f"kubernetes_version {target} is {t_minor - c_minor} minors past the running cluster's {current}: "
            f"EKS upgrades one minor at a time (set {c_major}.{c_minor + 1} first)"
        )
    return None


def running_version(eks, name):
    try:
        return eks.describe_cluster(name=name)["cluster"]["version"]
    except eks.exceptions.ResourceNotFoundException:
        return None


def handler(event, context):
    props = event["ResourceProperties"]
    physical = "kubernetes-version-guard-" + props["ClusterName"]
    if event["RequestType"] == "Delete":
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, physical)
        return
    try:
        current = running_version(boto3.client("eks"), props["ClusterName"])
        problem = verdict(current, props["Version"])
    except Exception as error:
        problem = f"cannot read the cluster's version: {error}"
    if problem:
        print(problem)
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, physical, reason=problem)
    else:
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {"Running": str(current)}, physical)
'''


class KubernetesVersionGuard(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster_name: str,
        version: str,
        log_retention_days: int,
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        self.handler = PythonFunction(
            self,
            "Handler",
            description=f"{cluster_name}: refuses a Kubernetes downgrade or a jump of more than one minor (deploy time)",
            inline_code=GUARD_CODE,
            memory_mb=128,
            timeout=Duration.minutes(1),
            log_retention_days=log_retention_days,
            production=production,
        )
        stack = Stack.of(self)
        self.handler.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["eks:DescribeCluster"],
                resources=[stack.format_arn(service="eks", resource="cluster", resource_name=cluster_name)],
            )
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.handler.function.function_arn,
            resource_type=GUARD_TYPE,
            properties={"ClusterName": cluster_name, "Version": version},
        )

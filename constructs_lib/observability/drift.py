"""The daily drift check (issue 20, item 4): CloudFormation drift of every stack of the environment and orphaned
objects in its cluster, reported to the alarm topic (the handler is lambda_handlers/drift_check).

It lives with the cluster's manifests (the Workloads stack): it reads the cluster's API from inside the VPC like
the workload health reporter, and needs the charts to know which namespaces and kinds the platform writes. The
alarm topic is addressed by its name (`<prefix>-alarms`, stacks/observability.py): no export ties the two stacks.

Least privilege, and where it stops:
- CloudFormation drift detection reads every resource with the caller's own permissions. The role may read
  exactly what the read handlers of the environment's resource types call (`handlers.read.permissions` of
  CloudFormation's resource provider schemas, as the pinned cfn-lint ships them), their Describe/Get/List actions
  only: never object bodies, secret values, decryption or the handlers' odd writes (DATA_READS). The list is
  made at synth, from the finished stage. Those reads take no resource scope (`*`). Drift detection itself may run on this environment's stacks only.
- In the cluster: an EKS access entry with AmazonEKSViewPolicy on the platform's namespaces only. That policy
  lists no custom resources (TargetGroupBinding, ExternalSecret) and no cluster-scoped objects: those are not
  checked for orphans, and the handler names the kinds it could not list.
- sns:Publish on the alarm topic, and its KMS key only through SNS for that topic (encryption context).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import CfnResource, Duration, IStableListProducer, Lazy, Stack, Stage, TimeZone, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct, IValidation

from config.models import EnvironmentConfig
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.reference_fingerprint import SCHEMA_REGION
from constructs_lib.observability.alarms import paging_alarm
from k8s_charts.common import new_chart
from k8s_charts.manifests import INVENTORY_PREFIX

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "drift_check"
SERVICE_NAME = "drift-check"
VIEW_POLICY = "AmazonEKSViewPolicy"
METRIC_NAMES = ("DriftedStacks", "OrphanedObjects", "DriftCheckFailures")
TIMEOUT = Duration.minutes(15)
# Drift detection may run this long; the handler keeps a minute back for the report.
MAX_WAIT_SECONDS = 780
# Lambda's 4 KB for all environment variables: what the CA bundle and endpoint (deploy-time values) leave.
ENVIRONMENT_BUDGET = 4096 - 2300
# A managed policy holds 6,144 characters (whitespace not counted).
MANAGED_POLICY_LIMIT = 6144
READ_VERBS = ("Describe", "Get", "List")
# Reads that return data rather than configuration; a read handler that lists one (the API's import body, a
# secret attachment's value) leaves that resource unchecked rather than the role able to read it.
DATA_READS = ("s3:GetObject*", "secretsmanager:GetSecretValue", "logs:GetLogEvents", "ecr:GetDownloadUrlForLayer")


def alarm_topic_name(config: EnvironmentConfig) -> str:
    """The name stacks/observability.py gives the alarm topic."""
    return f"{config.resource_prefix}-alarms"


def metrics_namespace(config: EnvironmentConfig) -> str:
    return f"{config.project}/{config.name}/drift"


def drift_function_name(config: EnvironmentConfig) -> str:
    """Fixed, so the Observability stack's failure alarm watches it by name (stacks deploy independently)."""
    return f"{config.resource_prefix}-drift-check"


def drift_failed_alarm(
    scope: Construct, config: EnvironmentConfig, action: cloudwatch.IAlarmAction
) -> cloudwatch.Alarm:
    """A failed or timed-out run: drift and orphans went unchecked today. Built in the Observability stack."""
    errors = cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name="Errors",
        dimensions_map={"FunctionName": drift_function_name(config)},
        statistic="Sum",
        period=Duration.minutes(5),
    )
    return paging_alarm(
        scope,
        "DriftCheckFailed",
        action=action,
        alarm_name=f"{config.resource_prefix}-drift-check-failed",
        alarm_description=(
            "The daily drift check failed or timed out: drift and orphans went unchecked today "
            f"(log group of {drift_function_name(config)}; lambda_handlers/drift_check)"
        ),
        metric=errors,
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def drift_metric(config: EnvironmentConfig, name: str) -> cloudwatch.Metric:
    """One of METRIC_NAMES as the handler writes it (Powertools adds the `service` dimension), for a dashboard."""
    if name not in METRIC_NAMES:
        raise ValueError(f"{name}: the drift check writes {', '.join(METRIC_NAMES)}")
    return cloudwatch.Metric(
        namespace=metrics_namespace(config),
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic="Maximum",
        period=Duration.days(1),
    )


def environment_stacks(scope: Construct) -> list[Stack]:
    """Every stack of the stage `scope` is in (the edge stack in us-east-1 included)."""
    return [child for child in Stage.of(scope).node.children if isinstance(child, Stack)]


def resource_types(stacks: Iterable[Stack]) -> set[str]:
    """The CloudFormation types in these stacks. An L1 class names its type (one kernel call per class); only a
    plain CfnResource (custom resources) is asked one by one: ~1,300 kernel round trips fewer per synth."""
    by_class: dict[type, str] = {}
    types = set()
    for stack in stacks:
        for found in stack.node.find_all():
            if not isinstance(found, CfnResource):
                continue
            cls = type(found)
            if "CFN_RESOURCE_TYPE_NAME" not in vars(cls):
                types.add(found.cfn_resource_type)
                continue
            if cls not in by_class:
                by_class[cls] = cls.CFN_RESOURCE_TYPE_NAME
            types.add(by_class[cls])
    return types


def read_actions(stacks: Iterable[Stack]) -> list[str]:
    """What drift detection needs to read every resource of these stacks: the Describe/Get/List actions of their
    types' read handlers, data reads left out."""
    from cfnlint.data import AdditionalSpecs
    from cfnlint.helpers import load_resource
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    # IAM's own catalogue (as cfn-lint ships it): a schema may name an action IAM does not know.
    known = {
        f"{service}:{action}"
        for service, spec in load_resource(AdditionalSpecs, "Policies.json").items()
        for action in spec.get("Actions", {})
    }
    types = resource_types(stacks)
    actions = set()
    for resource_type in types:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type).schema
        for action in schema.get("handlers", {}).get("read", {}).get("permissions", []):
            service, _, name = action.partition(":")
            if (name.startswith(READ_VERBS) or action == "apigateway:GET") and action.lower() in known:
                actions.add(f"{service}:{name}")
    return sorted(a for a in actions if not any(fnmatch.fnmatch(a.lower(), d.lower()) for d in DATA_READS))


def cluster_scope(charts: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list[str], list[str]]:
    """(namespaces the charts write to, their namespaced kinds as `apiVersion/Kind`)."""
    namespaced = [m for objects in charts.values() for m in objects if m.get("metadata", {}).get("namespace")]
    return (
        sorted({m["metadata"]["namespace"] for m in namespaced}),
        sorted({f"{m['apiVersion']}/{m['kind']}" for m in namespaced}),
    )


class DriftCheck(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        cluster: eks.ICluster,
        vpc: ec2.IVpc,
        charts: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.stacks = [(s.stack_name, s.region) for s in environment_stacks(self)]
        # A stack added to the stage after this construct would go unchecked: synth refuses instead.
        self.node.add_validation(_AllStacksChecked(self))
        self.topic = sns.Topic.from_topic_arn(
            self, "AlarmTopic", stack.format_arn(service="sns", resource=alarm_topic_name(config))
        )
        namespaces, kinds = cluster_scope(charts)
        self.namespaces, self.kinds = namespaces, kinds
        selector = ",".join(f"{k}={v}" for k, v in sorted(new_chart(config, "drift").labels.items()))
        environment = {
            "ENVIRONMENT": config.resource_prefix,
            "STACKS": json.dumps(self.stacks, separators=(",", ":")),
            "TOPIC_ARN": self.topic.topic_arn,
            "MAX_WAIT_SECONDS": str(MAX_WAIT_SECONDS),
            "INVENTORY_NAMESPACE": config.namespace,
            "INVENTORY": json.dumps([f"{INVENTORY_PREFIX}{chart}" for chart in charts], separators=(",", ":")),
            "NAMESPACES": json.dumps(namespaces, separators=(",", ":")),
            "KINDS": json.dumps(kinds, separators=(",", ":")),
            "LABEL_SELECTOR": selector,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace(config),
        }
        size = sum(len(k) + len(v) for k, v in environment.items() if not Token.is_unresolved(v))
        if size > ENVIRONMENT_BUDGET:
            raise ValueError(f"drift check environment is {size} bytes; with the cluster's CA it exceeds 4 KB")

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Drift check: HTTPS to the cluster API and the AWS APIs",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Kubernetes API, AWS APIs")
        # In this stack (the cluster's group belongs to the Cluster stack, which must not depend on this one).
        ec2.CfnSecurityGroupIngress(
            self,
            "ToKubernetesApi",
            group_id=cluster.cluster_security_group_id,
            source_security_group_id=self.security_group.security_group_id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="drift check reads the Kubernetes API",
        )
        self.function = PythonFunction(
            self,
            "Function",
            function_name=drift_function_name(config),
            description=f"Daily drift check of {config.resource_prefix}: CloudFormation drift and orphaned objects",
            entry=HANDLER_DIR,
            environment={
                **environment,
                "CLUSTER_NAME": cluster.cluster_name,
                "ENDPOINT": cluster.cluster_endpoint,
                "CA_DATA": cluster.cluster_certificate_authority_data,
            },
            timeout=TIMEOUT,
            log_retention_days=config.observability.log_retention_days,
            production=config.production,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.security_group,
        )
        # A failed run is not retried (it would start every detection again): the alarm below says it failed.
        self.function.function.configure_async_invoke(retry_attempts=0)
        self._grant(config, stack)
        self.access = eks.AccessEntry(
            self,
            "ClusterView",
            cluster=cluster,
            principal=self.function.role.role_arn,
            access_policies=[
                eks.AccessPolicy.from_access_policy_name(
                    VIEW_POLICY, access_scope_type=eks.AccessScopeType.NAMESPACE, namespaces=namespaces
                )
            ],
        )
        self.schedule = self._schedule(config, stack)

    def stack_arn(self, name: str, region: str) -> str:
        return Stack.of(self).format_arn(
            service="cloudformation", region=region, resource="stack", resource_name=f"{name}/*"
        )

    def _grant(self, config: EnvironmentConfig, stack: Stack) -> None:
        role = self.function.role
        # Made at synth, when every resource of the stage exists (this construct's own included).
        actions = Lazy.list(_ReadActions(self))
        self.reads = iam.ManagedPolicy(
            self,
            "Reads",
            description=f"What CloudFormation drift detection reads in the stacks of {config.resource_prefix}",
            statements=[iam.PolicyStatement(sid="ReadForDriftDetection", actions=actions, resources=["*"])],
            roles=[role],
        )
        acknowledge(
            self.reads,
            "AwsSolutions-IAM5[Resource::*]",
            "Read-handler actions of every resource type of the environment's stacks: configuration reads only.",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DetectDriftOfThisEnvironment",
                actions=["cloudformation:DetectStackDrift", "cloudformation:DescribeStackResourceDrifts"],
                resources=[self.stack_arn(name, region) for name, region in self.stacks],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDetectionStatus",
                actions=["cloudformation:DescribeStackDriftDetectionStatus"],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="PublishReport", actions=["sns:Publish"], resources=[self.topic.topic_arn])
        )
        # The topic's key (stacks/observability.py) is used by SNS on this function's behalf, for this topic only.
        key_arn = stack.format_arn(service="kms", resource="key", resource_name="*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptForTheTopic",
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=[key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"sns.{stack.region}.{stack.url_suffix}",
                        "kms:EncryptionContext:aws:sns:topicArn": self.topic.topic_arn,
                    }
                },
            )
        )
        # The ARNs as cdk-nag prints them (a pseudo parameter CDK could not resolve shows as <AWS::...>).
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "DescribeStackDriftDetectionStatus takes no resource; the detection id it reads is this run's.",
        )
        for name, region in self.stacks:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:{partition}:cloudformation:{region}:{account}:stack/{name}/*]",
                "A stack ARN ends in the id CloudFormation generates; the name pins this environment's stack.",
            )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:{partition}:kms:{stack.region}:{account}:key/*]",
            "The alarm topic's key id is another stack's; only SNS may use it, for the alarm topic's messages.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "SNS picks the data-key variant when it encrypts a message for the alarm topic.",
        )

    def _schedule(self, config: EnvironmentConfig, stack: Stack) -> scheduler.Schedule | None:
        drift = config.observability.drift
        if not drift.enabled:
            return None
        schedule = scheduler.Schedule(
            self,
            "Daily",
            description=f"Drift check of {config.resource_prefix} ({drift.schedule} {drift.timezone})",
            schedule=scheduler.ScheduleExpression.expression(drift.schedule, time_zone=TimeZone.of(drift.timezone)),
            target=targets.LambdaInvoke(self.function.function, retry_attempts=0),
        )
        for child in stack.node.children:
            if child.node.id.startswith("SchedulerRoleForTarget"):
                acknowledge(
                    child,
                    f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.function.function.node.default_child)}.Arn>:*]",
                    "Scheduler's role may invoke the drift check function's versions and aliases only.",
                )
        return schedule


@jsii.implements(IStableListProducer)
class _ReadActions:
    def __init__(self, scope: Construct) -> None:
        self.scope = scope

    def produce(self) -> list[str]:
        return read_actions(environment_stacks(self.scope))


@jsii.implements(IValidation)
class _AllStacksChecked:
    """Fails synth when the stage gained a stack after the drift check was built (it would go unchecked), or when
    the read policy outgrew a managed policy."""

    def __init__(self, check: DriftCheck) -> None:
        self.check = check

    def validate(self) -> list[str]:
        stacks = environment_stacks(self.check)
        errors = []
        missing = sorted({s.stack_name for s in stacks} - {name for name, _ in self.check.stacks})
        if missing:
            errors.append(f"the drift check does not cover {', '.join(missing)}: build it after every stack")
        size = len(json.dumps(read_actions(stacks), separators=(",", ":"))) + 100  # statement and version
        if size > MANAGED_POLICY_LIMIT:
            errors.append(f"the drift read policy is {size} characters: split it (a managed policy holds 6,144)")
        return errors

"""AWS Backup of the data tier: an encrypted (and, in prod, locked) vault, a plan from config, and two selections.

- The database is selected by a tag the platform sets on the instance (`erp:backup` = the environment's prefix,
  constructs_lib/data/database.py): a tag updates in place, and a restored or renamed instance is not picked up
  by accident.
- Kafka's volumes are created by the EBS CSI driver from the gp3 StorageClass; its parameters and the
  StatefulSet's volumeClaimTemplates are immutable, so the platform cannot add a tag of its own without
  replacing both. The selection matches the tags the driver itself writes on every volume it creates
  (k8s_charts/contracts/aws-ebs-csi-driver.yaml): driver-managed, the PVC's namespace (`erp-<env>`, unique to
  the environment) and the claim names of the StatefulSet (`data-kafka-<n>`), ANDed. The cluster-id tags
  (`KubernetesCluster`, `kubernetes.io/cluster/<id>`) are written only when the driver runs with
  --k8s-tag-cluster-id, which the chart leaves unset by default and the EKS add-on does not document: not used.

For EBS and RDS (types AWS Backup does not fully manage) a recovery point is a snapshot encrypted with the source's
own key; the vault's key encrypts the vault's metadata and the points of fully managed types. Restores are manual
or the drill's (README: Backups and restore).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from config.models import EnvironmentConfig
from config.sections import VaultLockConfig
from constructs_lib.cluster.kafka_volumes import CLAIM_TEMPLATE
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import retain_fixed_name
from k8s_charts import names

# Set on the DB instance by constructs_lib/data/database.py; the plan selects by it.
BACKUP_TAG_KEY = "erp:backup"
# What the EBS CSI driver writes on every volume it creates (k8s_charts/contracts/aws-ebs-csi-driver.yaml).
DRIVER_MANAGED_TAG = ("ebs.csi.aws.com/cluster", "true")
PVC_NAMESPACE_TAG = "kubernetes.io/created-for/pvc/namespace"
PVC_NAME_TAG = "kubernetes.io/created-for/pvc/name"
SERVICE_ROLE_POLICIES = ("AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores")


def backup_tag_value(config: EnvironmentConfig) -> str:
    return config.resource_prefix


def vault_name(config: EnvironmentConfig) -> str:
    return f"{config.resource_prefix}-backup"


def copy_vault_name(config: EnvironmentConfig) -> str:
    return f"{config.resource_prefix}-backup-copy"


def kafka_claim_pattern() -> str:
    """The StatefulSet controller names each broker's claim <template>-<statefulset>-<ordinal>."""
    return f"{CLAIM_TEMPLATE}-{names.KAFKA}-*"


def _lock(lock: VaultLockConfig | None) -> backup.LockConfiguration | None:
    if lock is None:
        return None
    return backup.LockConfiguration(
        min_retention=Duration.days(lock.min_retention_days),
        max_retention=Duration.days(lock.max_retention_days) if lock.max_retention_days else None,
        # Without ChangeableForDays the lock is governance mode; with it, compliance once the days have passed.
        changeable_for=Duration.days(lock.changeable_for_days) if lock.mode == "compliance" else None,
    )


class EncryptedVault(Construct):
    """A vault under its own rotating key, locked as config says.

    Prod keeps both when the stack goes (the key still decrypts what it encrypted; a named vault is kept but not
    after its own failed first create). Dev destroys them: deleting dev's backup stack needs its vault emptied
    first (CloudFormation cannot delete a vault that holds recovery points; README: Backups and restore)."""

    def __init__(self, scope: Construct, id: str, *, name: str, lock: VaultLockConfig | None, production: bool) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"AWS Backup vault {name}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY,
        )
        self.vault = backup.BackupVault(
            self,
            "Vault",
            backup_vault_name=name,
            encryption_key=self.key,
            lock_configuration=_lock(lock),
            removal_policy=retain_fixed_name(production),
        )


class ErpBackupPlan(Construct):
    """One plan per environment: a rule per config rule, copies to the second region's vault, two selections."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        vault: backup.IBackupVault,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        settings = config.backup
        self.copy_vault_arn: str | None = None
        copy_vault = None
        if settings.copy is not None:
            # Deterministic: the copy stack (another region) names its vault, so no cross-region reference.
            self.copy_vault_arn = stack.format_arn(
                service="backup",
                region=settings.copy.region,
                resource="backup-vault",
                resource_name=copy_vault_name(config),
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            copy_vault = backup.BackupVault.from_backup_vault_arn(self, "CopyVault", self.copy_vault_arn)
        rules = [
            backup.BackupPlanRule(
                rule_name=rule.name,
                schedule_expression=events.Schedule.expression(rule.schedule),
                schedule_expression_timezone=TimeZone.of(rule.timezone),
                start_window=Duration.minutes(rule.start_window_minutes),
                completion_window=Duration.minutes(rule.completion_window_minutes),
                delete_after=Duration.days(rule.retention_days),
                copy_actions=[
                    backup.BackupPlanCopyActionProps(
                        destination_backup_vault=copy_vault,
                        delete_after=Duration.days(settings.copy.retention_days),
                    )
                ]
                if copy_vault is not None and rule.copy
                else None,
            )
            for rule in settings.rules
        ]
        self.plan = backup.BackupPlan(
            self, "Plan", backup_plan_name=config.resource_prefix, backup_vault=vault, backup_plan_rules=rules
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            description=f"AWS Backup jobs of {config.resource_prefix}: snapshots and restores of its database and volumes",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(f"service-role/{name}") for name in SERVICE_ROLE_POLICIES
            ],
        )
        for name in SERVICE_ROLE_POLICIES:
            acknowledge(
                self.role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{name}]",
                "AWS-maintained service role policy for AWS Backup: it tracks the snapshot, copy and restore "
                "calls of every resource type the service supports.",
            )

        def equals(key: str, value: str) -> dict:
            return {"ConditionKey": f"aws:ResourceTag/{key}", "ConditionValue": value}

        self.database_selection = self._select(
            "Database",
            name=f"{config.resource_prefix}-database",
            resources=[
                stack.format_arn(
                    service="rds",
                    region="*",
                    account="*",
                    resource="db",
                    resource_name="*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            conditions={"StringEquals": [equals(BACKUP_TAG_KEY, backup_tag_value(config))]},
        )
        self.kafka_selection = self._select(
            "KafkaVolumes",
            name=f"{config.resource_prefix}-kafka-volumes",
            resources=[stack.format_arn(service="ec2", region="*", account="*", resource="volume", resource_name="*")],
            conditions={
                "StringEquals": [equals(*DRIVER_MANAGED_TAG), equals(PVC_NAMESPACE_TAG, config.namespace)],
                "StringLike": [equals(PVC_NAME_TAG, kafka_claim_pattern())],
            },
        )

    def _select(self, id: str, *, name: str, resources: list[str], conditions: dict) -> backup.CfnBackupSelection:
        """Resources AND every condition (AWS Backup ANDs Conditions; ListOfTags would OR)."""
        return backup.CfnBackupSelection(
            self,
            id,
            backup_plan_id=self.plan.backup_plan_id,
            backup_selection=backup.CfnBackupSelection.BackupSelectionResourceTypeProperty(
                selection_name=name,
                iam_role_arn=self.role.role_arn,
                resources=resources,
                conditions=conditions,
            ),
        )

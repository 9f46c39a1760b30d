"""Backups of the data tier (issue 21): the vault and plan in the environment's region, the copy vault in a second one,
and the restore drill that proves a recovery point restores."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.data.backup import EncryptedVault, ErpBackupPlan, copy_vault_name, vault_name
from constructs_lib.data.restore_drill import RestoreDrill
from stacks.data import DataEndpoints


class BackupStack(Stack):
    """Stateful in prod (its vault holds the recovery points): termination protection like the Data stack."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        data: DataEndpoints,
        live_secret: secretsmanager.ISecret,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, termination_protection=config.production, **kwargs)
        self.vault = EncryptedVault(
            self,
            "Vault",
            name=vault_name(config),
            lock=config.backup.vault_lock,
            production=config.production,
        )
        self.plan = ErpBackupPlan(self, "Plan", config=config, vault=self.vault.vault)

        self.drill = RestoreDrill(
            self,
            "RestoreDrill",
            config=config,
            vpc=vpc,
            database=data.database,
            database_security_group=data.database_security_group,
            live_secret=live_secret,
            vault=self.vault.vault,
        )


class BackupCopyStack(Stack):
    """The second region's vault (backup.copy.region): the last copy when the first region is lost, so protected
    like the Data stack (the pipeline's step acts in the stack's own region)."""

    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=config.production, **kwargs)
        self.vault = EncryptedVault(
            self,
            "Vault",
            name=copy_vault_name(config),
            lock=config.backup.vault_lock,
            production=config.production,
        )

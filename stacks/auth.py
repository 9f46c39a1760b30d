"""Auth tier (stateful): the user pool holds every account and MFA secret, so prod is protected from deletion."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.auth.user_pool import ErpUserPool
from constructs_lib.common.parameters import EnvParameters


class AuthStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=config.production, **kwargs)
        self.pool = ErpUserPool(
            self,
            "Users",
            config=config.auth,
            production=config.production,
            # Cognito domain prefixes are global per region: the account id keeps ours unique.
            domain_prefix=f"{config.resource_prefix}-{config.account}",
            log_retention_days=config.observability.log_retention_days,
            project=config.project,
        )
        self.user_pool = self.pool.user_pool
        self.user_pool_client = self.pool.client
        # What the SPA's build needs to sign people in.
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.user_pool_client.user_pool_client_id)
        CfnOutput(self, "SignInDomain", value=self.pool.domain.base_url())
        # Where `make user` (tools/user_admin.py) finds the pool, and the hosted page for setting a password.
        EnvParameters(
            self,
            "Parameters",
            prefix=f"{config.ssm_prefix}/auth",
            values={
                "user-pool-id": self.user_pool.user_pool_id,
                "user-pool-client-id": self.user_pool_client.user_pool_client_id,
                "sign-in-url": self.pool.domain.base_url(),
            },
        )

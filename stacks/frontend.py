"""Frontend tier (the environment's region, after Edge and Auth): what the browser app needs once the edge exists.

The managed sign-in pages' client (its return address is the edge's: constructs_lib/auth/sign_in_client.py) and
the parameters `make frontend` builds and publishes with (SSM /{project}/{env}/frontend/*, one place in one
region: the edge's values arrive by weak cross-region reference).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.auth.sign_in_client import SignInClient
from constructs_lib.common.parameters import EnvParameters
from stacks.edge import EdgeStack

# The parameter names tools/frontend.py and tools/user_admin.py read below {ssm_prefix}/frontend/.
FRONTEND_PARAMETERS = (
    "url",
    "user-pool-id",
    "user-pool-client-id",
    "region",
    "bucket",
    "bucket-region",
    "distribution-id",
    "sign-in-client-id",
)


class FrontendStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        edge: EdgeStack,
        user_pool: cognito.IUserPool,
        user_pool_client: cognito.IUserPoolClient,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.sign_in = SignInClient(
            self,
            "SignIn",
            user_pool=user_pool,
            edge_url=edge.url,
            extra_callback_urls=config.auth.callback_urls,
        )
        values = {
            "url": edge.url,
            "user-pool-id": user_pool.user_pool_id,
            "user-pool-client-id": user_pool_client.user_pool_client_id,
            "region": config.region,
            "bucket": edge.buckets.site.bucket_name,
            "bucket-region": edge.region,
            "distribution-id": edge.distribution.distribution.distribution_id,
            "sign-in-client-id": self.sign_in.client.user_pool_client_id,
        }
        assert tuple(values) == FRONTEND_PARAMETERS
        self.parameters = EnvParameters(self, "Parameters", prefix=f"{config.ssm_prefix}/frontend", values=values)

"""The app client of Cognito's managed sign-in pages, whose return address is the edge's.

The frontend signs in with SRP through its own client (constructs_lib/auth/user_pool.py), which has no OAuth
redirect at all. The managed pages are for what the frontend has no screen for: a person an administrator
created (`make user ... CREATE=1`) sets a password there, then lands on the frontend. Their return address
is the distribution's, which exists only after the Edge stack (itself after the Api stack, which needs the SPA
client for its authorizer): so this client lives in a stack after the edge, and follows its address by
reference. Tokens it issues are useless at the API: the authorizer accepts the SPA client's only.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from aws_cdk import Duration
from aws_cdk import aws_cognito as cognito
from constructs import Construct


def origin_of(url: str) -> str:
    """Sign-out returns to the app's root, not to an OAuth callback path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


class SignInClient(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        user_pool: cognito.IUserPool,
        edge_url: str,
        extra_callback_urls: Sequence[str],
    ) -> None:
        super().__init__(scope, id)
        home = f"{edge_url}/"
        self.client = cognito.UserPoolClient(
            self,
            "Client",
            user_pool=user_pool,
            generate_secret=False,
            # No API flow of its own: the managed pages sign people in; the SPA signs in with its own client.
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[home, *extra_callback_urls],
                logout_urls=[home, *sorted({origin_of(url) for url in extra_callback_urls} - {home})],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            # Short-lived like the SPA client's; nothing here needs to stay signed in.
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.hours(1),
        )

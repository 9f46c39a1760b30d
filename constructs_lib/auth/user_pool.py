"""The Cognito user pool people sign in to, its SPA client, and the pre-sign-up rule.

Essentials tier: its first 10k monthly active users are free, while Plus (the tier
with threat protection) bills every active user (~$0.02 each, no free tier). An ERP
with a few hundred staff gets MFA and a strong password policy instead.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from config.sections import AuthConfig
from constructs_lib.auth.waf import UserPoolRateLimit
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.python_function import PythonFunction

# Names without the "custom:" prefix. employeeId is a Number (the frontend reads it as one); mutable so an
# administrator can link an existing account to its employee record (Cognito cannot make it mutable later).
CUSTOM_ATTRIBUTES = {
    "position": cognito.StringAttribute(min_len=1, max_len=32, mutable=True),
    "department": cognito.StringAttribute(min_len=1, max_len=32, mutable=True),
    "employeeId": cognito.NumberAttribute(min=1, mutable=True),
}
CLIENT_WRITABLE = ("position", "department")
PRESIGNUP_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "presignup"
PRETOKEN_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "pretoken"


class ErpUserPool(Construct):
    """Email is the username; MFA (TOTP) per environment; self sign-up, auto-confirmed (never auto-verified)
    only for own domains; access tokens carry group scopes and a verified-only email (pre-token trigger)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: AuthConfig,
        production: bool,
        domain_prefix: str,
        log_retention_days: int,
        project: str,
    ) -> None:
        super().__init__(scope, id)
        self.presignup = PythonFunction(
            self,
            "PreSignUp",
            description="Cognito pre-sign-up: auto-confirms (never verifies) addresses on the allowed domains",
            entry=PRESIGNUP_DIR,
            handler="app.handler",
            environment={"ALLOWED_SIGNUP_DOMAINS": ",".join(d.lower() for d in config.allowed_signup_domains)},
            memory_mb=128,
            timeout=Duration.seconds(5),
            log_retention_days=log_retention_days,
            production=production,
        )
        required = config.mfa == "required"
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            self_sign_up_enabled=True,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            keep_original=cognito.KeepOriginalAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True),
                fullname=cognito.StandardAttribute(required=False, mutable=True),
            ),
            # What the ERP frontend signs up with and reads (../shared/erp-services.md section 1). Adding custom
            # attributes to a live pool works; removing, renaming or retyping one does not (Cognito keeps them).
            custom_attributes=CUSTOM_ATTRIBUTES,
            mfa=cognito.Mfa.REQUIRED if required else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            lambda_triggers=cognito.UserPoolTriggers(pre_sign_up=self.presignup.function),
            deletion_protection=production,
            # The pool holds every account and its MFA secret: losing it locks everyone out.
            removal_policy=RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY,
        )
        # Scopes f"{project}/{group}" and a verified-only `email` claim in ACCESS tokens (event V2_0: Essentials
        # tier and up). The gateway's group routes and the employee Lambda rely on both (shared contract).
        self.pretoken = PythonFunction(
            self,
            "PreTokenGeneration",
            description="Cognito pre-token-generation: group scopes and a verified-only email in access tokens",
            entry=PRETOKEN_DIR,
            handler="app.handler",
            environment={"PROJECT": project},
            memory_mb=128,
            timeout=Duration.seconds(5),
            log_retention_days=log_retention_days,
            production=production,
        )
        self.user_pool.add_trigger(
            cognito.UserPoolOperation.PRE_TOKEN_GENERATION_CONFIG,
            self.pretoken.function,
            cognito.LambdaVersion.V2_0,
        )
        # The privileged groups (config): they exist from the first deploy, and membership is granted only by an
        # administrator (admin-add-user-to-group); sign-up never adds anyone.
        self.groups = {
            name: cognito.CfnUserPoolGroup(
                self,
                f"Group-{name}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=name,
                description=f"{'administrators' if name in config.admin_groups else 'managers'}: scope {project}/{name}",
                precedence=0 if name in config.admin_groups else 10,
            )
            for name in dict.fromkeys([*config.admin_groups, *config.manager_groups])
        }
        self.rate_limit = None
        if config.signin_rate_limit is not None:
            self.rate_limit = UserPoolRateLimit(
                self,
                "RateLimit",
                user_pool_arn=self.user_pool.user_pool_arn,
                name=f"{domain_prefix}-auth-rate-limit",
                limit=config.signin_rate_limit,
            )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "Plus tier (threat protection) bills every active user with no free tier; Essentials + MFA for now.",
        )
        if not required:
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG2",
                "MFA is optional outside production only; config/prod.yaml sets auth.mfa: required.",
            )
        # The hosted sign-in pages: the authorization-code grant needs /oauth2/authorize somewhere.
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix)
        )
        self.client = self.user_pool.add_client(
            "SpaClient",
            generate_secret=False,  # a browser cannot keep one; PKCE protects the code instead
            # admin_user_password: IAM-gated (cognito-idp:AdminInitiateAuth), lets operators get a token from the CLI.
            auth_flows=cognito.AuthFlow(user_srp=True, admin_user_password=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=config.callback_urls,
                logout_urls=sorted({_origin(url) for url in config.callback_urls}),
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            # The SPA writes position and department at sign-up and reads all three; custom:employeeId is
            # written only by administrators / the platform (AdminUpdateUserAttributes), never by the user.
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True, fullname=True)
            .with_custom_attributes(*CUSTOM_ATTRIBUTES),
            # Users may write only these; email_verified, groups and custom:employeeId stay with Cognito and admins.
            write_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, fullname=True)
            .with_custom_attributes(*CLIENT_WRITABLE),
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            # One working day: people sign in (with MFA) each morning, not once a month.
            refresh_token_validity=Duration.hours(12),
        )


def _origin(url: str) -> str:
    """Sign-out returns to the app's root, not to its OAuth callback."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"

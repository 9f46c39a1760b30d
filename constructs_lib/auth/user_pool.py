"""The Cognito user pool people sign in to, its SPA client, and the sign-up rules.

Fits the ERP frontend as built (../shared/erp-services.md section 7): it signs up with the
email as username, then says "check your email" and has no code, MFA or new-password
screen. So an address is proved by the LINK in the sign-up mail (Cognito confirms the
account and verifies the address when it is opened), nothing is auto-confirmed, and
admin-created accounts set their password on Cognito's hosted page.

Essentials tier unless threat protection is on: its first 10k monthly active users are
free, while Plus bills every active user (~$0.02 each, no free tier).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from config.sections import AuthConfig, AuthEmailConfig
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


# The sign-up mail: opening the link confirms the account AND verifies the address, so whoever signs up with a
# colleague's address gets nothing without the colleague's mailbox.
VERIFICATION_SUBJECT = "Confirm your ERP account"
VERIFICATION_BODY = (
    "Someone (hopefully you) signed up for the ERP with this address. {##Confirm your account##} to start using it."
    " If it was not you, ignore this mail: nobody can sign in to the account until this link is opened."
)
INVITATION_SUBJECT = "Your ERP account"
INVITATION_BODY = (
    "An administrator created your ERP account {username} with the temporary password {####}."
    " Set your own password on the sign-in page your administrator sent you, then sign in to the ERP."
)
THREAT_PROTECTION = {
    "audit": cognito.StandardThreatProtectionMode.AUDIT_ONLY,
    "enforced": cognito.StandardThreatProtectionMode.FULL_FUNCTION,
}


class ErpUserPool(Construct):
    """Email is the username; self sign-up only for own mail domains, confirmed by the mail's link; TOTP per
    environment; access tokens carry a verified-identity scope, group scopes and a verified-only email
    (pre-token trigger)."""

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
            description="Cognito pre-sign-up: refuses addresses outside the allowed mail domains; confirms nobody",
            entry=PRESIGNUP_DIR,
            handler="app.handler",
            environment={"ALLOWED_SIGNUP_DOMAINS": ",".join(d.lower() for d in config.allowed_signup_domains)},
            memory_mb=128,
            timeout=Duration.seconds(5),
            log_retention_days=log_retention_days,
            production=production,
        )
        required = config.mfa == "required"
        plus = config.threat_protection != "off"
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            feature_plan=cognito.FeaturePlan.PLUS if plus else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=THREAT_PROTECTION.get(config.threat_protection),
            # No allowed domain: nobody signs up; administrators create accounts (tools/user_admin.py).
            self_sign_up_enabled=config.self_sign_up,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            # Cognito mails the verification on sign-up; the link both confirms and verifies.
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            user_verification=cognito.UserVerificationConfig(
                email_style=cognito.VerificationEmailStyle.LINK,
                email_subject=VERIFICATION_SUBJECT,
                email_body=VERIFICATION_BODY,
            ),
            user_invitation=cognito.UserInvitationConfig(email_subject=INVITATION_SUBJECT, email_body=INVITATION_BODY),
            email=_sender(config.email),
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
                log_retention_days=log_retention_days,
                production=production,
            )
        if plus:
            self.risk = self._risk_actions(enforced=config.threat_protection == "enforced")
        else:
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG8",
                "Plus tier (threat protection) bills every active user with no free tier; auth.threat_protection "
                "turns it on (prod).",
            )
        if not required:
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG2",
                "Optional TOTP: the ERP frontend as built has no MFA screens (app-side change 03); sign-in is "
                "rate-limited by WAF and screened by threat protection in production instead.",
            )
        # The managed sign-in pages (their own client, after the edge: constructs_lib/auth/sign_in_client.py).
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix)
        )
        self.client = self.user_pool.add_client(
            "SpaClient",
            generate_secret=False,  # a browser cannot keep one
            # admin_user_password: IAM-gated (cognito-idp:AdminInitiateAuth), lets operators get a token from the CLI.
            auth_flows=cognito.AuthFlow(user_srp=True, admin_user_password=True),
            # The frontend signs in with SRP and never follows an OAuth redirect: no redirect to abuse.
            disable_o_auth=True,
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

    def _risk_actions(self, *, enforced: bool) -> cognito.CfnUserPoolRiskConfigurationAttachment:
        """Only answers the frontend can show (it prints err.message): BLOCK, never an MFA challenge it
        cannot answer. Leaked passwords are refused at sign-up, sign-in and password change; high-risk
        sign-ins are blocked. No risk mails (they would need their own SES notify setup)."""
        action = "BLOCK" if enforced else "NO_ACTION"
        quiet = {"eventAction": "NO_ACTION", "notify": False}
        return cognito.CfnUserPoolRiskConfigurationAttachment(
            self,
            "RiskActions",
            user_pool_id=self.user_pool.user_pool_id,
            client_id="ALL",
            compromised_credentials_risk_configuration={
                "actions": {"eventAction": action},
                "eventFilter": ["SIGN_IN", "SIGN_UP", "PASSWORD_CHANGE"],
            },
            account_takeover_risk_configuration={
                "actions": {
                    "highAction": {"eventAction": action, "notify": False},
                    "mediumAction": quiet,
                    "lowAction": quiet,
                }
            },
        )


def _sender(email: AuthEmailConfig | None) -> cognito.UserPoolEmail:
    """SES when configured (production); otherwise Cognito's own sender, about 50 mails a day per account."""
    if email is None:
        return cognito.UserPoolEmail.with_cognito()
    return cognito.UserPoolEmail.with_ses(
        from_email=email.from_address,
        from_name=email.from_name,
        ses_region=email.ses_region,
        ses_verified_domain=email.verified_domain,
    )

"""A rate limit on the prod user pool's sign-up and sign-in calls: a REGIONAL WAF web ACL on the pool.

Cognito's own answer (threat protection) needs the Plus tier, billed per active user with no free
tier (~$0.02/MAU); one web ACL with one rate-based rule costs ~$6/month + $0.60 per million requests
whatever the number of users, and blocks a flood of sign-ups or password guesses from one address
before Cognito sees it. It does not catch a slow, distributed credential-stuffing run (Plus would).

The association is a custom resource that retries until the new web ACL has propagated (lambda_handlers/
waf_association): AWS::WAFv2::WebACLAssociation failed the first create with WAFUnavailableEntityException
(issue 18 item 6).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from constructs_lib.common.python_function import PythonFunction
from constructs_lib.common.waf import visibility

ASSOCIATION_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "waf_association"
ASSOCIATION_TYPE = "Custom::WafWebAclAssociation"
# The handler retries until RESERVE_MS before this; CloudFormation gives up on the custom resource after
# ASSOCIATION_SERVICE_TIMEOUT (it would otherwise wait an hour for an answer that never comes).
ASSOCIATION_FUNCTION_TIMEOUT = Duration.minutes(10)
ASSOCIATION_SERVICE_TIMEOUT = Duration.minutes(12)

# Cognito's user-pool API calls (X-Amz-Target) that create accounts or try passwords or codes.
AUTH_TARGETS = (
    "SignUp",
    "ConfirmSignUp",
    "ResendConfirmationCode",
    "InitiateAuth",
    "RespondToAuthChallenge",
    "ForgotPassword",
    "ConfirmForgotPassword",
)
# The managed login pages (the SPA's authorization-code flow) that do the same.
AUTH_PATHS = ("/signup", "/login", "/confirmUser", "/forgotPassword", "/oauth2/token")


def _target(operation: str) -> dict:
    return {
        "byteMatchStatement": {
            "fieldToMatch": {"singleHeader": {"Name": "x-amz-target"}},
            "positionalConstraint": "EXACTLY",
            "searchString": f"AWSCognitoIdentityProviderService.{operation}",
            "textTransformations": [{"priority": 0, "type": "NONE"}],
        }
    }


def _path(prefix: str) -> dict:
    return {
        "byteMatchStatement": {
            "fieldToMatch": {"uriPath": {}},
            "positionalConstraint": "STARTS_WITH",
            "searchString": prefix,
            "textTransformations": [{"priority": 0, "type": "NONE"}],
        }
    }


class UserPoolRateLimit(Construct):
    """Blocks a client IP for the rest of a 5-minute window once it made `limit` sign-up/sign-in calls."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        user_pool_arn: str,
        name: str,
        limit: int,
        log_retention_days: int,
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            description="Rate limit on Cognito sign-up / sign-in per client IP",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(name),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="auth-calls-per-ip",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    visibility_config=visibility(f"{name}-auth-calls-per-ip"),
                    statement={
                        "rateBasedStatement": {
                            "aggregateKeyType": "IP",
                            "evaluationWindowSec": 300,
                            "limit": limit,
                            "scopeDownStatement": {
                                "orStatement": {"statements": [*map(_target, AUTH_TARGETS), *map(_path, AUTH_PATHS)]}
                            },
                        }
                    },
                )
            ],
        )
        self.association = WebAclAssociation(
            self,
            "Association",
            web_acl_arn=self.web_acl.attr_arn,
            resource_arn=user_pool_arn,
            log_retention_days=log_retention_days,
            production=production,
        )


class WebAclAssociation(Construct):
    """Associates a web ACL with a Cognito user pool, retrying WAFUnavailableEntityException until the ACL has
    propagated ("a few seconds to a few minutes"), within ASSOCIATION_FUNCTION_TIMEOUT; any other error, or
    still no propagation by then, fails the deploy."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        web_acl_arn: str,
        resource_arn: str,
        log_retention_days: int,
        production: bool,
    ) -> None:
        super().__init__(scope, id)
        self.handler = PythonFunction(
            self,
            "Handler",
            description="Associates the web ACL with the user pool once WAF has propagated it (deploy time only)",
            entry=ASSOCIATION_DIR,
            handler="app.handler",
            memory_mb=128,
            timeout=ASSOCIATION_FUNCTION_TIMEOUT,
            log_retention_days=log_retention_days,
            production=production,
        )
        # WAF authorizes the call against the web ACL and the resource; Cognito against the user pool.
        self.handler.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "wafv2:AssociateWebACL",
                    "wafv2:DisassociateWebACL",
                    "wafv2:GetWebACLForResource",
                    "wafv2:GetWebACL",
                ],
                resources=[web_acl_arn, resource_arn],
            )
        )
        self.handler.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "cognito-idp:AssociateWebACL",
                    "cognito-idp:DisassociateWebACL",
                    "cognito-idp:GetWebACLForResource",
                ],
                resources=[resource_arn],
            )
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.handler.function.function_arn,
            resource_type=ASSOCIATION_TYPE,
            properties={"WebAclArn": web_acl_arn, "ResourceArn": resource_arn},
            service_timeout=ASSOCIATION_SERVICE_TIMEOUT,
        )

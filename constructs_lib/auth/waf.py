"""A rate limit on the prod user pool's sign-up and sign-in calls: a REGIONAL WAF web ACL on the pool.

Cognito's own answer (threat protection) needs the Plus tier, billed per active user with no free
tier (~$0.02/MAU); one web ACL with one rate-based rule costs ~$6/month + $0.60 per million requests
whatever the number of users, and blocks a flood of sign-ups or password guesses from one address
before Cognito sees it. It does not catch a slow, distributed credential-stuffing run (Plus would).
"""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

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

    def __init__(self, scope: Construct, id: str, *, user_pool_arn: str, name: str, limit: int) -> None:
        super().__init__(scope, id)
        visibility = lambda metric: wafv2.CfnWebACL.VisibilityConfigProperty(  # noqa: E731
            cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
        )
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
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=user_pool_arn, web_acl_arn=self.web_acl.attr_arn
        )

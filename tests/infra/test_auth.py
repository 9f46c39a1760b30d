"""The auth tier per environment: who may sign up, how they sign in, and that prod keeps the pool."""

from __future__ import annotations

import json
import re

import pytest

from constructs_lib.common.python_function import build_bundle, has_packages, source_hash
from tests.conftest import properties_of, resources_of

ENVS = ["dev", "prod"]
# Renaming a construct must never replace the pool (every account and MFA secret is in it).
USER_POOL_LOGICAL_ID = "UsersUserPool7E610616"


def auth_template(stack_templates, env) -> dict:
    return stack_templates[f"erp-{env}-auth"]


def user_pool(stack_templates, env) -> dict:
    pool = auth_template(stack_templates, env)["Resources"].get(USER_POOL_LOGICAL_ID, {})
    assert pool.get("Type") == "AWS::Cognito::UserPool", f"{USER_POOL_LOGICAL_ID} moved: that would replace the pool"
    return pool


@pytest.mark.parametrize("env", ENVS)
def test_email_is_the_case_insensitive_username(stack_templates, env):
    props = user_pool(stack_templates, env)["Properties"]
    assert props["UsernameAttributes"] == ["email"]
    assert props["UsernameConfiguration"] == {"CaseSensitive": False}
    assert props["AutoVerifiedAttributes"] == ["email"]
    assert props["AccountRecoverySetting"] == {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]}


@pytest.mark.parametrize("env", ENVS)
def test_sign_up_is_confirmed_only_by_the_link_in_the_mail(stack_templates, configs, env):
    """The frontend has no code screen and says "check your email" (issue 17): the link confirms the account
    and verifies the address; self sign-up exists only while some mail domain is allowed."""
    props = user_pool(stack_templates, env)["Properties"]
    template = props["VerificationMessageTemplate"]
    assert template["DefaultEmailOption"] == "CONFIRM_WITH_LINK"
    assert re.search(r"\{##[^#]+##\}", template["EmailMessageByLink"]), "the link placeholder"
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is not configs[env].auth.self_sign_up


@pytest.mark.parametrize("env", ENVS)
def test_mail_goes_through_ses_where_configured(stack_templates, configs, env):
    mail = user_pool(stack_templates, env)["Properties"]["EmailConfiguration"]
    email = configs[env].auth.email
    if email is None:
        assert mail == {"EmailSendingAccount": "COGNITO_DEFAULT"}
        return
    assert mail["EmailSendingAccount"] == "DEVELOPER"
    identity = email.verified_domain or email.from_address
    assert mail["SourceArn"] == f"arn:aws:ses:{configs[env].region}:{configs[env].account}:identity/{identity}"
    assert email.from_address in mail["From"]


@pytest.mark.parametrize("env", ENVS)
def test_threat_protection_blocks_and_never_challenges(stack_templates, configs, env):
    """Plus tier only where configured; its actions are BLOCK or nothing, never an MFA challenge the frontend
    cannot answer."""
    props = user_pool(stack_templates, env)["Properties"]
    risks = properties_of(auth_template(stack_templates, env), "AWS::Cognito::UserPoolRiskConfigurationAttachment")
    mode = configs[env].auth.threat_protection
    assert props["UserPoolTier"] == ("ESSENTIALS" if mode == "off" else "PLUS")
    if mode == "off":
        assert "UserPoolAddOns" not in props and not risks
        return
    assert props["UserPoolAddOns"] == {"AdvancedSecurityMode": {"audit": "AUDIT", "enforced": "ENFORCED"}[mode]}
    (risk,) = risks
    actions = json.dumps(risk)
    assert "MFA" not in actions
    expected = "BLOCK" if mode == "enforced" else "NO_ACTION"
    assert risk["CompromisedCredentialsRiskConfiguration"]["Actions"]["EventAction"] == expected
    assert set(risk["CompromisedCredentialsRiskConfiguration"]["EventFilter"]) == {
        "SIGN_IN",
        "SIGN_UP",
        "PASSWORD_CHANGE",
    }
    assert risk["AccountTakeoverRiskConfiguration"]["Actions"]["HighAction"]["EventAction"] == expected


def test_prod_mfa_lets_the_unchanged_frontend_sign_in(configs):
    """Issue 17: "required" left every prod sign-in hanging (no mfaSetup/totpRequired callbacks in the
    frontend). Prod keeps the WAF rate limit and threat protection instead; "required" stays a switch."""
    prod = configs["prod"].auth
    assert prod.mfa == "optional" and prod.signin_rate_limit and prod.threat_protection == "enforced"


@pytest.mark.parametrize("env", ENVS)
def test_strong_password_policy(stack_templates, env):
    policy = user_pool(stack_templates, env)["Properties"]["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    assert all(policy[k] is True for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))


@pytest.mark.parametrize("env", ENVS)
def test_mfa_per_environment_totp_only(stack_templates, configs, env):
    props = user_pool(stack_templates, env)["Properties"]
    # CloudFormation spells "required" as ON.
    assert props["MfaConfiguration"] == {"optional": "OPTIONAL", "required": "ON"}[configs[env].auth.mfa]
    assert props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]


def test_prod_pool_is_protected_and_retained_dev_pool_is_disposable(stack_templates):
    prod, dev = user_pool(stack_templates, "prod"), user_pool(stack_templates, "dev")
    assert prod["Properties"]["DeletionProtection"] == "ACTIVE"
    assert prod["DeletionPolicy"] == prod["UpdateReplacePolicy"] == "Retain"
    assert dev["Properties"]["DeletionProtection"] == "INACTIVE"
    assert dev["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("env", ENVS)
def test_pre_sign_up_trigger_is_attached_with_the_allowed_domains(stack_templates, configs, env):
    auth = auth_template(stack_templates, env)
    trigger = user_pool(stack_templates, env)["Properties"]["LambdaConfig"]["PreSignUp"]
    function_id = trigger["Fn::GetAtt"][0]
    function = auth["Resources"][function_id]["Properties"]
    assert function["Handler"] == "app.handler"
    assert function["Runtime"] == "python3.13" and function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert "VpcConfig" not in function
    assert function["Environment"]["Variables"]["ALLOWED_SIGNUP_DOMAINS"] == ",".join(
        configs[env].auth.allowed_signup_domains
    )
    permissions = [p["Properties"] for p in resources_of(auth, "AWS::Lambda::Permission").values()]
    assert {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
        "Principal": "cognito-idp.amazonaws.com",
        "SourceArn": {"Fn::GetAtt": [USER_POOL_LOGICAL_ID, "Arn"]},
    } in permissions


@pytest.mark.parametrize("env", ENVS)
def test_spa_client_is_public_and_has_no_redirect(stack_templates, configs, env):
    """The frontend signs in with SRP and follows no OAuth redirect: its client has none to abuse. The managed
    pages have their own client, returning to the edge (Frontend stack, tests/infra/test_edge.py)."""
    clients = resources_of(auth_template(stack_templates, env), "AWS::Cognito::UserPoolClient")
    assert len(clients) == 1
    props = next(iter(clients.values()))["Properties"]
    assert props["GenerateSecret"] is False
    assert "AllowedOAuthFlows" not in props and "CallbackURLs" not in props and "LogoutURLs" not in props
    assert props.get("AllowedOAuthFlowsUserPoolClient", False) is False
    # No USER_PASSWORD_AUTH for the public SPA client; the admin password flow needs IAM credentials.
    assert set(props["ExplicitAuthFlows"]) == {
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_ADMIN_USER_PASSWORD_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    }
    assert props["PreventUserExistenceErrors"] == "ENABLED"
    assert props["EnableTokenRevocation"] is True
    assert props["AccessTokenValidity"] <= 60 and props["IdTokenValidity"] <= 60
    assert props["TokenValidityUnits"]["AccessToken"] == "minutes"


@pytest.mark.parametrize("env", ENVS)
def test_hosted_sign_in_domain_for_the_code_grant(stack_templates, env):
    (domain,) = resources_of(auth_template(stack_templates, env), "AWS::Cognito::UserPoolDomain").values()
    assert domain["Properties"]["Domain"].startswith(f"erp-{env}-")
    assert "CustomDomainConfig" not in domain["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_log_groups_have_retention(stack_templates, configs, env):
    auth = auth_template(stack_templates, env)
    groups = resources_of(auth, "AWS::Logs::LogGroup")
    # One per function: pre-sign-up, pre-token-generation, and prod's WAF association handler.
    assert len(groups) == 2 + (configs[env].auth.signin_rate_limit is not None)
    assert all(
        g["Properties"]["RetentionInDays"] == configs[env].observability.log_retention_days for g in groups.values()
    )
    assert resources_of(auth, "Custom::LogRetention") == {}


def test_pre_sign_up_bundle_is_just_the_handler(stack_templates, cdk_out):
    auth = auth_template(stack_templates, "dev")
    function_id = user_pool(stack_templates, "dev")["Properties"]["LambdaConfig"]["PreSignUp"]["Fn::GetAtt"][0]
    key = auth["Resources"][function_id]["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    (bundle,) = cdk_out.rglob(f"asset.{key}")
    assert sorted(p.name for p in bundle.iterdir()) == ["app.py"]


# --- the local bundler itself -------------------------------------------------------------


def test_requirements_with_only_comments_have_no_packages(tmp_path):
    requirements = tmp_path / "requirements.txt"
    assert has_packages(requirements) is False  # missing
    requirements.write_text("# nothing to install\n\n   # still nothing\n")
    assert has_packages(requirements) is False
    requirements.write_text("# pinned\npymysql==1.2.4  # driver\n")
    assert has_packages(requirements) is True


def test_bundle_is_cached_by_content_and_rebuilt_on_change(tmp_path):
    function = tmp_path / "fn"
    (function / "pkg").mkdir(parents=True)
    (function / "app.py").write_text("def handler(event, context):\n    return event\n")
    (function / "pkg" / "helper.py").write_text("X = 1\n")
    (function / "requirements.txt").write_text("# standard library only\n")
    (function / "__pycache__").mkdir()
    (function / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"stale")
    cache = tmp_path / "cache"

    first = build_bundle(function, cache)
    assert first == cache / source_hash(function)
    assert sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file()) == [
        "app.py",
        "pkg/helper.py",
    ]
    (first / "marker").write_text("reused")
    assert build_bundle(function, cache) == first and (first / "marker").exists()

    (function / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"other")  # not source: same hash
    assert source_hash(function) == first.name
    (function / "app.py").write_text("def handler(event, context):\n    return {}\n")
    second = build_bundle(function, cache)
    assert second != first and not (second / "marker").exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, second.name])  # no staging left over


def _function_of(auth: dict, target: dict) -> dict:
    return auth["Resources"][target["Fn::GetAtt"][0]]["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_pre_token_generation_v2_trigger_adds_project_scopes(stack_templates, configs, env):
    """Shared contract: access tokens carry f"{project}/{group}" scopes and a verified-only email claim."""
    auth = auth_template(stack_templates, env)
    config = user_pool(stack_templates, env)["Properties"]["LambdaConfig"]["PreTokenGenerationConfig"]
    assert config["LambdaVersion"] == "V2_0"  # V1 cannot touch access tokens
    function = _function_of(auth, {"Fn::GetAtt": [config["LambdaArn"]["Fn::GetAtt"][0], "Arn"]})
    assert function["Environment"]["Variables"]["PROJECT"] == configs[env].project
    assert function["Handler"] == "app.handler" and function["Runtime"] == "python3.13"
    assert "VpcConfig" not in function


@pytest.mark.parametrize("env", ENVS)
def test_users_cannot_write_email_verified(stack_templates, env):
    clients = resources_of(auth_template(stack_templates, env), "AWS::Cognito::UserPoolClient")
    for client in clients.values():
        # What the frontend writes at sign-up; never email_verified or custom:employeeId (privilege and identity).
        assert sorted(client["Properties"]["WriteAttributes"]) == [
            "custom:department",
            "custom:position",
            "email",
            "name",
        ]


def test_prod_user_pool_sign_in_is_rate_limited_by_waf(stack_templates, configs):
    prod, dev = auth_template(stack_templates, "prod"), auth_template(stack_templates, "dev")
    assert not resources_of(dev, "AWS::WAFv2::WebACL")
    (acl_id, acl), *more = resources_of(prod, "AWS::WAFv2::WebACL").items()
    assert not more
    assert acl["Properties"]["Scope"] == "REGIONAL" and acl["Properties"]["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Properties"]["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rule["Action"] == {"Block": {}}
    assert rate["Limit"] == configs["prod"].auth.signin_rate_limit and rate["AggregateKeyType"] == "IP"
    targets = {
        s["ByteMatchStatement"]["SearchString"]
        for s in rate["ScopeDownStatement"]["OrStatement"]["Statements"]
        if "SingleHeader" in s["ByteMatchStatement"]["FieldToMatch"]
    }
    assert {"AWSCognitoIdentityProviderService.SignUp", "AWSCognitoIdentityProviderService.InitiateAuth"} <= targets
    (association,) = resources_of(prod, "Custom::WafWebAclAssociation").values()
    assert association["Properties"]["ResourceArn"] == {"Fn::GetAtt": [USER_POOL_LOGICAL_ID, "Arn"]}
    assert association["Properties"]["WebAclArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}


def test_prod_waf_association_retries_until_the_web_acl_has_propagated(stack_templates):
    """Issue 18 item 6: AWS::WAFv2::WebACLAssociation right after the web ACL's create failed with
    WAFUnavailableEntityException (the ACL propagates for seconds to minutes) and rolled the first create back.
    The association is now lambda_handlers/waf_association (its retries: tests/handlers/test_waf_association.py),
    answering within a bounded time."""
    prod = auth_template(stack_templates, "prod")
    assert not resources_of(prod, "AWS::WAFv2::WebACLAssociation")
    (association,) = resources_of(prod, "Custom::WafWebAclAssociation").values()
    props = association["Properties"]
    function_id = props["ServiceToken"]["Fn::GetAtt"][0]
    function = prod["Resources"][function_id]["Properties"]
    assert function["Handler"] == "app.handler"
    # CloudFormation stops waiting soon after the function's own deadline (the default would be an hour).
    assert function["Timeout"] < int(props["ServiceTimeout"]) <= 15 * 60
    statements = [
        s
        for p in resources_of(prod, "AWS::IAM::Policy").values()
        if {"Ref": function["Role"]["Fn::GetAtt"][0]} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"wafv2:AssociateWebACL", "cognito-idp:AssociateWebACL", "wafv2:DisassociateWebACL"} <= actions
    assert all(s["Resource"] != "*" for s in statements if "wafv2:AssociateWebACL" in json.dumps(s))


def test_prod_sign_in_pages_redirect_only_to_https(stack_templates):
    """Issue 12: prod's client allowed http://localhost:3000 callbacks (the AuthConfig default). The managed pages'
    client (Frontend stack) returns to the edge's https address and to nothing else in prod."""
    (client,) = resources_of(stack_templates["erp-prod-frontend"], "AWS::Cognito::UserPoolClient").values()
    urls = client["Properties"]["CallbackURLs"] + client["Properties"]["LogoutURLs"]
    assert urls and all(isinstance(url, str) and url.startswith("https://") for url in urls), urls
    assert not any("localhost" in url for url in urls)


@pytest.mark.parametrize("env", ENVS)
def test_privileged_groups_exist_and_nobody_is_added_at_sign_up(stack_templates, configs, env):
    auth = auth_template(stack_templates, env)
    groups = {
        g["Properties"]["GroupName"]: g["Properties"]
        for g in resources_of(auth, "AWS::Cognito::UserPoolGroup").values()
    }
    config = configs[env].auth
    assert set(groups) == {*config.admin_groups, *config.manager_groups}
    assert all(g["UserPoolId"] == {"Ref": USER_POOL_LOGICAL_ID} for g in groups.values())
    assert not resources_of(auth, "AWS::Cognito::UserPoolUserToGroupAttachment")

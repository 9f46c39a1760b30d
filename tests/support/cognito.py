"""A small Amazon Cognito user pool, driven by the SYNTHESIZED pool and client, running the REAL triggers.

What it reads from the template (AWS::Cognito::UserPool / UserPoolClient / UserPoolGroup / UserPoolDomain):
AdminCreateUserConfig.AllowAdminCreateUserOnly, UsernameAttributes, UsernameConfiguration.CaseSensitive,
Schema (required, mutable, type and length of every attribute), Policies.PasswordPolicy,
AutoVerifiedAttributes, VerificationMessageTemplate.DefaultEmailOption, MfaConfiguration, LambdaConfig
(PreSignUp, PreTokenGenerationConfig V1_0/V2_0), the client's ExplicitAuthFlows, ReadAttributes and
WriteAttributes, the groups and the pool's domain.

What it does, as the Cognito API does it (error codes and messages are Cognito's):
- SignUp runs the pre-sign-up trigger; an exception there is `UserLambdaValidationException`
  "PreSignUp failed with error <message>."; autoConfirmUser / autoVerifyEmail are honoured. An unconfirmed
  account is mailed a link (CONFIRM_WITH_LINK) or a code (CONFIRM_WITH_CODE).
- The person opening the link confirms the account and verifies the address. A code needs a screen the
  ERP frontend does not have, so with a code-only pool nothing can be done with the mail.
- Sign-in is SRP with only onSuccess/onFailure callbacks (the frontend's `authenticateUser`):
  UNCONFIRMED -> `UserNotConfirmedException` "User is not confirmed."; MfaConfiguration ON without a TOTP
  device -> the MFA_SETUP challenge, which such a client never answers (`SignInNeverSettles`).
- Tokens: the ID token carries sub, email_verified, cognito:username, the client's readable attributes and
  cognito:groups; the access token starts as {sub, client_id, token_use, scope
  "aws.cognito.signin.user.admin", username, cognito:groups} and the pre-token-generation trigger's
  response (V2_0: claimsAndScopeOverrideDetails) is applied to both.
- Administrator actions: AdminAddUserToGroup, AdminUpdateUserAttributes (what `make user` does).

Tokens are opaque strings registered with a `TokenIssuer`, which the gateway model asks to verify them
(standing in for the signature check against the pool's JWKS).
"""

from __future__ import annotations

import itertools
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.support.cloudformation import DeployedFunction, Stacks, Unresolvable

SIGNIN_SCOPE = "aws.cognito.signin.user.admin"
# Claims the pre-token trigger cannot change (Cognito ignores them in a V2 response).
PROTECTED_CLAIMS = frozenset(
    {
        "acr",
        "amr",
        "aud",
        "auth_time",
        "azp",
        "client_id",
        "cognito:username",
        "event_id",
        "exp",
        "iat",
        "identities",
        "iss",
        "jti",
        "nbf",
        "nonce",
        "origin_jti",
        "scope",
        "sub",
        "token_use",
        "username",
        "version",
    }
)
# Triggers that only shape a message's text: the model can ignore them without changing an outcome.
MESSAGE_ONLY_TRIGGERS = frozenset({"CustomMessage", "CustomEmailSender", "KMSKeyID"})
STANDARD_ATTRIBUTES = frozenset(
    {
        "address",
        "birthdate",
        "email",
        "email_verified",
        "family_name",
        "gender",
        "given_name",
        "locale",
        "middle_name",
        "name",
        "nickname",
        "phone_number",
        "phone_number_verified",
        "picture",
        "preferred_username",
        "profile",
        "updated_at",
        "website",
        "zoneinfo",
    }
)


class CognitoError(Exception):
    """A client error of the Cognito API: `code` is the exception name, `message` what err.message shows."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def __str__(self) -> str:
        return f'{self.code} "{self.message}"'


class SignInNeverSettles(Exception):
    """A challenge the frontend has no callback for: authenticateUser calls neither onSuccess nor onFailure."""


class Clock:
    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class TokenIssuer:
    """Signs and verifies tokens (stands in for the pools' keys and the JWKS the gateway fetches)."""

    clock: Clock
    _tokens: dict[str, dict] = field(default_factory=dict)
    _serial: Any = field(default_factory=lambda: itertools.count(1))

    def sign(self, claims: dict) -> str:
        token = f"eyJraWQiOiJ0ZXN0In0.{next(self._serial)}.{uuid.uuid4().hex}"
        self._tokens[token] = dict(claims)
        return token

    def verify(self, token: str) -> dict | None:
        """The token's claims if one of our pools signed it, else None (bad signature)."""
        claims = self._tokens.get(token)
        return dict(claims) if claims is not None else None


@dataclass
class Mail:
    to: str
    kind: str  # "link" or "code"
    url: str | None = None
    code: str | None = None


@dataclass
class User:
    sub: str
    password: str
    attributes: dict[str, str]
    status: str  # UNCONFIRMED or CONFIRMED
    groups: set[str] = field(default_factory=set)
    totp_enabled: bool = False


@dataclass
class Tokens:
    id_token: str
    access_token: str
    id_claims: dict
    access_claims: dict


@dataclass(frozen=True)
class PoolSettings:
    """What the model reads from the synthesized template, once per environment."""

    stack: str
    pool_id: str
    client_id: str
    region: str
    admin_only: bool
    username_attributes: tuple[str, ...]
    case_sensitive: bool
    schema: dict[str, dict]  # attribute name (custom ones with "custom:") -> Schema entry
    password_policy: dict
    auto_verified: tuple[str, ...]
    email_option: str
    mfa: str
    auth_flows: tuple[str, ...]
    read_attributes: tuple[str, ...]
    write_attributes: tuple[str, ...]
    groups: tuple[str, ...]
    domain: str | None
    presignup: str | None  # logical id of the function
    pretoken: tuple[str, str] | None  # (logical id, LambdaVersion)

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @classmethod
    def from_template(cls, stacks: Stacks, stack: str) -> PoolSettings:
        pool_logical, pool = stacks.only(stack, "AWS::Cognito::UserPool")
        p = pool["Properties"]
        pool_id = stacks.ref(stack, pool_logical)
        clients = {
            k: v
            for k, v in stacks.resources(stack, "AWS::Cognito::UserPoolClient").items()
            if stacks.resolve(stack, v["Properties"]["UserPoolId"]) == pool_id
        }
        if "UserPoolClientId" in stacks.templates[stack].get("Outputs", {}):
            client_id = stacks.output(stack, "UserPoolClientId")  # what the frontend is built with
        elif len(clients) == 1:
            client_id = stacks.ref(stack, next(iter(clients)))
        else:
            raise Unresolvable(f"{stack}: which of the clients {sorted(clients)} is the SPA's?")
        client = stacks.resource(stack, stacks.origin(client_id).logical_id)["Properties"]
        schema = {}
        for entry in p.get("Schema", []):
            name = entry["Name"] if entry["Name"] in STANDARD_ATTRIBUTES else f"custom:{entry['Name']}"
            schema[name] = entry
        lambda_config = p.get("LambdaConfig", {})
        unknown = set(lambda_config) - {"PreSignUp", "PreTokenGenerationConfig", "PreTokenGeneration"}
        unknown -= MESSAGE_ONLY_TRIGGERS
        if unknown:
            raise Unresolvable(f"{stack}: the Cognito model does not run the triggers {sorted(unknown)}")

        def function_of(arn: Any) -> str:
            return stacks.origin(stacks.resolve(stack, arn)).logical_id

        pretoken = None
        if "PreTokenGenerationConfig" in lambda_config:
            config = lambda_config["PreTokenGenerationConfig"]
            pretoken = (function_of(config["LambdaArn"]), config.get("LambdaVersion", "V1_0"))
        elif "PreTokenGeneration" in lambda_config:
            pretoken = (function_of(lambda_config["PreTokenGeneration"]), "V1_0")
        groups = tuple(
            g["Properties"]["GroupName"]
            for g in stacks.resources(stack, "AWS::Cognito::UserPoolGroup").values()
            if stacks.resolve(stack, g["Properties"]["UserPoolId"]) == pool_id
        )
        domains = [
            d["Properties"]["Domain"]
            for d in stacks.resources(stack, "AWS::Cognito::UserPoolDomain").values()
            if stacks.resolve(stack, d["Properties"]["UserPoolId"]) == pool_id
        ]
        return cls(
            stack=stack,
            pool_id=pool_id,
            client_id=client_id,
            region=stacks.region,
            admin_only=bool(p.get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly", False)),
            username_attributes=tuple(p.get("UsernameAttributes", [])),
            case_sensitive=bool(p.get("UsernameConfiguration", {}).get("CaseSensitive", True)),
            schema=schema,
            password_policy=p.get("Policies", {}).get("PasswordPolicy", {}),
            auto_verified=tuple(p.get("AutoVerifiedAttributes", [])),
            email_option=p.get("VerificationMessageTemplate", {}).get("DefaultEmailOption", "CONFIRM_WITH_CODE"),
            mfa=p.get("MfaConfiguration", "OFF"),
            auth_flows=tuple(client.get("ExplicitAuthFlows", [])),
            read_attributes=tuple(client.get("ReadAttributes", [])),
            write_attributes=tuple(client.get("WriteAttributes", [])),
            groups=groups,
            domain=stacks.resolve(stack, domains[0]) if domains else None,
            presignup=function_of(lambda_config["PreSignUp"]) if "PreSignUp" in lambda_config else None,
            pretoken=pretoken,
        )


def password_problem(password: str, policy: dict) -> str | None:
    """Cognito's InvalidPasswordException message for the first rule broken, else None."""
    if len(password) < int(policy.get("MinimumLength", 8)):
        return "Password did not conform with policy: Password not long enough"
    rules = [
        ("RequireUppercase", any(c.isupper() for c in password), "Password must have uppercase characters"),
        ("RequireLowercase", any(c.islower() for c in password), "Password must have lowercase characters"),
        ("RequireNumbers", any(c.isdigit() for c in password), "Password must have numeric characters"),
        ("RequireSymbols", any(c in string.punctuation for c in password), "Password must have symbol characters"),
    ]
    for flag, met, message in rules:
        if policy.get(flag) and not met:
            return f"Password did not conform with policy: {message}"
    return None


class UserPool:
    """One user pool's state. Triggers are DeployedFunctions (their env from the template)."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        issuer: TokenIssuer,
        triggers: dict[str, DeployedFunction],
        token_lifetime_s: int = 3600,
    ):
        self.settings = settings
        self.issuer = issuer
        self.triggers = triggers
        self.token_lifetime_s = token_lifetime_s
        self.users: dict[str, User] = {}  # by sign-in name (the email)
        self.outbox: list[Mail] = []

    # --- helpers ---------------------------------------------------------------------------------

    def _key(self, username: str) -> str:
        return username if self.settings.case_sensitive else username.lower()

    def _user(self, username: str) -> User:
        user = self.users.get(self._key(username))
        if user is None:
            raise CognitoError("UserNotFoundException", "User does not exist.")
        return user

    def _check_attribute(self, name: str, value: str, *, writable: tuple[str, ...] | None) -> None:
        if writable is not None and name not in writable:
            raise CognitoError("NotAuthorizedException", "A client attempted to write unauthorized attribute")
        entry = self.settings.schema.get(name)
        if entry is None and name not in STANDARD_ATTRIBUTES:
            raise CognitoError("InvalidParameterException", f"Attribute does not exist in the schema: {name}")
        if entry is None:
            return
        if entry.get("AttributeDataType") == "Number":
            try:
                number = int(value)
            except ValueError:
                raise CognitoError("InvalidParameterException", f"{name}: Number must be an integer") from None
            limits = entry.get("NumberAttributeConstraints", {})
            if "MinValue" in limits and number < int(limits["MinValue"]):
                raise CognitoError("InvalidParameterException", f"{name}: Number must be >= {limits['MinValue']}")
            if "MaxValue" in limits and number > int(limits["MaxValue"]):
                raise CognitoError("InvalidParameterException", f"{name}: Number must be <= {limits['MaxValue']}")
        limits = entry.get("StringAttributeConstraints", {})
        if "MinLength" in limits and len(value) < int(limits["MinLength"]):
            raise CognitoError("InvalidParameterException", f"{name}: String must be at least {limits['MinLength']}")
        if "MaxLength" in limits and len(value) > int(limits["MaxLength"]):
            raise CognitoError("InvalidParameterException", f"{name}: String must be at most {limits['MaxLength']}")

    def _trigger(self, name: str, event: dict) -> dict:
        function = self.triggers[name]
        try:
            return function.invoke(event, None)
        except Exception as exc:  # Cognito turns any failure into the trigger's client error
            label = {"presignup": "PreSignUp", "pretoken": "PreTokenGeneration"}[name]
            raise CognitoError("UserLambdaValidationException", f"{label} failed with error {exc}.") from exc

    def _caller(self, client_id: str) -> dict:
        return {"awsSdkVersion": "aws-sdk-js-2.0", "clientId": client_id}

    # --- the public API the frontend calls -------------------------------------------------------

    def sign_up(self, client_id: str, username: str, password: str, attributes: dict[str, str]) -> dict:
        s = self.settings
        if client_id != s.client_id:
            raise CognitoError("ResourceNotFoundException", "User pool client does not exist.")
        if s.admin_only:
            raise CognitoError("NotAuthorizedException", "SignUp is not permitted for this user pool")
        if "email" in s.username_attributes and "@" not in username:
            raise CognitoError("InvalidParameterException", "Username should be an email.")
        for name, value in attributes.items():
            self._check_attribute(name, value, writable=s.write_attributes)
        missing = [n for n, e in s.schema.items() if e.get("Required") and not attributes.get(n)]
        if missing:
            raise CognitoError(
                "InvalidParameterException",
                "Attributes did not conform to the schema: "
                + ", ".join(f"{n}: The attribute {n} is required" for n in missing),
            )
        if self._key(username) in self.users:
            raise CognitoError("UsernameExistsException", "An account with the given email already exists.")
        problem = password_problem(password, s.password_policy)
        if problem:
            raise CognitoError("InvalidPasswordException", problem)
        sub = str(uuid.uuid4())
        response = {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False}
        if s.presignup:
            event = {
                "version": "1",
                "region": s.region,
                "userPoolId": s.pool_id,
                "userName": sub,
                "callerContext": self._caller(client_id),
                "triggerSource": "PreSignUp_SignUp",
                "request": {"userAttributes": dict(attributes), "validationData": None},
                "response": dict(response),
            }
            response = self._trigger("presignup", event).get("response") or response
        user_attributes = dict(attributes)
        user_attributes["sub"] = sub
        user_attributes["email_verified"] = "true" if response.get("autoVerifyEmail") else "false"
        user = User(
            sub=sub,
            password=password,
            attributes=user_attributes,
            status="CONFIRMED" if response.get("autoConfirmUser") else "UNCONFIRMED",
        )
        self.users[self._key(username)] = user
        delivery = None
        if user.status == "UNCONFIRMED" and "email" in s.auto_verified:
            code = f"{uuid.uuid4().int % 1_000_000:06d}"
            if s.email_option == "CONFIRM_WITH_LINK":
                url = None
                if s.domain:
                    url = (
                        f"https://{s.domain}.auth.{s.region}.amazoncognito.com/confirmUser?client_id={client_id}"
                        f"&user_name={sub}&confirmation_code={code}"
                    )
                self.outbox.append(Mail(to=attributes.get("email", username), kind="link", url=url, code=code))
            else:
                self.outbox.append(Mail(to=attributes.get("email", username), kind="code", code=code))
            delivery = {"Destination": attributes.get("email", username), "DeliveryMedium": "EMAIL"}
        return {"UserConfirmed": user.status == "CONFIRMED", "UserSub": sub, "CodeDeliveryDetails": delivery}

    def mails_to(self, address: str) -> list[Mail]:
        return [m for m in self.outbox if m.to.lower() == address.lower()]

    def open_link(self, mail: Mail) -> None:
        """The person clicks the link in the sign-up mail (GET /confirmUser on the pool's domain)."""
        if mail.kind != "link":
            raise CognitoError("InvalidParameterException", "the mail holds a code, not a link")
        if mail.url is None:
            raise CognitoError("InvalidParameterException", "the link points nowhere: the pool has no domain")
        for user in self.users.values():
            if f"user_name={user.sub}&" in mail.url and mail.url.endswith(f"confirmation_code={mail.code}"):
                user.status = "CONFIRMED"
                user.attributes["email_verified"] = "true"
                return
        raise CognitoError("CodeMismatchException", "Invalid verification code provided, please try again.")

    def sign_in_srp(self, client_id: str, username: str, password: str) -> Tokens:
        s = self.settings
        if client_id != s.client_id:
            raise CognitoError("ResourceNotFoundException", "User pool client does not exist.")
        if "ALLOW_USER_SRP_AUTH" not in s.auth_flows and "USER_SRP_AUTH" not in s.auth_flows:
            raise CognitoError("InvalidParameterException", "USER_SRP_AUTH is not enabled for the client.")
        user = self.users.get(self._key(username))
        if user is None or user.password != password:
            raise CognitoError("NotAuthorizedException", "Incorrect username or password.")
        if user.status == "UNCONFIRMED":
            raise CognitoError("UserNotConfirmedException", "User is not confirmed.")
        if s.mfa == "ON" and not user.totp_enabled:
            raise SignInNeverSettles("sign-in never settles (mfaSetup callback missing)")
        if user.totp_enabled and s.mfa in ("ON", "OPTIONAL"):
            raise SignInNeverSettles("sign-in never settles (totpRequired callback missing)")
        return self._tokens(client_id, user)

    # --- administrator actions (make user) -------------------------------------------------------

    def admin_add_user_to_group(self, username: str, group: str) -> None:
        if group not in self.settings.groups:
            raise CognitoError("ResourceNotFoundException", "Group not found.")
        self._user(username).groups.add(group)

    def admin_update_user_attributes(self, username: str, attributes: dict[str, str]) -> None:
        user = self._user(username)
        for name, value in attributes.items():
            self._check_attribute(name, value, writable=None)
            entry = self.settings.schema.get(name, {})
            if entry.get("Mutable") is False and name in user.attributes:
                raise CognitoError("NotAuthorizedException", f"Cannot modify an already provided non-mutable: {name}")
        user.attributes.update(attributes)

    # --- tokens -----------------------------------------------------------------------------------

    def _tokens(self, client_id: str, user: User) -> Tokens:
        s = self.settings
        now = int(self.issuer.clock())
        groups = sorted(user.groups)
        common = {
            "sub": user.sub,
            "iss": s.issuer,
            "origin_jti": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "auth_time": now,
            "iat": now,
            "exp": now + self.token_lifetime_s,
        }
        if groups:
            common["cognito:groups"] = list(groups)
        readable = {n: v for n, v in user.attributes.items() if n in s.read_attributes and n != "email_verified"}
        id_claims = {
            **common,
            **readable,
            "email_verified": user.attributes.get("email_verified") == "true",
            "cognito:username": user.sub,
            "aud": client_id,
            "token_use": "id",
            "jti": str(uuid.uuid4()),
        }
        access_claims = {
            **common,
            "client_id": client_id,
            "token_use": "access",
            "scope": SIGNIN_SCOPE,
            "username": user.sub,
            "jti": str(uuid.uuid4()),
        }
        if s.pretoken:
            _, version = s.pretoken
            event = {
                "version": "2" if version != "V1_0" else "1",
                "triggerSource": "TokenGeneration_Authentication",
                "region": s.region,
                "userPoolId": s.pool_id,
                "userName": user.sub,
                "callerContext": self._caller(client_id),
                "request": {
                    "userAttributes": {**user.attributes, "cognito:user_status": user.status},
                    "groupConfiguration": {"groupsToOverride": groups, "iamRolesToOverride": [], "preferredRole": None},
                    "scopes": [SIGNIN_SCOPE],
                },
                "response": {"claimsAndScopeOverrideDetails": None}
                if version != "V1_0"
                else {"claimsOverrideDetails": None},
            }
            response = self._trigger("pretoken", event).get("response") or {}
            if version == "V1_0":
                _apply(id_claims, response.get("claimsOverrideDetails") or {})
            else:
                details = response.get("claimsAndScopeOverrideDetails") or {}
                override = (details.get("groupOverrideDetails") or {}).get("groupsToOverride")
                if override is not None:
                    for claims in (id_claims, access_claims):
                        claims.pop("cognito:groups", None)
                        if override:
                            claims["cognito:groups"] = list(override)
                _apply(id_claims, details.get("idTokenGeneration") or {})
                _apply(access_claims, details.get("accessTokenGeneration") or {})
        return Tokens(self.issuer.sign(id_claims), self.issuer.sign(access_claims), id_claims, access_claims)


def _apply(claims: dict, generation: dict) -> None:
    """claimsToAddOrOverride, claimsToSuppress, scopesToAdd, scopesToSuppress (scopes: access token only)."""
    for name, value in (generation.get("claimsToAddOrOverride") or {}).items():
        if name not in PROTECTED_CLAIMS:
            claims[name] = value
    for name in generation.get("claimsToSuppress") or []:
        if name not in PROTECTED_CLAIMS:
            claims.pop(name, None)
    if "scope" in claims:
        scopes = claims["scope"].split()
        scopes += [x for x in generation.get("scopesToAdd") or [] if x not in scopes]
        suppressed = set(generation.get("scopesToSuppress") or [])
        claims["scope"] = " ".join(x for x in scopes if x not in suppressed)

"""Grant a role in an environment's Cognito user pool: the one way an account becomes a manager or an admin.

    make user ENV=prod EMAIL=alice@example.com ROLE=admin [LINK=42]
    make user ENV=prod EMAIL=alice@example.com ROLE=admin CREATE=1 NAME="Alice Kim" POSITION=STAFF DEPARTMENT=DEVELOPMENT
    python -m tools.user_admin --env prod --email alice@example.com --role manager|admin|none [--link 42] [--create ...]

Privileges come only from the groups in auth.admin_groups / auth.manager_groups (sign-up never grants one), so a
role is exactly one privileged group, the first of its list, and every other privileged group is removed. Granting
needs a proven address (`email_verified` "true", on a confirmed account or one an administrator created), because
the access token's email claim decides which employee record is the user's own; revoking (none) never needs proof.
LINK sets custom:employeeId, tying the account to a legacy employee record that has no email. CREATE is for
environments without self sign-up: Cognito mails a temporary password, which is changed on the hosted sign-in page
(the ERP frontend has no new-password screen), so its URL is printed. Prints one line per change; refused input
changes nothing and exits 2 with one line.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from config import CONFIG_DIR, ConfigError, load_environment
from config.models import EnvironmentConfig

ROLES = ("admin", "manager", "none")
# FORCE_CHANGE_PASSWORD exists only for accounts an administrator created, vouching for the address.
GRANTABLE_STATUSES = {"CONFIRMED", "FORCE_CHANGE_PASSWORD"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REMINDER = "group changes take effect at the user's next sign-in or token refresh (access tokens live up to 1 hour)"


class UserAdminError(Exception):
    """One line for the operator; nothing was changed."""


def parameter(config: EnvironmentConfig, leaf: str) -> str:
    """Where the Auth stack publishes what operators and tools need: /erp/<env>/auth/<leaf>."""
    return f"{config.ssm_prefix}/auth/{leaf}"


def read_parameter(ssm: Any, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def sign_in_link(ssm: Any, config: EnvironmentConfig) -> str:
    """The managed page where a created user replaces the temporary password, returning to the frontend (the
    sign-in client of the Frontend stack, whose return address is the edge's)."""
    names = {
        "base": parameter(config, "sign-in-url"),
        "client": f"{config.ssm_prefix}/frontend/sign-in-client-id",
        "home": f"{config.ssm_prefix}/frontend/url",
    }
    values = {key: read_parameter(ssm, name) for key, name in names.items()}
    missing = [names[key] for key, value in values.items() if not value]
    if missing:
        return (
            f"<SignInDomain>/login?client_id=<sign-in client>&response_type=code&redirect_uri=<edge URL>/ "
            f"(SSM {', '.join(missing)} not found: deploy {config.resource_prefix}-auth and -frontend)"
        )
    home = quote(values["home"].rstrip("/") + "/", safe="")
    return f"{values['base'].rstrip('/')}/login?client_id={values['client']}&response_type=code&redirect_uri={home}"


def groups_of(cognito: Any, pool_id: str, email: str) -> set[str]:
    pages = cognito.get_paginator("admin_list_groups_for_user").paginate(UserPoolId=pool_id, Username=email)
    return {group["GroupName"] for page in pages for group in page["Groups"]}


def wanted_groups(config: EnvironmentConfig, role: str, current: set[str]) -> set[str]:
    """Non-privileged groups stay; the privileged ones become exactly the role's first group (or none)."""
    privileged = set(config.auth.admin_groups) | set(config.auth.manager_groups)
    grant = {"admin": config.auth.admin_groups[0], "manager": config.auth.manager_groups[0]}.get(role)
    return (current - privileged) | ({grant} if grant else set())


def apply(
    config: EnvironmentConfig,
    cognito: Any,
    ssm: Any,
    *,
    email: str,
    role: str,
    link: int | None = None,
    create: dict[str, str] | None = None,
    pool_id: str | None = None,
    say=print,
) -> None:
    """Refuse (UserAdminError) before any change, then make the changes, saying each one as it is made."""
    env = config.name
    pool_id = pool_id or read_parameter(ssm, parameter(config, "user-pool-id"))
    if not pool_id:
        raise UserAdminError(
            f"no user pool for {env}: SSM {parameter(config, 'user-pool-id')} not found "
            f"(deploy {config.resource_prefix}-auth first, or pass --user-pool-id)"
        )
    try:
        user = cognito.admin_get_user(UserPoolId=pool_id, Username=email)
    except cognito.exceptions.UserNotFoundException:
        user = None
    if create is not None:
        if user is not None:
            raise UserAdminError(f"{email} already exists in {env}'s pool (drop CREATE=1 to change their role)")
        link_to_page = sign_in_link(ssm, config)  # read before creating: a failed read must not leave a silent user
        attributes = {"email": email, "email_verified": "true", **create}  # an administrator vouches for the address
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
            DesiredDeliveryMediums=["EMAIL"],
        )
        say(f"{email}: created; Cognito mails a temporary password, to be changed at {link_to_page}")
        user = cognito.admin_get_user(UserPoolId=pool_id, Username=email)
    elif user is None:
        raise UserAdminError(f"no user {email} in {env}'s pool (sign up first, or use CREATE=1)")
    attrs = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
    if role != "none" and (user["UserStatus"] not in GRANTABLE_STATUSES or attrs.get("email_verified") != "true"):
        raise UserAdminError(
            f"{email} has not confirmed their address (status {user['UserStatus']}, email_verified "
            f"{attrs.get('email_verified', 'unset')}): they must open the link in the sign-up mail first"
        )
    changed = create is not None
    current = groups_of(cognito, pool_id, email)
    wanted = wanted_groups(config, role, current)
    if wanted != current:
        for group in sorted(wanted - current):  # add before removing: a move never leaves a gap without the role
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)
        for group in sorted(current - wanted):
            cognito.admin_remove_user_from_group(UserPoolId=pool_id, Username=email, GroupName=group)
        say(f"{email}: groups [{', '.join(sorted(current))}] -> [{', '.join(sorted(wanted))}]")
        changed = True
    linked = attrs.get("custom:employeeId")
    if link is not None and linked != str(link):
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=email, UserAttributes=[{"Name": "custom:employeeId", "Value": str(link)}]
        )
        say(f"{email}: custom:employeeId {linked or '(none)'} -> {link}")
        changed = True
    if not changed:
        say(f"{email}: no change")
    elif wanted != current:
        say(REMINDER)


def main(argv: list[str] | None = None, config_dir: Path = CONFIG_DIR) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.user_admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--link", help="legacy employee id to set as custom:employeeId")
    parser.add_argument("--user-pool-id", help="skip the SSM lookup")
    parser.add_argument("--create", action="store_true", help="admin-create the user (self sign-up off)")
    parser.add_argument("--name")
    parser.add_argument("--position")
    parser.add_argument("--department")
    args = parser.parse_args(argv)
    try:
        email = args.email.strip().lower()  # the pool's usernames are case-insensitive; store them one way
        if not EMAIL.match(email):
            raise UserAdminError(f"{args.email!r} is not an email address")
        link = None
        if args.link is not None:
            if not re.fullmatch(r"[0-9]+", args.link.strip()) or int(args.link) < 1:
                raise UserAdminError(f"LINK must be a positive integer (an employee id), not {args.link!r}")
            link = int(args.link)
        extra = {"name": args.name, "custom:position": args.position, "custom:department": args.department}
        extra = {k: v for k, v in extra.items() if v}
        if extra and not args.create:
            raise UserAdminError("NAME, POSITION and DEPARTMENT are only used with CREATE=1")
        try:
            config = load_environment(args.env, config_dir)
        except ConfigError as exc:
            raise UserAdminError(str(exc)) from None
        apply(
            config,
            boto3.client("cognito-idp", region_name=config.region),
            boto3.client("ssm", region_name=config.region),
            email=email,
            role=args.role,
            link=link,
            create=extra if args.create else None,
            pool_id=args.user_pool_id,
        )
    except UserAdminError as exc:
        print(f"user: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"user: {args.env}: AWS refused or failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

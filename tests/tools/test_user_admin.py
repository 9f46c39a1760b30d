"""make user: roles are granted only to proven addresses, one privileged group at a time, against moto (no AWS)."""

from __future__ import annotations

import subprocess

import boto3
import pytest
import yaml
from moto import mock_aws

from config import CONFIG_DIR
from tests.support.aws import use_fake_credentials
from tools.user_admin import REMINDER, main

REPO = CONFIG_DIR.parent
REGION = "ap-northeast-2"  # config/dev.yaml's region: the tool builds its clients there
SIGN_IN = "https://erp-dev-111111111111.auth.ap-northeast-2.amazoncognito.com"
EDGE_URL = "https://d111.cloudfront.net"
PASSWORD = "Correct-Horse-9-battery"  # pragma: allowlist secret (a throwaway password for moto)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch):
    use_fake_credentials(monkeypatch, REGION)
    with mock_aws():
        yield


@pytest.fixture
def idp():
    return boto3.client("cognito-idp", region_name=REGION)


@pytest.fixture
def pool(idp):
    """The Auth stack's pool as far as the tool sees it: email usernames, the groups, the SSM parameters."""
    pool_id = idp.create_user_pool(
        PoolName="erp-dev",
        UsernameAttributes=["email"],
        UsernameConfiguration={"CaseSensitive": False},
        Schema=[
            {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
            {"Name": "position", "AttributeDataType": "String", "Mutable": True},
            {"Name": "department", "AttributeDataType": "String", "Mutable": True},
            {"Name": "employeeId", "AttributeDataType": "Number", "Mutable": True},
        ],
    )["UserPool"]["Id"]
    for group in ("admin", "manager", "staff"):
        idp.create_group(UserPoolId=pool_id, GroupName=group)
    return pool_id


@pytest.fixture
def published(pool):
    ssm = boto3.client("ssm", region_name=REGION)
    for leaf, value in (("user-pool-id", pool), ("user-pool-client-id", "client123"), ("sign-in-url", SIGN_IN)):
        ssm.put_parameter(Name=f"/erp/dev/auth/{leaf}", Value=value, Type="String")
    # The Frontend stack's: the managed pages' own client, returning to the edge.
    ssm.put_parameter(Name="/erp/dev/frontend/sign-in-client-id", Value="signin456", Type="String")
    ssm.put_parameter(Name="/erp/dev/frontend/url", Value=EDGE_URL, Type="String")
    return pool


def add_user(idp, pool_id, email, *, confirmed=True, verified=True, groups=()):
    """confirmed: CONFIRMED with a permanent password; else a self sign-up nobody confirmed (UNCONFIRMED)."""
    if confirmed:
        idp.admin_create_user(UserPoolId=pool_id, Username=email, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=PASSWORD, Permanent=True)
    else:
        client = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="spa")["UserPoolClient"]["ClientId"]
        idp.sign_up(ClientId=client, Username=email, Password=PASSWORD)
    idp.admin_update_user_attributes(
        UserPoolId=pool_id, Username=email, UserAttributes=[{"Name": "email_verified", "Value": str(verified).lower()}]
    )
    for group in groups:
        idp.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)


def groups(idp, pool_id, email):
    return sorted(g["GroupName"] for g in idp.admin_list_groups_for_user(UserPoolId=pool_id, Username=email)["Groups"])


def attributes(idp, pool_id, email):
    user = idp.admin_get_user(UserPoolId=pool_id, Username=email)
    return user["UserStatus"], {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def run(capsys, *args):
    code = main(["--env", "dev", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_grant_manager(idp, published, capsys):
    add_user(idp, published, "alice@example.com", groups=["staff"])
    code, out, err = run(capsys, "--email", "Alice@Example.com ", "--role", "manager")
    assert (code, err) == (0, [])
    assert out == ["alice@example.com: groups [staff] -> [manager, staff]", REMINDER]
    assert groups(idp, published, "alice@example.com") == ["manager", "staff"]


def test_grant_admin_removes_manager(idp, published, capsys):
    add_user(idp, published, "alice@example.com", groups=["manager"])
    code, out, _ = run(capsys, "--email", "alice@example.com", "--role", "admin")
    assert code == 0 and out == ["alice@example.com: groups [manager] -> [admin]", REMINDER]
    assert groups(idp, published, "alice@example.com") == ["admin"]


def test_a_role_is_the_first_group_of_its_list(idp, published, capsys, config_dir):
    """With several admin groups, admin means the first one; the others are privileged and removed too."""
    data = yaml.safe_load((config_dir / "dev.yaml").read_text())
    data["auth"]["admin_groups"] = ["admin", "staff"]
    (config_dir / "dev.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    add_user(idp, published, "alice@example.com", groups=["staff", "manager"])
    assert main(["--env", "dev", "--email", "alice@example.com", "--role", "admin"], config_dir) == 0
    assert groups(idp, published, "alice@example.com") == ["admin"]


def test_none_removes_every_privileged_group_even_unverified(idp, published, capsys):
    add_user(idp, published, "bob@example.com", verified=False, groups=["admin", "manager", "staff"])
    code, out, _ = run(capsys, "--email", "bob@example.com", "--role", "none")
    assert code == 0 and out == ["bob@example.com: groups [admin, manager, staff] -> [staff]", REMINDER]
    assert groups(idp, published, "bob@example.com") == ["staff"]


def test_idempotent(idp, published, capsys):
    add_user(idp, published, "alice@example.com", groups=["manager"])
    idp.admin_update_user_attributes(
        UserPoolId=published, Username="alice@example.com", UserAttributes=[{"Name": "custom:employeeId", "Value": "7"}]
    )
    code, out, _ = run(capsys, "--email", "alice@example.com", "--role", "manager", "--link", "7")
    assert code == 0 and out == ["alice@example.com: no change"]


def test_link_sets_the_employee_id(idp, published, capsys):
    add_user(idp, published, "alice@example.com")
    code, out, _ = run(capsys, "--email", "alice@example.com", "--role", "none", "--link", "42")
    assert code == 0 and out == ["alice@example.com: custom:employeeId (none) -> 42"]
    assert attributes(idp, published, "alice@example.com")[1]["custom:employeeId"] == "42"


@pytest.mark.parametrize("link", ["0", "-3", "abc", "4.2"])
def test_link_must_be_a_positive_integer(idp, published, capsys, link):
    add_user(idp, published, "alice@example.com")
    code, out, err = run(capsys, "--email", "alice@example.com", "--role", "manager", "--link", link)
    assert (code, out, len(err)) == (2, [], 1) and err[0].startswith("user: LINK must be a positive integer")
    assert groups(idp, published, "alice@example.com") == []


@pytest.mark.parametrize(("confirmed", "verified"), [(True, False), (False, True), (False, False)])
@pytest.mark.parametrize("role", ["manager", "admin"])
def test_refuses_to_grant_an_unproven_address(idp, published, capsys, confirmed, verified, role):
    add_user(idp, published, "eve@example.com", confirmed=confirmed, verified=verified)
    assert attributes(idp, published, "eve@example.com")[0] == ("CONFIRMED" if confirmed else "UNCONFIRMED")
    code, out, err = run(capsys, "--email", "eve@example.com", "--role", role, "--link", "5")
    assert (code, out, len(err)) == (2, [], 1)
    assert err[0].startswith("user: eve@example.com has not confirmed their address")
    assert err[0].endswith("they must open the link in the sign-up mail first")
    assert groups(idp, published, "eve@example.com") == []
    assert "custom:employeeId" not in attributes(idp, published, "eve@example.com")[1]


def test_unknown_user(published, capsys):
    code, out, err = run(capsys, "--email", "nobody@example.com", "--role", "manager")
    assert (code, out) == (2, [])
    assert err == ["user: no user nobody@example.com in dev's pool (sign up first, or use CREATE=1)"]


def test_unknown_environment(capsys):
    code = main(["--env", "staging", "--email", "a@example.com", "--role", "admin"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err == ["user: config/staging.yaml: unknown environment 'staging' (known: dev, prod)"]


def test_unknown_role_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--env", "dev", "--email", "a@example.com", "--role", "owner"])
    assert info.value.code == 2 and "invalid choice: 'owner'" in capsys.readouterr().err


def test_missing_ssm_parameter(idp, pool, capsys):
    add_user(idp, pool, "alice@example.com")
    code, out, err = run(capsys, "--email", "alice@example.com", "--role", "admin")
    assert (code, out) == (2, [])
    assert err == [
        "user: no user pool for dev: SSM /erp/dev/auth/user-pool-id not found "
        "(deploy erp-dev-auth first, or pass --user-pool-id)"
    ]
    assert groups(idp, pool, "alice@example.com") == []


def test_user_pool_id_overrides_ssm(idp, pool, capsys):
    add_user(idp, pool, "alice@example.com")
    code, out, _ = run(capsys, "--email", "alice@example.com", "--role", "admin", "--user-pool-id", pool)
    assert code == 0 and out[0] == "alice@example.com: groups [] -> [admin]"
    assert groups(idp, pool, "alice@example.com") == ["admin"]


def test_create_makes_a_verified_user_and_prints_the_hosted_sign_in_link(idp, published, capsys):
    code, out, err = run(
        capsys,
        *("--email", "carol@example.com", "--role", "admin", "--link", "9", "--create"),
        *("--name", "Carol Park", "--position", "STAFF", "--department", "DEVELOPMENT"),
    )
    assert (code, err) == (0, [])
    # The sign-in client (not the SPA's, which has no redirect) returning to the edge's address.
    link = f"{SIGN_IN}/login?client_id=signin456&response_type=code&redirect_uri=https%3A%2F%2Fd111.cloudfront.net%2F"
    assert out == [
        f"carol@example.com: created; Cognito mails a temporary password, to be changed at {link}",
        "carol@example.com: groups [] -> [admin]",
        "carol@example.com: custom:employeeId (none) -> 9",
        REMINDER,
    ]
    status, attrs = attributes(idp, published, "carol@example.com")
    assert status == "FORCE_CHANGE_PASSWORD"
    assert {k: attrs[k] for k in ("email", "email_verified", "name", "custom:position", "custom:department")} == {
        "email": "carol@example.com",
        "email_verified": "true",
        "name": "Carol Park",
        "custom:position": "STAFF",
        "custom:department": "DEVELOPMENT",
    }
    assert groups(idp, published, "carol@example.com") == ["admin"]
    # Created earlier, password not yet changed: the administrator vouched for the address, so a re-run grants.
    assert run(capsys, "--email", "carol@example.com", "--role", "manager")[0] == 0
    assert groups(idp, published, "carol@example.com") == ["manager"]


def test_create_refuses_an_existing_user(idp, published, capsys):
    add_user(idp, published, "alice@example.com", verified=False)
    code, out, err = run(capsys, "--email", "alice@example.com", "--role", "admin", "--create", "--name", "A")
    assert (code, out, len(err)) == (2, [], 1) and "alice@example.com already exists in dev's pool" in err[0]
    assert groups(idp, published, "alice@example.com") == []
    assert "name" not in attributes(idp, published, "alice@example.com")[1]


def test_name_without_create_is_refused(published, capsys):
    code, _, err = run(capsys, "--email", "alice@example.com", "--role", "none", "--name", "Alice")
    assert code == 2 and err == ["user: NAME, POSITION and DEPARTMENT are only used with CREATE=1"]


def test_make_user_refuses_without_arguments():
    done = subprocess.run(["make", "-s", "user", "ENV=", "EMAIL=", "ROLE="], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "usage: make user" in done.stderr


def test_create_without_published_sign_in_url_names_the_stack_outputs(idp, pool, capsys):
    code, out, _ = run(capsys, "--email", "dan@example.com", "--role", "none", "--create", "--user-pool-id", pool)
    assert code == 0 and out[0].startswith("dan@example.com: created;")
    assert (
        "SSM /erp/dev/auth/sign-in-url, /erp/dev/frontend/sign-in-client-id, /erp/dev/frontend/url not found" in out[0]
    )
    assert attributes(idp, pool, "dan@example.com")[1]["email_verified"] == "true"

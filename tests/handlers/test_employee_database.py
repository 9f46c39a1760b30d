"""Container-lifetime behaviour of the employee service: cached credentials and connection,
multi-user password rotation, verified TLS, least privilege, and what a database failure
looks like to a client."""

import json
import secrets
import ssl

import pymysql
import pytest

from tests.handlers.conftest import APP_USER, SUB, lambda_context

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture
def secret_reads(employee, new_container):
    """Start a new container whose Secrets Manager reads are recorded (and still go to moto)."""
    reads = []

    def counting_read(secret_id):
        reads.append(secret_id)
        return employee.db.read_secret(secret_id)

    new_container(load_secret=counting_read)
    return reads


def app_sessions(mariadb) -> int:
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user LIKE %s", (f"{APP_USER}%",))
        return cur.fetchone()[0]


def session_status(employee, name: str) -> str:
    with employee.app.db.connection().cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE %s", (name,))
        row = cur.fetchone()
    return row["Value"] if row else ""


def rotate(mariadb, aws_env, user: str) -> None:
    """What the multi-user rotation does: new password for `user` (created like the original
    if missing), the secret switched to it; the other user keeps its password."""
    password = secrets.token_urlsafe(24)
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{mariadb.database}`.* TO '{user}'@'%'")
    aws_env.put_app(username=user, password=password)


# --- cached credentials and connection ----------------------------------------------------


def test_secret_and_connection_are_reused_across_invocations(api, secret_reads, mariadb, aws_env):
    for _ in range(3):
        assert api("GET", "/api/employees").status == 200

    assert secret_reads == [aws_env.app_arn]
    assert app_sessions(mariadb) == 1


def test_dropped_connection_is_reopened_without_rereading_the_secret(api, secret_reads, mariadb):
    assert api("GET", "/api/employees/1").status == 200
    assert mariadb.kill_connections(APP_USER) == 1

    assert api("GET", "/api/employees/1").status == 200
    assert len(secret_reads) == 1


def test_multi_user_rotation_never_breaks_a_running_container(api, secret_reads, mariadb, aws_env):
    assert api("GET", "/api/employees/1").status == 200
    try:
        # First rotation: the secret moves to employee_app_clone; employee_app's password is untouched,
        # so the running container (old credentials, new session after a failover) still gets in.
        rotate(mariadb, aws_env, f"{APP_USER}_clone")
        mariadb.kill_connections(APP_USER)
        assert api("GET", "/api/employees/1").status == 200
        assert len(secret_reads) == 1

        # Second rotation changes employee_app's password: one rejected login, one re-read, no failure.
        rotate(mariadb, aws_env, APP_USER)
        mariadb.kill_connections(APP_USER)
        assert api("GET", "/api/employees/1").status == 200
        assert len(secret_reads) == 2
    finally:
        with mariadb.admin_connection() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{APP_USER}_clone'@'%'")
            cur.execute(f"ALTER USER '{APP_USER}'@'%%' IDENTIFIED BY %s", (mariadb.app_password,))
        aws_env.put_app(username=APP_USER, password=mariadb.app_password)


# --- least privilege ----------------------------------------------------------------------


def test_the_function_user_may_not_run_ddl(employee, api):
    api("GET", "/api/employees")
    conn = employee.app.db.connection()
    assert conn.user == APP_USER.encode()
    with pytest.raises(pymysql.err.OperationalError) as denied, conn.cursor() as cur:
        cur.execute("CREATE TABLE sneaky (id int)")
    assert denied.value.args[0] == 1142  # ER_TABLEACCESS_DENIED_ERROR
    with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
        cur.execute("DROP TABLE employees")


def test_handler_source_holds_no_ddl():
    from tests.handlers.conftest import EMPLOYEE_DIR

    for path in EMPLOYEE_DIR.glob("*.py"):
        code = path.read_text().upper()
        for statement in ("CREATE TABLE", "ALTER TABLE", "DROP TABLE", "CREATE INDEX"):
            assert statement not in code, (path.name, statement)


# --- TLS ----------------------------------------------------------------------------------


def test_tls_context_always_verifies_chain_and_host(employee, monkeypatch):
    monkeypatch.delenv("DB_TLS")
    options = employee.db.tls_options(employee.db.Settings.from_env())
    context = options["ssl"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    # The default CA file is the RDS bundle shipped in the function folder.
    assert employee.db.Settings.from_env().ca_bundle.endswith("rds-ca-bundle.pem")
    assert len(context.get_ca_certs()) > 10


def test_verified_tls_to_a_server_with_the_right_ca_and_name(api, employee, mariadb, monkeypatch, new_container):
    monkeypatch.delenv("DB_TLS")
    monkeypatch.setenv("DB_CA_BUNDLE", str(mariadb.ca_file))
    monkeypatch.setenv("DB_HOST", "localhost")  # the name on the test server's certificate
    new_container()

    assert api("GET", "/api/employees").status == 200
    assert session_status(employee, "Ssl_version").startswith("TLS")


def test_wrong_hostname_is_refused(api, mariadb, monkeypatch, new_container, caplog):
    monkeypatch.delenv("DB_TLS")
    monkeypatch.setenv("DB_CA_BUNDLE", str(mariadb.ca_file))
    monkeypatch.setenv("DB_HOST", "127.0.0.1")  # reachable, but not the name on the certificate
    new_container()

    assert api("GET", "/api/employees").status == 500
    assert any("CERTIFICATE_VERIFY_FAILED" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_a_server_the_rds_bundle_did_not_sign_is_refused(api, monkeypatch, new_container, caplog):
    monkeypatch.delenv("DB_TLS")  # deployed config: TLS on, shipped RDS CA bundle
    monkeypatch.setenv("DB_HOST", "localhost")
    new_container()

    assert api("GET", "/api/employees").status == 500
    assert any("CERTIFICATE_VERIFY_FAILED" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


# --- failures and logs --------------------------------------------------------------------


def test_database_failure_is_a_generic_500(api, mariadb, caplog):
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE employees RENAME COLUMN department TO dept")  # schema drift
    try:
        response = api("GET", "/api/employees/1")
    finally:
        with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE employees RENAME COLUMN dept TO department")

    assert response.status == 500
    assert response.body == {"error": "Internal server error", "message": "Internal server error"}
    logged = [r for r in caplog.records if r.getMessage() == "Unhandled error"]
    assert len(logged) == 1
    assert "Unknown column" in str(logged[0].exc_info[1])


def test_logs_are_structured_and_carry_the_request(api, employee, caplog):
    api("POST", "/api/employees", role="admin", json_body={"name": "N", "department": "HR", "position": "STAFF"})

    record = next(r for r in caplog.records if r.getMessage() == "Employee created")
    line = json.loads(employee.app.logger.registered_formatter.format(record))

    assert line["level"] == "INFO"
    assert line["service"] == "employee-service"
    assert line["caller"] == SUB
    assert line["correlation_id"]
    assert line["employee_id"] == 4


def test_deploy_check_reaches_the_database_with_the_functions_own_user(employee, clean_database, new_container):
    """The Api stack's Trigger invokes the function with an empty event: it must query through its own DML user."""
    new_container()
    result = employee.app.handler({}, lambda_context())
    assert result["database"] == "reachable" and result["employees"] >= 1


def test_deploy_check_fails_when_the_database_refuses_the_function(employee, clean_database, new_container):
    """A wrong password (or no network path) must raise, so the Trigger and the deploy fail."""

    def wrong_password(_secret_id: str) -> dict:
        return {**employee.db.read_secret(_secret_id), "password": "not-the-password"}  # pragma: allowlist secret

    new_container(load_secret=wrong_password)
    with pytest.raises(pymysql.err.OperationalError):
        employee.app.handler({}, lambda_context())


def test_the_test_server_keeps_its_temporary_tables_to_itself(mariadb):
    """MariaDB names temp files after its pid; in a shared /tmp another pid namespace's server
    deleted them mid-install (CI stop 31). Each throwaway server has its own tmpdir."""
    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@tmpdir")
        (tmpdir,) = cur.fetchone()
    assert tmpdir.startswith(str(mariadb.base_dir) + "/"), tmpdir

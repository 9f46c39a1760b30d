"""Container-lifetime behaviour of the employee service: schema, cached credentials and
connection, password rotation, TLS, and what a database failure looks like to a client."""

import json
import secrets

import certifi
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

SUB = "3f0a2b1c-7d4e-4f5a-9b8c-1d2e3f4a5b6c"  # the JWT subject in every test event


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
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user = %s", (mariadb.user,))
        return cur.fetchone()[0]


def session_status(employee, name: str) -> str:
    with employee.app.db.connection().cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE %s", (name,))
        row = cur.fetchone()
    return row["Value"] if row else ""


# --- schema -------------------------------------------------------------------------------


def test_schema_is_created_on_first_use(api, mariadb):
    assert api("GET", "/api/employees").status == 200

    with mariadb.admin_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT engine, table_collation FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'employees'",
            (mariadb.database,),
        )
        assert cur.fetchall() == (("InnoDB", "utf8mb4_unicode_ci"),)


def test_schema_creation_is_idempotent(api, employee, make_employee, new_container):
    created = make_employee()
    conn = employee.app.db.connection()
    employee.repository.create_schema(conn)
    employee.repository.create_schema(conn)

    new_container()  # a fresh container meets the existing table

    assert api("GET", f"/api/employees/{created['id']}").body == created
    assert len(api("GET", "/api/employees").body["items"]) == 1


# --- cached credentials and connection ----------------------------------------------------


def test_secret_and_connection_are_reused_across_invocations(api, secret_reads, mariadb, db_secret):
    for _ in range(3):
        assert api("GET", "/api/employees").status == 200

    assert secret_reads == [db_secret.arn]
    assert app_sessions(mariadb) == 1


def test_dropped_connection_is_reopened_without_rereading_the_secret(api, secret_reads, make_employee, mariadb):
    created = make_employee()
    assert mariadb.kill_connections(mariadb.user) == 1

    assert api("GET", f"/api/employees/{created['id']}").status == 200
    assert len(secret_reads) == 1


def test_password_rotation_is_survived(api, secret_reads, make_employee, mariadb, db_secret):
    created = make_employee()
    assert len(secret_reads) == 1

    # What the RDS rotation does: new password on the server and in the secret; the old
    # session is gone, and this container still holds the old password.
    mariadb.set_password(secrets.token_urlsafe(24))
    db_secret.put(mariadb)
    mariadb.kill_connections(mariadb.user)

    response = api("GET", f"/api/employees/{created['id']}")

    assert response.status == 200
    assert response.body == created
    assert len(secret_reads) == 2  # re-read exactly once


def test_rotation_caught_midway_fails_once_then_recovers(api, secret_reads, make_employee, mariadb, db_secret):
    created = make_employee()
    mariadb.set_password(secrets.token_urlsafe(24))  # the secret is not updated yet
    mariadb.kill_connections(mariadb.user)

    failed = api("GET", f"/api/employees/{created['id']}")
    assert failed.status == 500
    assert len(secret_reads) == 2  # one retry with a fresh read, no loop

    db_secret.put(mariadb)
    assert api("GET", f"/api/employees/{created['id']}").status == 200
    assert len(secret_reads) == 3


def test_db_host_overrides_the_secret_host(api, mariadb, db_secret, monkeypatch, new_container):
    secret = json.loads(db_secret.client.get_secret_value(SecretId=db_secret.arn)["SecretString"])
    db_secret.client.put_secret_value(
        SecretId=db_secret.arn, SecretString=json.dumps(secret | {"host": "erp-db.invalid"})
    )
    monkeypatch.setenv("DB_HOST", mariadb.host)
    new_container()

    assert api("GET", "/api/employees").status == 200


# --- TLS ----------------------------------------------------------------------------------


def test_tls_is_on_by_default(api, employee, monkeypatch, new_container):
    monkeypatch.delenv("DB_TLS")
    new_container()

    assert api("GET", "/api/employees").status == 200
    assert session_status(employee, "Ssl_cipher")


def test_ca_bundle_verifies_the_server(api, employee, mariadb, monkeypatch, new_container):
    monkeypatch.delenv("DB_TLS")
    monkeypatch.setenv("DB_CA_BUNDLE", str(mariadb.ca_file))
    new_container()

    assert api("GET", "/api/employees").status == 200
    assert session_status(employee, "Ssl_version").startswith("TLS")


def test_ca_bundle_rejects_a_server_it_did_not_sign(api, monkeypatch, new_container, caplog):
    monkeypatch.delenv("DB_TLS")
    monkeypatch.setenv("DB_CA_BUNDLE", certifi.where())  # public CAs only
    new_container()

    response = api("GET", "/api/employees")

    assert response.status == 500
    assert any("CERTIFICATE_VERIFY_FAILED" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_tls_can_be_turned_off(employee, monkeypatch):
    for value in ("false", "FALSE", "0", "no", "off"):
        monkeypatch.setenv("DB_TLS", value)
        assert employee.db.tls_options(employee.db.Settings.from_env()) == {"ssl_disabled": True}
    monkeypatch.setenv("DB_TLS", "true")
    assert "ssl" in employee.db.tls_options(employee.db.Settings.from_env())


# --- failures and logs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/employees", None),
        ("GET", "/api/employees/1", None),
        ("POST", "/api/employees", {"email": "new@example.com", "name": "Kim", "department": "HR"}),
    ],
)
def test_database_failure_is_a_generic_500(api, make_employee, mariadb, caplog, method, path, body):
    make_employee()
    with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE employees RENAME COLUMN department TO dept")  # schema drift

    response = api(method, path, json_body=body)

    assert response.status == 500
    assert response.body == {"message": "Internal server error"}
    logged = [r for r in caplog.records if r.getMessage() == "Unhandled error"]
    assert len(logged) == 1
    assert "Unknown column" in str(logged[0].exc_info[1])


def test_logs_are_structured_and_carry_the_request(api, employee, make_employee, caplog):
    make_employee()

    record = next(r for r in caplog.records if r.getMessage() == "Employee created")
    line = json.loads(employee.app.logger.registered_formatter.format(record))

    assert line["level"] == "INFO"
    assert line["service"] == "employee-service"
    assert line["caller"] == SUB
    assert line["function_name"] == "employee-service"
    assert line["correlation_id"]
    assert line["employee_id"] == 1

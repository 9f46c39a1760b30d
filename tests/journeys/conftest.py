"""Fixtures of the journey tests: the session's synthesized templates, one MariaDB server for these tests
(the handler tests' own fixture, imported), the migrated database, and one `Platform` per environment.

The employee Lambda runs as tests/handlers runs it (load_function, moto for Secrets Manager, its own DML-only
user made by the migration function); what the template says about it (its environment variables, the
function behind the gateway's integrations and the in-cluster function URL) comes from the synthesis.
Each test gets a fresh `World` on the handler tests' sample rows (tests/handlers/conftest.py SEED).
"""

from __future__ import annotations

import pytest

from config import environment_names
from tests.handlers.conftest import (
    EMPLOYEE_DIR,
    MIGRATE_DIR,
    aws_environment,
    lambda_context,
    load_function,
    mariadb,  # noqa: F401 (the server fixture itself, so these tests start one server, not one per module)
    reseed,
    reset_old_database,
)
from tests.journeys.harness import Platform, World

ENVIRONMENTS = environment_names()


@pytest.fixture(scope="package")
def cloud(mariadb):  # noqa: F811
    """Fake AWS credentials and moto for the package's duration; the database migrated once."""
    with aws_environment(mariadb) as secrets:
        if not mariadb.migrated:
            reset_old_database(mariadb)
            load_function(MIGRATE_DIR).app.handler({}, None)
            mariadb.migrated = True
        yield secrets


@pytest.fixture(scope="package")
def platforms(cloud, configs, stack_templates, stack_artifacts):
    """env -> Platform, built on first use."""
    built: dict[str, Platform] = {}

    def get(env: str) -> Platform:
        if env not in built:
            built[env] = Platform.build(
                configs[env],
                stack_templates,
                stack_artifacts,
                load_folder=load_function,
                sources=EMPLOYEE_DIR.parent,
                # The database lives here, not in RDS: the test secret, and no TLS to a local server.
                overrides={"DB_SECRET_ARN": cloud.app_arn, "DB_TLS": "false"},
            )
        return built[env]

    return get


@pytest.fixture
def world(platforms, mariadb):  # noqa: F811
    """world(env) -> a fresh World on the sample rows."""

    def make(env: str) -> World:
        reseed(mariadb)
        with mariadb.admin_connection(database=mariadb.database) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, name, email, department, position, annual_leave_balance FROM employees")
            columns = [c[0] for c in cur.description]
            records = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        return World(platforms(env), context=lambda_context, records=records)

    return make

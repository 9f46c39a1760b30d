"""Config rules that keep a first deploy and routine updates from failing in AWS (issue 13)."""

from __future__ import annotations

import pytest

from config import load_environment
from tests.config.test_config import assert_refused, edit


@pytest.mark.parametrize(
    ("env", "field", "value", "expected"),
    [
        # A new account's Lambda quota may be 10: a reservation must come with the quota it was checked against.
        (
            "dev",
            "employee_function",
            {"reserved_concurrency": 10},
            "employee_function: reserved_concurrency needs account_concurrency_quota",
        ),
        (
            "prod",
            "employee_function.account_concurrency_quota",
            100,
            "employee_function: reserved_concurrency 50 leaves less than 100 of the account quota 100 unreserved",
        ),
        # EBS volumes only grow.
        ("dev", "kafka.storage_gib", 5, "kafka: storage_gib 5 < initial_storage_gib 10: EBS volumes cannot shrink"),
        # One broker, one zonal volume: its nodes must stay in that AZ.
        (
            "dev",
            "cluster.node_groups.0.single_az",
            False,
            "cluster.node_groups.apps.single_az: a single Kafka broker keeps its data on one zonal EBS volume",
        ),
    ],
)
def test_unsafe_deploy_settings_are_refused(config_dir, env, field, value, expected):
    assert_refused(config_dir, env, field, value, expected)


def test_defaults_are_safe_in_a_new_account():
    dev = load_environment("dev")
    assert dev.employee_function.reserved_concurrency is None
    prod = load_environment("prod")
    quota = prod.employee_function.account_concurrency_quota
    assert prod.employee_function.reserved_concurrency <= quota - 100
    for env in (dev, prod):
        assert env.kafka.initial_storage_gib is not None, "pin the claim template's size in config"


def test_kafka_grows_above_its_template_size(config_dir):
    edit(config_dir, "dev", "kafka.storage_gib", 40)
    kafka = load_environment("dev", config_dir).kafka
    assert (kafka.storage_gib, kafka.template_storage_gib) == (40, 10)

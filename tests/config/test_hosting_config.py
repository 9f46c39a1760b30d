"""The hosting contract in config (config/hosting.py): each rule refuses a bad value with one line."""

from __future__ import annotations

import pytest

from config import load_environment
from config.hosting import nlb_private_ips, private_subnet_cidrs, topic_variable, url_variable

from .test_config import assert_refused, edit, error_of


@pytest.mark.parametrize(
    ("env", "field", "value", "expected"),
    [
        # A singleton keeps its queue in memory: no autoscaling, ever.
        (
            "dev",
            "services.1.max_replicas",
            2,
            "services[approval-processing-service]: a singleton runs exactly one pod",
        ),
        ("prod", "services.1.replicas", 2, "services[approval-processing-service]: a singleton runs exactly one pod"),
        # Prod keeps TLS + AUTH on the cache.
        ("prod", "cache.allow_plaintext_clients", True, "cache.allow_plaintext_clients: production keeps TLS + AUTH"),
        (
            "dev",
            "services.0.uses",
            ["kafka", "postgres"],
            "services[approval-request-service].uses: 'postgres' is neither",
        ),
        ("dev", "services.2.uses", ["notification-service"], "a service cannot use itself"),
        (
            "dev",
            "services.0.kafka_topics",
            ["approval-requests", "approval-audit"],
            "services[approval-request-service].kafka_topics: 'approval-audit' is not in kafka.topics",
        ),
        ("dev", "services.2.kafka_topics", ["approval-requests"], "the service must declare kafka in uses"),
        ("dev", "mongodb.egress_cidrs", [], "mongodb.egress_cidrs: services[approval-request-service] uses mongodb"),
        ("dev", "mongodb.egress_cidrs", ["0.0.0.0/0"], "mongodb.egress_cidrs: 0.0.0.0/0 would let"),
        ("dev", "services.2.health", {"type": "http"}, "health: give a path exactly when type is http"),
        (
            "dev",
            "services.0.routes",
            [{"path": "/api/employees"}],
            "services: route paths must be unique across services and employee_function.routes",
        ),
        (
            "dev",
            "employee_function.routes",
            [{"path": "/api/employees", "rewrite": "/employees"}],
            "employee_function.routes: Lambda proxy integrations cannot rewrite the path",
        ),
        (
            "dev",
            "api.restricted_routes",
            [{"method": "DELETE", "path": "/api/approvals", "groups": ["everyone"]}],
            "api.restricted_routes: DELETE /api/approvals: everyone not in auth.admin_groups or auth.manager_groups",
        ),
        (
            "dev",
            "api.restricted_routes",
            [{"method": "DELETE", "path": "/api/payroll", "groups": ["admin"]}],
            "api.restricted_routes: DELETE /api/payroll is under no configured route",
        ),
        (
            "dev",
            "cluster.node_groups.0.instance_types",
            ["t4g.medium"],
            "services[approval-request-service].image.architectures: no apps node group runs amd64",
        ),
    ],
)
def test_hosting_rules(config_dir, env, field, value, expected):
    assert_refused(config_dir, env, field, value, expected)


def test_names_the_services_read():
    assert url_variable("notification-service") == "NOTIFICATION_SERVICE_URL"
    assert topic_variable("approval-requests") == "KAFKA_TOPICS_APPROVAL_REQUESTS"


def test_committed_config_matches_the_real_services():
    """Section 6 of ../shared/erp-services.md as declared in config (the charts derive everything from it)."""
    for name in ("dev", "prod"):
        env = load_environment(name)
        uses = {s.name: set(s.uses) for s in env.services}
        assert uses == {
            "approval-request-service": {"mongodb", "kafka", "xray", "employee-api", "notification-service"},
            "approval-processing-service": {"kafka"},
            "notification-service": {"cache", "xray"},
        }
        processing = next(s for s in env.services if s.name == "approval-processing-service")
        assert processing.singleton and not processing.autoscaled
        assert {t.name for t in env.kafka.topics} == {"approval-requests", "approval-results"}
    assert load_environment("dev").cache.allow_plaintext_clients
    assert not load_environment("prod").cache.allow_plaintext_clients


def test_nlb_addresses_are_the_last_usable_of_each_private_subnet():
    dev = load_environment("dev").network
    assert private_subnet_cidrs(dev) == ["10.10.16.0/20", "10.10.32.0/20"]
    assert nlb_private_ips(dev) == ["10.10.31.254", "10.10.47.254"]


# Issue 17: the auth and route settings that decide who reaches what; each refused with one line.
AUTH_AND_ROUTE_REFUSALS = [
    ("auth.allowed_signup_domains", ["*.example.com"], "auth.allowed_signup_domains.0: String should match pattern"),
    ("auth.allowed_signup_domains", ["Example.COM"], "auth.allowed_signup_domains.0: String should match pattern"),
    ("auth.allowed_signup_domains", ["@example.com"], "auth.allowed_signup_domains.0: String should match pattern"),
    ("auth.manager_groups", ["verified"], "auth: a group named 'verified' would collide"),
    ("auth.threat_protection", "on", "auth.threat_protection: Input should be 'off', 'audit' or 'enforced'"),
    (
        "auth.email",
        {"from_address": "no-reply@other.example", "verified_domain": "erp.example.com"},
        "auth.email: from_address must be an address at verified_domain erp.example.com",
    ),
    ("auth.email", {"from_address": "not-an-address"}, "auth.email.from_address: String should match pattern"),
    ("employee_function.business_timezone", "Asia/Busan", "'Asia/Busan' is not an IANA time zone name"),
    ("employee_function.max_leave_deduction_days", 0, "employee_function.max_leave_deduction_days: Input should be"),
    ("services.0.routes.0.methods", ["ANY", "GET"], "methods: ANY already covers every method"),
    ("services.0.routes.0.methods", ["GET", "GET"], "methods: each method once"),
    ("services.0.routes.0.methods", [], "List should have at least 1 item"),
    ("services.0.routes.0.groups", ["auditors"], "routes: /api/approvals: groups auditors not in auth.admin_groups"),
]


@pytest.mark.parametrize(
    ("field", "value", "expected"), AUTH_AND_ROUTE_REFUSALS, ids=[r[0] for r in AUTH_AND_ROUTE_REFUSALS]
)
def test_auth_and_route_settings_are_refused_with_one_line(config_dir, field, value, expected):
    edit(config_dir, "dev", field, value)
    assert expected in error_of(config_dir, "dev")


def test_an_empty_domain_list_turns_self_sign_up_off(config_dir):
    edit(config_dir, "dev", "auth.allowed_signup_domains", [])
    assert load_environment("dev", config_dir).auth.self_sign_up is False

"""Every production rule, broken one at a time in a copy of config/prod.yaml (issue 12 item 9).

Each case must fail with one line naming the file, the field and the rule; the same change in dev.yaml
(where it is a rule of production only) must load. Deleting any rule from config/models.py or config/sections.py fails its case.
"""

from __future__ import annotations

import pytest

from config import load_environment
from tests.config.test_config import edit, error_of

# (dotted field, bad value (None = delete it), the one-line error's tail)
PROD_RULES = [
    ("observability.alarm_emails", [], "observability.alarm_emails: production needs at least one alarm email"),
    ("database.multi_az", False, "database.multi_az: must be true in production"),
    ("database.deletion_protection", False, "database.deletion_protection: must be true in production"),
    ("database.removal", "destroy", "database.removal: 'destroy' is only allowed outside production"),
    ("database.rotation_days", None, "database.rotation_days: production rotates the DB credentials"),
    ("database.backup_retention_days", 3, "database.backup_retention_days: production keeps at least 7 days"),
    ("cache.replicas", 0, "cache.replicas: production needs >= 1 replica for automatic failover"),
    ("network.nat", {"type": "instance"}, "network.nat.type: production uses NAT gateways"),
    ("network.az_count", 1, "network.az_count: production spans at least 2 AZs"),
    ("schedule", {"start": "08:00", "stop": "20:00"}, "schedule: production does not sleep; remove the schedule"),
    (
        "auth.callback_urls",
        ["https://erp.example.com/callback", "http://localhost:3000/callback"],
        "auth.callback_urls: production allows only https URLs of a real host, not 'http://localhost:3000/callback'",
    ),
    (
        "auth.callback_urls",
        ["http://erp.example.com/callback"],
        "auth.callback_urls: production allows only https URLs of a real host, not 'http://erp.example.com/callback'",
    ),
    (
        "auth.callback_urls",
        ["https://localhost:3000/callback"],
        "auth.callback_urls: production allows only https URLs of a real host, not 'https://localhost:3000/callback'",
    ),
    # Issue 18 item 19: production's EKS endpoint is private (it replaces the "/16 at most" rule on public CIDRs).
    ("cluster.endpoint_access", "both", "cluster.endpoint_access: production's EKS endpoint is private"),
    ("cluster.endpoint_access", "public", "cluster.endpoint_access: production's EKS endpoint is private"),
    (
        "cluster.endpoint_public_cidrs",
        ["0.0.0.0/0"],
        "cluster.endpoint_access: private takes no endpoint_public_cidrs",
    ),
    ("auth.signin_rate_limit", None, "auth.signin_rate_limit: production rate-limits sign-up/sign-in"),
    ("cache.auth_token_rotation_days", None, "cache.auth_token_rotation_days: production rotates the cache AUTH"),
    ("auth.email", None, "auth.email: production sends sign-up links through SES"),
    # Issue 19: browsers reach production through the edge only, behind its web ACL, on its own domain.
    ("edge.waf.enabled", False, "edge.waf.enabled: production's edge has a web ACL"),
    ("api.edge_only", False, "api.edge_only: production's API answers only through the edge"),
    ("edge.domain_name", None, "edge: domain_name and certificate_arn go together"),
    ("edge", {"waf": {"enabled": True}}, "edge.domain_name: production serves TLS 1.2+ on its own domain"),
    # Issue 21: production's backups leave the region, are locked, and are restored on a schedule.
    ("backup.copy", None, "backup.copy: production copies its backups to a vault in a second region"),
    ("backup.vault_lock", None, "backup.vault_lock: production locks its backup vaults"),
    ("backup.drill.schedule", None, "backup.drill.schedule: production runs the restore drill on a schedule"),
]


def _break(config_dir, env, field, value):
    edit(config_dir, env, field, value, delete=value is None)


@pytest.mark.parametrize(("field", "value", "expected"), PROD_RULES, ids=[f"{r[0]}={r[1]!r}" for r in PROD_RULES])
def test_each_prod_rule_rejects_its_break(config_dir, field, value, expected):
    _break(config_dir, "prod", field, value)
    message = error_of(config_dir, "prod")
    assert message.startswith(f"{config_dir.name}/prod.yaml: ") or "prod.yaml: " in message
    assert expected in message


def test_committed_prod_passes_every_rule():
    prod = load_environment("prod")
    assert prod.production and prod.database.deletion_protection and prod.auth.signin_rate_limit
    assert all(url.startswith("https://") for url in prod.auth.callback_urls)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("auth.callback_urls", ["http://localhost:3000/callback"]),
        ("cluster.endpoint_public_cidrs", ["0.0.0.0/0"]),
        ("cluster.endpoint_access", "both"),
        ("auth.signin_rate_limit", None),
        ("cache.auth_token_rotation_days", None),
        ("database.deletion_protection", False),
        ("auth.email", None),
        ("edge.waf.enabled", False),
        ("api.edge_only", False),
        ("backup.drill.schedule", None),
    ],
)
def test_the_same_settings_are_allowed_outside_production(config_dir, field, value):
    edit(config_dir, "dev", field, value)
    load_environment("dev", config_dir)


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ("private", "cluster.endpoint_access: private takes no endpoint_public_cidrs"),
        ("public", "cluster.endpoint_access: public with endpoint_public_cidrs locks the nodes out"),
    ],
)
def test_endpoint_access_that_contradicts_the_public_cidrs_is_refused_everywhere(config_dir, access, expected):
    """dev.yaml gives endpoint_public_cidrs: a private endpoint has no public side to restrict, and a public-only one
    restricted to them would shut out the nodes (they reach it from the NAT addresses)."""
    edit(config_dir, "dev", "cluster.endpoint_access", access)
    assert expected in error_of(config_dir, "dev")


# Backup rules of every environment (issue 21): (dotted field in prod.yaml, bad value, the one-line error's tail).
BACKUP_RULES = [
    (
        "backup.rules.0.retention_days",
        5,
        "backup: rules[daily].retention_days: 5 days is outside the vault lock's [7, 120] (AWS Backup refuses the job)",
    ),
    (
        "backup.rules.1.retention_days",
        365,
        "backup: rules[weekly].retention_days: 365 days is outside the vault lock's [7, 120]",
    ),
    ("backup.copy.retention_days", 400, "backup: copy.retention_days: 400 days is outside the vault lock's [7, 120]"),
    ("backup.copy.region", "ap-northeast-2", "backup.copy.region: ap-northeast-2 is this environment's own region"),
    ("backup.rules.1.name", "daily", "backup: rules: names must be unique"),
    (
        "backup.rules.0.completion_window_minutes",
        90,
        "backup.rules.0: completion_window_minutes must be at least start_window_minutes + 60 (120)",
    ),
    ("backup.rules.0.start_window_minutes", 30, "backup.rules.0.start_window_minutes: Input should be greater than"),
    ("backup.rules.0.schedule", "rate(1 day)", "backup.rules.0.schedule: String should match pattern"),
    ("backup.rules.0.schedule", "cron(0 7 * * ?)", "backup.rules.0.schedule: String should match pattern"),
    ("backup.vault_lock.max_retention_days", 3, "backup.vault_lock: max_retention_days must be >= min_retention_days"),
    ("backup.vault_lock.changeable_for_days", 3, "backup.vault_lock: changeable_for_days: only compliance mode"),
    ("backup.vault_lock.mode", "legal-hold", "backup.vault_lock.mode: Input should be 'governance' or 'compliance'"),
    ("backup.drill.rto_target_minutes", 2, "backup.drill.rto_target_minutes: Input should be greater than or equal"),
    ("backup.drill.timezone", "KST", "backup.drill.timezone: 'KST' is not an IANA time zone name"),
]


@pytest.mark.parametrize(("field", "value", "expected"), BACKUP_RULES, ids=[f"{r[0]}={r[1]!r}" for r in BACKUP_RULES])
def test_each_backup_rule_rejects_its_break(config_dir, field, value, expected):
    edit(config_dir, "prod", field, value)
    assert expected in error_of(config_dir, "prod")


def test_a_copy_needs_a_rule_that_copies(config_dir):
    for index in (0, 1):
        edit(config_dir, "prod", f"backup.rules.{index}.copy", False)
    assert "backup: copy: no rule has copy: true" in error_of(config_dir, "prod")


def test_a_compliance_lock_takes_its_grace_period(config_dir):
    edit(
        config_dir,
        "prod",
        "backup.vault_lock",
        {"mode": "compliance", "min_retention_days": 7, "changeable_for_days": 7},
    )
    lock = load_environment("prod", config_dir).backup.vault_lock
    assert (lock.mode, lock.max_retention_days, lock.changeable_for_days) == ("compliance", None, 7)

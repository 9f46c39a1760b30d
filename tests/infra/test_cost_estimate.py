"""The cost estimate over the real synthesized templates: nothing silently dropped, dev within budget."""

from __future__ import annotations

import pytest

from tests.conftest import resources_of
from tools.cost import estimate

# Was 170: the ERP images are amd64-only, so dev runs x86 nodes (+$5.41 vs Graviton, `make cost COMPARE=graviton`).
# Was 180: issue 20's telemetry (collector metrics, SLO burn-rate alarms, Kafka alarms, the drift job: +$8.4 with
# dev's single SLO objective) and two pricing corrections (+$1.3: the workload-health job, per-container error lines).
# Was 185: issue 21's backups and restore drill (+$6.02): the vault's key $1, 7 daily points of the database
# (26 GB × $0.095) and of Kafka's volume (13 GB × $0.05), the drill's secret $0.40, the three drill metrics its
# alarms read $0.90 and those alarms $0.60; the drill runs on demand in dev (one run ~$0.03, nothing a month).
DEV_BUDGET_USD = 195.0
HOURS = 730


@pytest.fixture(scope="module")
def estimates(cdk_out, configs):
    return {env: estimate(cdk_out, config) for env, config in configs.items()}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_resource_is_priced_free_or_listed_unpriced(estimates, stack_templates, env):
    est = estimates[env]
    stacks = {name: t for name, t in stack_templates.items() if name.startswith(f"erp-{env}-")}
    assert sorted(s for s in est.stacks if s.startswith("erp-")) == sorted(stacks)
    accounted = {(line.stack, line.logical_id) for line in est.lines} | {(u.stack, u.logical_id) for u in est.unpriced}
    accounted.discard(("(env-wide)", "-"))
    total_resources = sum(len(t["Resources"]) for t in stacks.values())
    assert len(accounted) + sum(est.free.values()) == total_resources
    assert not [u for u in est.unpriced if "unknown" in u.reason.lower() and "type" in u.reason.lower()]


def test_dev_with_the_night_schedule_is_within_budget(estimates, configs):
    est = estimates["dev"]
    assert configs["dev"].schedule is not None
    assert est.total <= DEV_BUDGET_USD
    # Only the NAT instance lacks a sourced Seoul price; at the us-east-1 figure it adds ~$3.07.
    assert [(u.type, "t4g.nano" in u.reason) for u in est.unpriced] == [("AWS::EC2::Instance", True)]
    assert est.total + 0.0042 * HOURS <= DEV_BUDGET_USD


def test_dev_estimate_matches_a_hand_calculation(estimates, stack_templates):
    """Prices typed from ../shared/pricing-ap-northeast-2.md, counts read from the templates."""
    dev = {n: t for n, t in stack_templates.items() if n.startswith("erp-dev-")}

    def count(rtype: str) -> int:
        return sum(len(resources_of(t, rtype)) for t in dev.values())

    office_hours = 60 * 52 / 12  # MON-FRI 08:00-20:00
    hand = {
        "eks control plane": 0.10 * HOURS,
        "2 x t3.medium nodes (x86: the ERP images are amd64), office hours": 2 * 0.052 * office_hours,
        "node disks 2 x 20 GiB gp3": 2 * 20 * 0.0912 * office_hours / HOURS,
        "nat instance public ipv4": 0.005 * HOURS,
        "nat instance 8 GiB root": 8 * 0.0912,
        "nlb": 0.0225 * HOURS,
        "rds db.t4g.micro single-az": 0.025 * HOURS,
        "rds 20 GiB gp3": 20 * 0.131,
        "valkey cache.t4g.micro": 0.0192 * HOURS,
        "secrets": count("AWS::SecretsManager::Secret") * 0.40,
        "kms keys": count("AWS::KMS::Key") * 1.00,
        # Billed per metric read: the SLO burn-rate windows read two (bad and total requests) each.
        "alarms": sum(
            max(1, sum("MetricStat" in m for m in a["Properties"].get("Metrics", [])))
            for t in dev.values()
            for a in resources_of(t, "AWS::CloudWatch::Alarm").values()
        )
        * 0.10,
        "composite alarms": count("AWS::CloudWatch::CompositeAlarm") * 0.50,
        "metric filters": count("AWS::Logs::MetricFilter") * 0.30,
        # kafka-metrics collector: 4 cluster series + lag of 2 groups + used/capacity of 1 volume, and its EMF log.
        "collector metrics": 8 * 0.30,
        "http api 1 M requests": 1.23,
        "kafka pvc 10 GiB gp3": 10 * 0.0912,
        "logs 5 GB in, 10 GB stored": 5 * 0.76 + 10 * 0.0314,
        # AWS Backup: 7 daily points of the 20 GiB database and the 10 GiB Kafka volume, each after the first a
        # day's 5 % of changes (usage defaults).
        "backup points": (1 + 6 * 0.05) * (20 * 0.095 + 10 * 0.05),
        # The restore drill's metrics its alarms read (RestoreMinutes, RecoveryPointAgeHours, DrillSucceeded).
        "restore drill metrics": 3 * 0.30,
    }
    assert count("AWS::EC2::NatGateway") == 0 and count("AWS::EKS::Nodegroup") == 1
    assert estimates["dev"].total == pytest.approx(sum(hand.values()), rel=0.03)


def test_prod_lists_what_the_price_file_cannot_price(estimates):
    unpriced = {u.type for u in estimates["prod"].unpriced}
    # Seoul prices for db.t4g.medium Multi-AZ and cache.t4g.small are marked unknown (U) in the price facts.
    assert unpriced == {"AWS::RDS::DBInstance", "AWS::ElastiCache::ReplicationGroup"}
    assert estimates["prod"].total > estimates["dev"].total


def test_graviton_what_if_reprices_only_the_x86_nodes(estimates):
    """`make cost COMPARE=graviton`: the same config with the apps nodes on Graviton, and the delta."""
    from tools.cost import compare, graviton_what_if

    for env in ("dev", "prod"):
        real = estimates[env]
        arm = graviton_what_if(real)
        changed = [(a, b) for a, b in zip(real.lines, arm.lines, strict=True) if a.usd != b.usd]
        assert changed and all(a.type == "AWS::EKS::Nodegroup" for a, _ in changed)
        assert real.total > arm.total  # x86 costs more; the delta is what amd64-only images cost
        assert f"{real.total - arm.total:+,.2f}" in compare(arm, real)
    dev_nodes = [
        (a, b)
        for a, b in zip(estimates["dev"].lines, graviton_what_if(estimates["dev"]).lines, strict=True)
        if a.usd != b.usd
    ]
    ((x86, arm),) = dev_nodes
    assert x86.item.startswith("t3.medium") and arm.item.startswith("t4g.medium")
    assert arm.usd == pytest.approx(x86.usd * 0.0416 / 0.052)


def test_employee_proxy_is_listed_at_zero_with_why(estimates):
    """Issue 10 asks for the in-cluster employee path at <= $5/month in dev: it adds no billed resource."""
    (line,) = [a for a in estimates["dev"].assumptions if a.startswith("employee-service proxy")]
    assert "$0 added" in line and "function URLs are free" in line

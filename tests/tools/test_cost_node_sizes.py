"""`make cost` shows each node group's cost at its minimum, configured and maximum size (issue 22 item 5).

Hand-made assemblies with the arithmetic written out: t3.medium at $0.052/hour, gp3 root volumes at
$0.0912/GB-month (tools/cost/prices-ap-northeast-2.yaml), 730 hours or the night schedule's 260.
"""

from __future__ import annotations

import json

import pytest

from config import load_environment
from tests.tools.test_cost import HOURS, SCHEDULE, SCHEDULED_HOURS, make_env, old_system, res, write_assembly
from tools import cost
from tools.cost.model import _num
from tools.cost.node_sizes import node_group_costs, node_hours

T3_MEDIUM, GP3, DISK = 0.052, 0.0912, 20


def per_node(hours: float = HOURS) -> float:
    """One t3.medium and its 20 GiB gp3 root volume (a monthly price prorated to the node's hours)."""
    return T3_MEDIUM * hours + DISK * GP3 * hours / HOURS


def nodegroup(group: str, low: int, desired: int, high: int, **extra) -> dict:
    return res(
        "AWS::EKS::Nodegroup",
        InstanceTypes=["t3.medium"],
        ScalingConfig={"MinSize": low, "DesiredSize": desired, "MaxSize": high},
        DiskSize=DISK,
        Tags={"erp/node-group": group},
        **extra,
    )


def test_each_group_is_priced_at_min_configured_and_max(tmp_path):
    assembly = old_system(tmp_path / "cdk.out", Nodes=nodegroup("apps", 1, 2, 6))
    (group,) = node_group_costs(assembly, make_env())
    assert (group.group, group.instance_type) == ("apps", "t3.medium")
    assert group.nodes == {"min": 1, "configured": 2, "max": 6}
    assert group.usd == {
        "min": pytest.approx(1 * per_node()),
        "configured": pytest.approx(2 * per_node()),
        "max": pytest.approx(6 * per_node()),
    }


def test_the_configured_size_is_what_the_estimate_already_counts(tmp_path):
    assembly = old_system(tmp_path / "cdk.out", Nodes=nodegroup("apps", 1, 2, 6))
    env = make_env()
    est = cost.estimate(assembly, env)
    (group,) = node_group_costs(assembly, env)
    nodes_in_estimate = sum(line.usd for line in est.lines if line.logical_id == "Nodes")
    assert group.usd["configured"] == pytest.approx(nodes_in_estimate)


def test_sizes_follow_the_night_schedule_hours(tmp_path):
    assembly = old_system(tmp_path / "cdk.out", Nodes=nodegroup("apps", 0, 2, 3))
    (group,) = node_group_costs(assembly, make_env(schedule=SCHEDULE))
    assert group.usd["min"] == 0
    assert group.usd["max"] == pytest.approx(3 * per_node(SCHEDULED_HOURS))


def test_a_spot_group_is_unpriced_at_every_size_never_zero(tmp_path):
    spot = nodegroup("batch", 0, 1, 4, CapacityType="SPOT")
    assembly = old_system(tmp_path / "cdk.out", Nodes=nodegroup("apps", 1, 2, 3), Spot=spot)
    groups = {g.group: g for g in node_group_costs(assembly, make_env())}
    assert groups["batch"].usd == {"min": None, "configured": None, "max": None}
    assert "Spot" in groups["batch"].unpriced[0]
    assert groups["apps"].usd["max"] == pytest.approx(3 * per_node())


def test_make_cost_prints_the_sizes_in_every_format(tmp_path, capsys):
    kafka = nodegroup("kafka", 3, 3, 3)
    assembly = old_system(tmp_path / "cdk.out", Nodes=nodegroup("apps", 1, 2, 6), Kafka=kafka)
    args = ["--env", "dev", "--cdk-out", str(assembly)]
    # The CLI reads the committed dev.yaml: its night schedule sets the node hours.
    hours = node_hours(load_environment("dev"))
    node = per_node(hours)

    assert cost.main(args) == 0
    text = capsys.readouterr().out
    assert (
        f"Node groups at min / configured / max size (nodes and root volumes, scheduled, {_num(hours, 1)} h/month"
        in text
    )
    (apps,) = [line for line in text.splitlines() if line.startswith("apps ")]
    assert apps.split()[1:] == ["t3.medium", "1", "/", "2", "/", "6", *(f"{n * node:,.2f}" for n in (1, 2, 6))]
    (total,) = [line for line in text.splitlines() if line.startswith("all groups")]
    assert total.split()[-1] == f"{9 * node:,.2f}"

    assert cost.main([*args, "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert f"| kafka | t3.medium | 3 / 3 / 3 | {3 * node:,.2f} | {3 * node:,.2f} | {3 * node:,.2f} |" in markdown

    assert cost.main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["env"] == "dev"
    sizes = {g["group"]: g for g in data["node_sizes"]}
    assert sizes["apps"]["nodes"] == {"min": 1, "configured": 2, "max": 6}
    assert sizes["apps"]["usd"]["max"] == pytest.approx(6 * node, abs=1e-3)


def test_groups_sized_by_a_token_are_left_out_rather_than_guessed(tmp_path):
    tokened = nodegroup("apps", 1, 2, 3)
    tokened["Properties"]["ScalingConfig"]["MaxSize"] = {"Ref": "MaxNodes"}
    assembly = write_assembly(tmp_path / "cdk.out", {"Dev": {"erp-dev-platform": {"Nodes": tokened}}})
    assert node_group_costs(assembly, make_env()) == []

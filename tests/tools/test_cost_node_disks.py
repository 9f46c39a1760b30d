"""Node root volumes are priced at their configured size after the disk moved into the node groups' launch
templates (issue 18 item 19: with a launch template EKS refuses the node group's DiskSize, and the estimator
silently fell back to EKS's 20 GiB default)."""

from __future__ import annotations

import pytest

from tools.cost import estimate


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_node_disks_are_priced_at_the_configured_size(cdk_out, configs, env):
    config = configs[env]
    items = {line.item for line in estimate(cdk_out, config).lines if line.type == "AWS::EKS::Nodegroup"}
    for group in config.cluster.node_groups:
        assert f"node root volumes, gp3 {group.disk_gib} GiB each" in items, (group.name, sorted(items))

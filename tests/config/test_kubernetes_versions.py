"""Which Kubernetes minors config accepts (issue 24): EKS standard support only, nodes never ahead of the control
plane and at most one minor behind it while an upgrade bakes. Each refusal is one line naming the field."""

from __future__ import annotations

import pytest

from config import load_environment
from config.base import SUPPORTED_KUBERNETES
from tests.config.test_config import edit, error_of


def test_both_environments_run_the_newest_supported_minor():
    newest = max(SUPPORTED_KUBERNETES, key=lambda v: tuple(map(int, v.split("."))))
    for env in ("dev", "prod"):
        cluster = load_environment(env).cluster
        assert cluster.kubernetes_version == newest == "1.36"
        assert cluster.node_version == newest


@pytest.mark.parametrize("version", ["1.34", "1.37", "1.3", "latest"])
def test_a_minor_outside_standard_support_is_refused(config_dir, version):
    edit(config_dir, "dev", "cluster.kubernetes_version", version)
    message = error_of(config_dir, "dev")
    assert "cluster.kubernetes_version: must be a version in EKS standard support" in message


def test_nodes_may_bake_one_minor_behind(config_dir):
    edit(config_dir, "dev", "cluster.node_kubernetes_version", "1.35")
    assert load_environment("dev", config_dir).cluster.node_version == "1.35"


@pytest.mark.parametrize(
    ("control", "nodes"),
    [("1.35", "1.36"), ("1.36", "1.34")],  # ahead of the control plane; two behind (1.34 is also unsupported)
)
def test_nodes_ahead_or_further_behind_are_refused(config_dir, control, nodes):
    edit(config_dir, "dev", "cluster.kubernetes_version", control)
    edit(config_dir, "dev", "cluster.node_kubernetes_version", nodes)
    message = error_of(config_dir, "dev")
    assert "cluster.node_kubernetes_version: " in message

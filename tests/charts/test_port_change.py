"""Changing a service's port replaces its target group (Port is create-only), and the Load Balancer
Controller's webhook refuses a new targetGroupARN on an existing TargetGroupBinding. The binding must
therefore be a NEW object whenever its target group is new: its name has to carry the port (and the
target group's construct id too, so both are replaced together).

constructs_lib/network/nlb.py names the target group construct `<service>-targets-<port>` and
k8s_charts/services.py names the binding `<service>-<port>`.
"""

from __future__ import annotations

from config import load_environment
from k8s_charts import build_charts
from tests.charts.conftest import fake_values


def binding_names(env) -> dict[str, str]:
    chart = build_charts(env, fake_values(env))["services"]
    return {
        doc["spec"]["serviceRef"]["name"]: doc["metadata"]["name"]
        for doc in chart.to_json()
        if doc["kind"] == "TargetGroupBinding"
    }


def test_a_new_port_is_a_new_target_group_binding():
    env = load_environment("dev")
    service = env.services[0]
    moved = env.model_copy(
        update={"services": [service.model_copy(update={"port": service.port + 100}), *env.services[1:]]}
    )
    before, after = binding_names(env), binding_names(moved)
    assert after[service.name] != before[service.name]

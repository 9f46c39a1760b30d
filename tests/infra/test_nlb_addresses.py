"""The service NLB's fixed private IPs make any replacement of it fail (issue 18 item 10): loud in two places.

- tests/infra/update_safety.yaml: every config field the addresses are computed from is `manual`, flows to the
  NLB's SubnetMappings and gives a procedure naming the fixed IPs (found by recording what
  config/hosting.py nlb_private_ips reads, so a new input cannot slip by);
- tools/replacement_guard.py blocks a replaced or renamed NLB and prints the procedure
  (tests/tools/test_replacement_guard.py, on real `cdk diff` output).
"""

from __future__ import annotations

from pydantic import BaseModel

from config.hosting import nlb_private_ips
from tests.conftest import resources_of
from tests.infra.test_update_safety import TABLE, covers

NLB_TARGET = "AWS::ElasticLoadBalancingV2::LoadBalancer.SubnetMappings"


class _Reads:
    """A config section that records the dotted path of every leaf value read from it."""

    def __init__(self, model: BaseModel, path: str, seen: set[str]) -> None:
        self._model, self._path, self._seen = model, path, seen

    def __getattr__(self, name: str):
        value = getattr(self._model, name)
        path = f"{self._path}.{name}"
        if isinstance(value, BaseModel):
            return _Reads(value, path, self._seen)
        self._seen.add(path)
        return value


def test_every_field_the_nlb_addresses_come_from_is_manual_with_the_procedure(configs):
    for config in configs.values():
        seen: set[str] = set()
        assert nlb_private_ips(_Reads(config.network, "network", seen)) == nlb_private_ips(config.network)
        assert seen  # vpc_cidr, az_count, the subnet masks
        for field in seen:
            (key,) = [k for k in TABLE if covers(k, field)]
            entry = TABLE[key]
            assert entry["effect"] == "manual", f"{key}: moves the NLB's fixed IPs, a replaced NLB cannot take them"
            assert NLB_TARGET in entry.get("flows_to", []), key
            assert "fixed private IPs" in entry["procedure"], key


def test_the_nlb_takes_exactly_the_addresses_config_computes(stack_templates, configs):
    for env, config in configs.items():
        (nlb,) = resources_of(stack_templates[f"erp-{env}-api"], "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        mappings = nlb["Properties"]["SubnetMappings"]
        assert [m["PrivateIPv4Address"] for m in mappings] == nlb_private_ips(config.network)

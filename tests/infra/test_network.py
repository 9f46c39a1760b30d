"""The network tier per environment: subnets, NAT strategy, endpoints, flow logs."""

from __future__ import annotations

import subprocess

from aws_cdk.assertions import Match

from config.hosting import isolated_subnet_cidrs, subnet_cidrs
from constructs_lib.network.vpc import NAT_INSTALL_ATTEMPTS
from tests.conftest import resources_of


def test_three_subnet_tiers_per_az(stack_templates, configs):
    for env, config in configs.items():
        subnets = resources_of(stack_templates[f"erp-{env}-network"], "AWS::EC2::Subnet")
        assert len(subnets) == 3 * config.network.az_count
        tags = [{t["Key"]: t["Value"] for t in s["Properties"]["Tags"]} for s in subnets.values()]
        assert sorted({t["aws-cdk:subnet-type"] for t in tags}) == ["Isolated", "Private", "Public"]


def test_dev_uses_one_encrypted_nat_instance_and_no_gateway(template):
    dev = template("erp-dev-network")
    dev.resource_count_is("AWS::EC2::NatGateway", 0)
    dev.resource_count_is("AWS::EC2::Instance", 1)
    dev.has_resource_properties(
        "AWS::EC2::Instance",
        {
            "InstanceType": "t4g.nano",
            "SourceDestCheck": False,
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True, "VolumeType": "gp3", "VolumeSize": 8}}
            ],
        },
    )


def test_prod_has_a_nat_gateway_per_az(template, configs):
    prod = template("erp-prod-network")
    prod.resource_count_is("AWS::EC2::NatGateway", configs["prod"].network.az_count)
    prod.resource_count_is("AWS::EC2::Instance", 0)


def test_s3_gateway_and_configured_interface_endpoints(stack_templates, configs):
    for env, config in configs.items():
        endpoints = resources_of(stack_templates[f"erp-{env}-network"], "AWS::EC2::VPCEndpoint").values()
        kinds = [e["Properties"].get("VpcEndpointType", "Gateway") for e in endpoints]
        assert kinds.count("Gateway") == 1
        assert kinds.count("Interface") == len(config.network.interface_endpoints)
        for endpoint in endpoints:
            if endpoint["Properties"].get("VpcEndpointType") == "Interface":
                assert endpoint["Properties"]["PrivateDnsEnabled"] is True


def test_flow_logs_go_to_a_log_group_with_retention(template, configs):
    for env, config in configs.items():
        network = template(f"erp-{env}-network")
        network.has_resource_properties(
            "AWS::EC2::FlowLog", {"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
        )
        network.has_resource_properties(
            "AWS::Logs::LogGroup", {"RetentionInDays": config.network.flow_logs_retention_days}
        )


def test_default_security_group_is_locked_down(template):
    template("erp-prod-network").has_resource_properties(
        "Custom::VpcRestrictDefaultSG", Match.object_like({"DefaultSecurityGroupId": Match.any_value()})
    )


# --- the dev NAT instance's first boot (issue 18 item 3) ---------------------------------------------------------

STUBS = {
    # dnf fails the first $DNF_FAILURES calls (aws/aws-cdk#36717's race), then installs.
    "dnf": 'n=$(cat "$STATE/dnf" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/dnf"\n'
    '[ "$n" -ge "$DNF_FAILURES" ] || { echo "[Errno 2] No such file or directory: iptables-libs.rpm" >&2; exit 1; }',
    "systemctl": 'echo "$*" >> "$STATE/systemctl"',
    "sleep": 'echo "$1" >> "$STATE/sleep"',
    "dd": "true",
    "mkswap": "true",
    "swapon": "true",
    "ip": 'echo "default via 10.0.0.1 dev ens5 proto dhcp src 10.0.0.10 metric 512"',
    "sysctl": 'if [ "$1" = -p ]; then grep -q "ip_forward=1" "$2" && echo 1 > "$STATE/forward"; '
    'else cat "$STATE/forward" 2>/dev/null || echo 0; fi',
    # An in-memory rule list: -A appends (unless $IPTABLES_BROKEN), -C checks, -F flushes, -S lists a chain.
    "iptables": 'rules="$STATE/rules"; touch "$rules"; [ "$1" = -t ] && shift 2\n'
    'case "$1" in\n'
    '  -A) shift; [ -n "${IPTABLES_BROKEN:-}" ] || echo "-A $*" >> "$rules" ;;\n'
    '  -C) shift; grep -qxF -- "-A $*" "$rules" ;;\n'
    '  -F) grep -v -- "-A $2 " "$rules" > "$rules.new"; mv "$rules.new" "$rules" ;;\n'
    '  -S) grep -- "-A $2 " "$rules" || true ;;\n'
    "esac",
    # iptables-services' default rules (they REJECT forwarding) are loaded when the service starts.
    "service": 'cp "$STATE/rules" "$SAVED_RULES"',
    "cfn-signal": 'echo "$*" > "$STATE/signal"',
}


def nat_user_data(stack_templates) -> tuple[str, str, dict]:
    (logical_id, instance), *more = resources_of(stack_templates["erp-dev-network"], "AWS::EC2::Instance").items()
    assert not more
    script = instance["Properties"]["UserData"]["Fn::Base64"]
    assert isinstance(script, str), "the NAT user data must be a plain script (no unresolved tokens)"
    return logical_id, script, instance


def run_nat_setup(script: str, tmp_path, *, dnf_failures: int = 0, iptables_broken: bool = False) -> tuple[int, dict]:
    """The rendered user data under bash, every system command stubbed; absolute paths moved into tmp_path."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in STUBS.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/bash\n{body}\n")
        stub.chmod(0o755)
    (state / "rules").write_text("-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n")
    for path, moved in {
        "/opt/aws/bin/cfn-signal": str(bin_dir / "cfn-signal"),
        "/etc/sysctl.d/": f"{tmp_path}/sysctl-",
        "/etc/sysconfig/iptables": str(tmp_path / "saved-rules"),
        "/swapfile": str(tmp_path / "swapfile"),
    }.items():
        script = script.replace(path, moved)
    assert "/etc/" not in script and "/opt/" not in script
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STATE": str(state),
        "SAVED_RULES": str(tmp_path / "saved-rules"),
        "DNF_FAILURES": str(dnf_failures),
        **({"IPTABLES_BROKEN": "1"} if iptables_broken else {}),
    }
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    read = lambda name: (state / name).read_text() if (state / name).exists() else ""  # noqa: E731
    return done.returncode, {
        "signal": read("signal"),
        "dnf": int(read("dnf") or 0),
        "sleep": read("sleep").split(),
        "systemctl": read("systemctl"),
        "saved": (tmp_path / "saved-rules").read_text() if (tmp_path / "saved-rules").exists() else "",
        "stderr": done.stderr,
    }


def test_nat_instance_is_created_only_after_it_signals_a_verified_setup(stack_templates):
    """CDK's default user data ran one `yum install` and went on after a failure: an instance that forwards
    nothing, reported CREATE_COMPLETE. Now CloudFormation waits for the instance's own signal."""
    logical_id, script, instance = nat_user_data(stack_templates)
    assert instance["CreationPolicy"] == {"ResourceSignal": {"Count": 1, "Timeout": "PT20M"}}
    assert f"cfn-signal --stack erp-dev-network --resource {logical_id} --region ap-northeast-2 -e $exitCode" in script
    assert script.startswith("#!/bin/bash\n") and "trap exitTrap EXIT" in script
    # The private subnets' default routes (what every tier's egress uses) point at the signalled instance.
    routes = resources_of(stack_templates["erp-dev-network"], "AWS::EC2::Route").values()
    assert any(r["Properties"].get("InstanceId") == {"Ref": logical_id} for r in routes)


def test_nat_setup_retries_a_failed_package_install_and_verifies_the_result(stack_templates, tmp_path):
    _, script, _ = nat_user_data(stack_templates)
    code, seen = run_nat_setup(script, tmp_path, dnf_failures=2)
    assert code == 0, seen["stderr"]
    assert seen["signal"].endswith("-e 0\n")
    assert seen["dnf"] == 3 and seen["sleep"] == ["10", "20"]
    assert "enable --now iptables" in seen["systemctl"]
    # What a reboot loads: the masquerade rule on the default route's interface, no REJECT of forwarded traffic.
    assert "-A POSTROUTING -o ens5 -j MASQUERADE" in seen["saved"] and "REJECT" not in seen["saved"]


def test_nat_setup_gives_up_after_bounded_retries_and_fails_the_create(stack_templates, tmp_path):
    _, script, _ = nat_user_data(stack_templates)
    code, seen = run_nat_setup(script, tmp_path, dnf_failures=99)
    assert code != 0 and seen["signal"].endswith(f"-e {code}\n")
    assert seen["dnf"] == NAT_INSTALL_ATTEMPTS
    assert "iptables-services not installed" in seen["stderr"]
    assert not seen["saved"]  # nothing half-configured was persisted


def test_nat_setup_fails_when_the_masquerade_rule_did_not_land(stack_templates, tmp_path):
    _, script, _ = nat_user_data(stack_templates)
    code, seen = run_nat_setup(script, tmp_path, iptables_broken=True)
    assert code != 0 and not seen["signal"].endswith("-e 0\n")
    assert "masquerade" in seen["stderr"]


def test_the_subnet_plan_in_config_is_the_vpc_cdk_builds(stack_templates, configs):
    """config/hosting.py subnet_cidrs feeds the NLB's fixed addresses and the pods' egress to the cache's (isolated)
    subnets: it must be the plan the synthesized VPC really has."""
    kinds = {"Public": "public", "Private": "private", "Isolated": "isolated"}
    for env, config in configs.items():
        built: dict[str, list[str]] = {}
        for subnet in resources_of(stack_templates[f"erp-{env}-network"], "AWS::EC2::Subnet").values():
            tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
            built.setdefault(kinds[tags["aws-cdk:subnet-type"]], []).append(subnet["Properties"]["CidrBlock"])
        assert {kind: sorted(blocks) for kind, blocks in built.items()} == {
            kind: sorted(blocks) for kind, blocks in subnet_cidrs(config.network).items()
        }
        assert isolated_subnet_cidrs(config.network) == subnet_cidrs(config.network)["isolated"]

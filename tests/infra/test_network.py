"""The network tier per environment: subnets, NAT strategy, endpoints, flow logs."""

from __future__ import annotations

from aws_cdk.assertions import Match

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

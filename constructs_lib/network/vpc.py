"""The VPC every tier lives in, shaped per environment by config."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.sections import NetworkConfig
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.policies import log_removal, retention

# The committed cdk.context.json holds this id until someone refreshes the lookup with credentials
# (a deploy with it fails: "image id ... does not exist").
PLACEHOLDER_AMI = "ami-00000000000000000"


def nat_image(instance_type: str) -> ec2.IMachineImage:
    """Amazon Linux 2023 for the NAT instance, pinned: a context lookup cached in cdk.context.json.

    ImageId is create-only; reading the latest AMI on every deploy (SSM) would replace the NAT instance
    whenever Amazon publishes one. The AMI moves only when someone refreshes the committed lookup
    (README: "Refresh the NAT instance's AMI").
    """
    arch = "arm64" if "g." in instance_type else "x86_64"
    return ec2.MachineImage.lookup(
        name=f"al2023-ami-2023.*-kernel-6.*-{arch}", owners=["amazon"], filters={"architecture": [arch]}
    )


class ErpVpc(Construct):
    """Public / private-with-egress / isolated subnets, NAT per env, endpoints, flow logs.

    Dev saves ~$40/month per AZ with one NAT instance; prod pays for a gateway
    per AZ so that losing an AZ does not cut the others off the internet.
    """

    def __init__(self, scope: Construct, id: str, *, config: NetworkConfig, production: bool) -> None:
        super().__init__(scope, id)
        masks = config.subnet_masks
        if config.nat.type == "instance":
            nat_provider = ec2.NatProvider.instance_v2(
                instance_type=ec2.InstanceType(config.nat.instance_type),
                machine_image=nat_image(config.nat.instance_type),
                default_allowed_traffic=ec2.NatTrafficDirection.OUTBOUND_ONLY,
                associate_public_ip_address=True,
            )
            nat_count = config.nat.count or 1
        else:
            nat_provider = ec2.NatProvider.gateway()
            nat_count = config.nat.count or config.az_count

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.vpc_cidr),
            max_azs=config.az_count,
            nat_gateway_provider=nat_provider,
            nat_gateways=nat_count,
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=masks.public),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=masks.private
                ),
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=masks.isolated
                ),
            ],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
        if config.nat.type == "instance":
            # The instance only forwards traffic that private subnets start.
            nat_provider.security_group.add_ingress_rule(
                ec2.Peer.ipv4(config.vpc_cidr), ec2.Port.all_traffic(), "NAT for the VPC's own subnets"
            )
            for instance in self.vpc.node.find_all():
                if isinstance(instance, ec2.CfnInstance):
                    # The provider exposes no block-device option; encrypt the root volume anyway.
                    instance.add_property_override(
                        "BlockDeviceMappings",
                        [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True, "VolumeType": "gp3", "VolumeSize": 8}}],
                    )
                    acknowledge(instance, "AwsSolutions-EC26", "Root volume encrypted through a property override.")
            acknowledge(
                self.vpc,
                "AwsSolutions-EC28",
                "Dev NAT instance: detailed monitoring costs more than the instance itself.",
            )
            acknowledge(
                self.vpc,
                "AwsSolutions-EC29",
                "Dev NAT instance is disposable: CDK recreates it; no data lives on it.",
            )

        for name in config.interface_endpoints:
            endpoint = self.vpc.add_interface_endpoint(
                f"Endpoint-{name}",
                service=ec2.InterfaceVpcEndpointAwsService(name),
                private_dns_enabled=True,
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            )
            acknowledge(
                endpoint,
                "AwsSolutions-EC23",
                "Endpoint admits HTTPS from the VPC's own CIDR only (a token the rule cannot evaluate).",
            )

        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=retention(config.flow_logs_retention_days),
            removal_policy=log_removal(production),
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                flow_log_group,
                iam.Role(self, "FlowLogRole", assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com")),
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.flow_log_group = flow_log_group

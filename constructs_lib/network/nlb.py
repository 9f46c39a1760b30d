"""The internal NLB between the HTTP API's VPC Link and the EKS services.

One TCP listener and one IP target group per service: the cluster's TargetGroupBindings
register pod IPs into the groups by ARN, so nothing about the pods is known here.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from config.hosting import nlb_private_ips, private_subnet_cidrs
from config.sections import NetworkConfig, ServiceConfig
from constructs_lib.common.nag import acknowledge
from constructs_lib.common.security_groups import closed_security_group


def health_check(service: ServiceConfig) -> elbv2.HealthCheck:
    """The same check as the pod probes (k8s_charts.services.health_probe): TCP, or GET on a real path."""
    http = service.health.type == "http"
    return elbv2.HealthCheck(
        protocol=elbv2.Protocol.HTTP if http else elbv2.Protocol.TCP,
        path=service.health.path if http else None,
        port="traffic-port",
        interval=Duration.seconds(10),
        healthy_threshold_count=3,
        unhealthy_threshold_count=3,
    )


class ServiceNlb(Construct):
    """Private subnets only; its security group admits nobody until ``admit`` names a caller."""

    def __init__(
        self, scope: Construct, id: str, *, vpc: ec2.IVpc, services: list[ServiceConfig], network: NetworkConfig
    ) -> None:
        super().__init__(scope, id)
        # Fixed addresses (one per private subnet), so the pods' NetworkPolicies can admit exactly the NLB.
        self.private_ips = nlb_private_ips(network)
        targets = private_subnet_cidrs(network)
        self._ports = [ec2.Port.tcp(service.port) for service in services]
        self.security_group = closed_security_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Service NLB: admits the HTTP API VPC Link; sends only to pods on service ports",
        )
        for service in services:
            # Targets are pod IPs, which the VPC CNI takes from the private subnets (where the nodes are);
            # health checks use the same (traffic) port.
            for block in targets:
                self.security_group.add_egress_rule(
                    ec2.Peer.ipv4(block), ec2.Port.tcp(service.port), f"to {service.name} pods in {block}"
                )
        self.load_balancer = elbv2.NetworkLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            # A service may run fewer pods than there are AZs (dev runs one).
            cross_zone_enabled=True,
        )
        private = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets
        if len(private) != len(self.private_ips):
            raise ValueError(f"the VPC has {len(private)} private subnets, config computes {len(self.private_ips)}")
        cfn = self.load_balancer.node.default_child
        cfn.add_property_deletion_override("Subnets")
        cfn.add_property_override(
            "SubnetMappings",
            [
                {"SubnetId": subnet.subnet_id, "PrivateIPv4Address": ip}
                for subnet, ip in zip(private, self.private_ips, strict=True)
            ],
        )
        acknowledge(
            self.load_balancer,
            "AwsSolutions-ELB2",
            "NLB access logs cover TLS listeners only; these are TCP, and the HTTP API logs every request.",
        )
        self.target_groups: dict[str, elbv2.NetworkTargetGroup] = {}
        self.listeners: dict[str, elbv2.NetworkListener] = {}
        for service in services:
            group = elbv2.NetworkTargetGroup(
                self,
                # The port is create-only: a new port is a new target group (and a new binding, named alike).
                f"{service.name}-targets-{service.port}",
                vpc=vpc,
                port=service.port,
                protocol=elbv2.Protocol.TCP,
                target_type=elbv2.TargetType.IP,
                # The source stays the NLB, so pods can admit it by security group.
                preserve_client_ip=False,
                deregistration_delay=Duration.seconds(30),
                health_check=health_check(service),
            )
            self.target_groups[service.name] = group
            self.listeners[service.name] = self.load_balancer.add_listener(
                f"{service.name}-listener",
                port=service.port,
                protocol=elbv2.Protocol.TCP,
                default_target_groups=[group],
            )

    @property
    def target_group_arns(self) -> dict[str, str]:
        return {name: group.target_group_arn for name, group in self.target_groups.items()}

    def admit(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Let a caller reach every service listener (and nothing else)."""
        for port in self._ports:
            self.security_group.connections.allow_from(peer, port, description)

"""Security groups that send nothing until a rule names the callee: every path through the VPC is explicit."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct


def closed_security_group(scope: Construct, id: str, *, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
    """No egress (allow_all_outbound=False) and no ingress: callers and callees are added one by one."""
    return ec2.SecurityGroup(scope, id, vpc=vpc, description=description, allow_all_outbound=False)


def lambda_security_group(scope: Construct, id: str, *, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
    """A VPC Lambda's group: HTTPS out to the AWS APIs (Secrets Manager), everything else added by name."""
    group = closed_security_group(scope, id, vpc=vpc, description=description)
    group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs (Secrets Manager)")
    return group

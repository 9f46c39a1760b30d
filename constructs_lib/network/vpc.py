"""The VPC every tier lives in, shaped per environment by config."""

from __future__ import annotations

from aws_cdk import CfnCreationPolicy, CfnResourceSignal, Duration, Fn
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


# Bounded retries of the one package install (aws/aws-cdk#36717: on AL2023 a concurrent `dnf clean all` removes
# the downloaded packages mid-transaction; on a 512 MiB t4g.nano dnf can also be OOM-killed next to the SSM
# agent). 8 attempts, 10 s more wait each time: at most ~5 min of waiting, inside NAT_SIGNAL_TIMEOUT.
NAT_INSTALL_ATTEMPTS = 8
NAT_INSTALL_BACKOFF_SECONDS = 10
# How long CloudFormation waits for the instance's cfn-signal; no signal (no cfn-signal, no network) fails too.
NAT_SIGNAL_TIMEOUT = Duration.minutes(20)
# The iptables rules file `service iptables save` writes and the iptables service loads at boot.
IPTABLES_RULES = "/etc/sysconfig/iptables"
FORWARDING_CONF = "/etc/sysctl.d/custom-ip-forwarding.conf"
SWAP_FILE = "/swapfile"


def nat_setup_commands() -> list[str]:
    """The NAT instance's first-boot script (after CDK's cfn-signal exit trap): configure, then VERIFY, then exit 0.

    CDK's default (NatInstanceProviderV2.DEFAULT_USER_DATA_COMMANDS) runs `yum install iptables-services` once and
    carries on after a failure, leaving an instance that forwards nothing while CloudFormation reports success;
    dev has no interface endpoints, so node bootstrap, image pulls, kubectl and the migration Trigger then fail
    far from the cause. Here every step that fails exits non-zero, the exit trap sends that status with
    cfn-signal, and the instance's CreationPolicy turns it (or a missing signal) into a failed create.
    """
    attempts, backoff = NAT_INSTALL_ATTEMPTS, NAT_INSTALL_BACKOFF_SECONDS
    return [
        "set -uo pipefail",
        'fail() { echo "NAT setup FAILED: $*" >&2; exit 1; }',
        # Room for dnf on 512 MiB (disk-backed: the root volume is 8 GiB); best effort, the retries still apply.
        f"if [ ! -e {SWAP_FILE} ]; then",
        f"  if dd if=/dev/zero of={SWAP_FILE} bs=1M count=512 status=none && chmod 600 {SWAP_FILE}"
        f" && mkswap {SWAP_FILE} >/dev/null && swapon {SWAP_FILE}; then echo 'swap file on';"
        f" else echo 'no swap file (continuing)'; rm -f {SWAP_FILE}; fi",
        "fi",
        "installed=0",
        f"for attempt in $(seq 1 {attempts}); do",
        "  if dnf install -y iptables-services; then installed=1; break; fi",
        f"  if [ $attempt -lt {attempts} ]; then",
        f'    echo "dnf install failed (attempt $attempt of {attempts}); retrying in $((attempt * {backoff})) s"',
        f"    sleep $((attempt * {backoff}))",
        "  fi",
        "done",
        f'[ "$installed" = 1 ] || fail "iptables-services not installed after {attempts} attempts"',
        # cfn-signal ships with the AL2023 AMI; should a future AMI drop it, the signal times out (still a failure).
        "[ -x /opt/aws/bin/cfn-signal ] || dnf install -y aws-cfn-bootstrap || echo 'no cfn-signal: the create times out'",
        'systemctl enable --now iptables || fail "the iptables service did not start"',
        f"echo 'net.ipv4.ip_forward=1' > {FORWARDING_CONF}",
        f'sysctl -p {FORWARDING_CONF} || fail "cannot turn on IP forwarding"',
        "iface=$(ip -4 route show default | awk '{print $5; exit}')",
        '[ -n "$iface" ] || fail "no default route"',
        'iptables -t nat -C POSTROUTING -o "$iface" -j MASQUERADE 2>/dev/null'
        ' || iptables -t nat -A POSTROUTING -o "$iface" -j MASQUERADE || fail "cannot add the masquerade rule"',
        # iptables-services' default rules REJECT everything forwarded.
        'iptables -F FORWARD || fail "cannot flush the FORWARD chain"',
        'service iptables save || fail "cannot save the rules"',
        # Verify what a reboot will also load, not just what the commands returned.
        '[ "$(sysctl -n net.ipv4.ip_forward)" = 1 ] || fail "IP forwarding is off"',
        'iptables -t nat -C POSTROUTING -o "$iface" -j MASQUERADE || fail "no masquerade rule on $iface"',
        '! iptables -S FORWARD | grep -q REJECT || fail "the FORWARD chain still rejects"',
        f'grep -q -- "-A POSTROUTING -o $iface -j MASQUERADE" {IPTABLES_RULES} || fail "masquerade rule not saved"',
        f"[ -f {FORWARDING_CONF} ] || fail 'forwarding is not persisted'",
        'systemctl is-enabled --quiet iptables || fail "iptables is not enabled at boot"',
        'echo "NAT ready on $iface"',
    ]


def _signal_nat_setup(instance: ec2.Instance) -> None:
    """Per-instance user data (the cfn-signal names this instance) and a CreationPolicy that waits for it."""
    user_data = ec2.UserData.for_linux()
    user_data.add_signal_on_exit_command(instance)
    user_data.add_commands(*nat_setup_commands())
    cfn = instance.instance
    cfn.add_property_override("UserData", Fn.base64(user_data.render()))
    cfn.cfn_options.creation_policy = CfnCreationPolicy(
        resource_signal=CfnResourceSignal(count=1, timeout=NAT_SIGNAL_TIMEOUT.to_iso_string())
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
                # Replaced per instance below (with its cfn-signal); never CDK's single unchecked `yum install`.
                user_data=ec2.UserData.custom("#!/bin/bash\n" + "\n".join(nat_setup_commands())),
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
            # Created only once it has signalled a verified setup (issue 18 item 3): the private subnets' routes,
            # and so everything behind them, wait for a NAT that forwards.
            for gateway in nat_provider.gateway_instances:
                _signal_nat_setup(gateway)
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

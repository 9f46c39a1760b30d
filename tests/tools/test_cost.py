"""The cost estimator against small hand-made cloud assemblies, with the arithmetic written out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from config import CONFIG_DIR
from config.models import EnvironmentConfig
from tools import cost

HOURS = 730
SCHEDULED_HOURS = 60 * 52 / 12  # MON-FRI 08:00-20:00 = 60 h/week -> 260 h/month
NO_USAGE = {
    "api_requests_per_month": 0,
    "lambda_invocations_per_month": 0,
    "lambda_avg_duration_ms": 1,
    "log_ingest_gb_per_month": 0,
    "log_stored_gb": 0,
    "nat_processed_gb_per_month": 0,
    "rds_backup_gb": 0,
    "collector_custom_metrics": 0,
}
# The smallest volume that holds dev.yaml's topics (the Kafka retention sizing refuses less).
KAFKA_GIB = 10
SCHEDULE = {"timezone": "Asia/Seoul", "weekdays": "MON-FRI", "start": "08:00", "stop": "20:00"}


def make_env(**overrides) -> EnvironmentConfig:
    """dev.yaml with the fields the estimate reads pinned, so the expected totals do not drift with it."""
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    data.update(
        schedule=None,
        usage=NO_USAGE,
        kafka={**data["kafka"], "replicas": 1, "storage_gib": KAFKA_GIB, "initial_storage_gib": KAFKA_GIB},
    )
    data.update(overrides)
    return EnvironmentConfig.model_validate(data)


def res(rtype: str, **props) -> dict:
    return {"Type": rtype, "Properties": props}


def write_assembly(root: Path, stages: dict[str, dict[str, dict]], top: dict[str, dict] | None = None) -> Path:
    """cdk.out as CDK lays it out: manifest.json -> assembly-<Stage>/manifest.json -> one template per stack."""

    def stack_artifacts(folder: Path, stacks: dict[str, dict]) -> dict:
        artifacts = {}
        for name, resources in stacks.items():
            artifact_id = name.replace("-", "")
            (folder / f"{artifact_id}.template.json").write_text(json.dumps({"Resources": resources}))
            artifacts[artifact_id] = {
                "type": "aws:cloudformation:stack",
                "environment": "aws://111111111111/ap-northeast-2",
                "properties": {"templateFile": f"{artifact_id}.template.json", "stackName": name},
            }
        return artifacts

    root.mkdir(parents=True, exist_ok=True)
    artifacts = stack_artifacts(root, top or {})
    for stage, stacks in stages.items():
        folder = root / f"assembly-{stage}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"artifacts": stack_artifacts(folder, stacks)}))
        artifacts[f"assembly-{stage}"] = {
            "type": "cdk:cloud-assembly",
            "properties": {"directoryName": f"assembly-{stage}", "displayName": stage},
        }
    (root / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    return root


def network(**extra) -> dict:
    """The old system's network: one NAT gateway (with its EIP), an internet-facing ALB in two AZs."""
    return {
        "Vpc": res("AWS::EC2::VPC", CidrBlock="10.10.0.0/16"),
        "Public1": res("AWS::EC2::Subnet", MapPublicIpOnLaunch=True, VpcId={"Ref": "Vpc"}),
        "Public2": res("AWS::EC2::Subnet", MapPublicIpOnLaunch=True, VpcId={"Ref": "Vpc"}),
        "NatEip": res("AWS::EC2::EIP", Domain="vpc"),
        "Nat": res(
            "AWS::EC2::NatGateway", AllocationId={"Fn::GetAtt": ["NatEip", "AllocationId"]}, SubnetId={"Ref": "Public1"}
        ),
        "Alb": res(
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            Type="application",
            Scheme="internet-facing",
            Subnets=[{"Ref": "Public1"}, {"Ref": "Public2"}],
        ),
        **extra,
    }


def platform(**extra) -> dict:
    """The old system's cluster and database: EKS, 2 × t3.medium nodes with 20 GiB disks, db.t3.micro 20 GiB."""
    return {
        "Cluster": res(
            "AWS::EKS::Cluster",
            Version="1.35",
            UpgradePolicy={"SupportType": "STANDARD"},
            RoleArn={"Fn::GetAtt": ["ClusterRole", "Arn"]},
        ),
        "ClusterRole": res("AWS::IAM::Role", AssumeRolePolicyDocument={}),
        "Nodes": res(
            "AWS::EKS::Nodegroup",
            ClusterName={"Ref": "Cluster"},
            InstanceTypes=["t3.medium"],
            ScalingConfig={"MinSize": 1, "DesiredSize": 2, "MaxSize": 3},
            DiskSize=20,
        ),
        "Db": res(
            "AWS::RDS::DBInstance",
            Engine="mysql",
            EngineVersion="8.4.7",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage="20",
            StorageType="gp3",
            MultiAZ=False,
        ),
        **extra,
    }


def old_system(root: Path, **platform_extra) -> Path:
    return write_assembly(root, {"Dev": {"erp-dev-network": network(), "erp-dev-platform": platform(**platform_extra)}})


def lines_of(est: cost.Estimate, logical_id: str) -> list[cost.Line]:
    return [line for line in est.lines if line.logical_id == logical_id]


# The shared pricing notes' worked check of the old design (one NAT gateway, 2 × t3.medium,
# db.t3.micro, one ALB, three public IPv4) is $244.61; this env adds 10 GiB of Kafka volume.
OLD_SYSTEM_TOTAL = (
    0.10 * HOURS  # EKS control plane, standard support: 73.00
    + 2 * 0.052 * HOURS  # 2 × t3.medium nodes: 75.92
    + 2 * 20 * 0.0912  # 2 × 20 GiB gp3 node root volumes: 3.648
    + 0.026 * HOURS  # db.t3.micro Single-AZ: 18.98
    + 20 * 0.131  # 20 GiB RDS gp3 Single-AZ: 2.62
    + 0 * 0.095  # RDS backup beyond the free allowance (usage 0)
    + 0.059 * HOURS  # NAT gateway: 43.07
    + 0 * 0.059  # NAT data processed (usage 0)
    + 0.0225 * HOURS  # ALB: 16.425
    + 3 * 0.005 * HOURS  # public IPv4, the NAT's EIP + the ALB in 2 AZs: 10.95
    + 1 * KAFKA_GIB * 0.0912  # Kafka PVC, 1 replica × 10 GiB gp3: 0.912
    + 0 * 0.76  # CloudWatch Logs ingestion (usage 0)
    + 0 * 0.0314  # CloudWatch Logs storage (usage 0)
)  # = 245.525


def test_old_system_total_matches_the_hand_calculation(tmp_path):
    est = cost.estimate(old_system(tmp_path / "cdk.out"), make_env())

    assert est.total == pytest.approx(OLD_SYSTEM_TOTAL)
    assert est.total == pytest.approx(244.613 + 0.912)
    assert est.unpriced == []
    assert est.stacks == ["erp-dev-network", "erp-dev-platform", cost.ENV_WIDE]
    assert est.subtotals["erp-dev-network"] == pytest.approx(
        0.005 * HOURS + 0.059 * HOURS + 0.0225 * HOURS + 2 * 0.005 * HOURS
    )
    assert est.free["AWS::IAM::Role"] == 1 and est.free["AWS::EC2::Subnet"] == 2


def test_schedule_scales_node_groups_by_scheduled_hours(tmp_path):
    assembly = old_system(tmp_path / "cdk.out")
    always = cost.estimate(assembly, make_env())
    scheduled = cost.estimate(assembly, make_env(schedule=SCHEDULE))

    fraction = SCHEDULED_HOURS / HOURS  # 260 / 730
    nodes_always, nodes_scheduled = lines_of(always, "Nodes"), lines_of(scheduled, "Nodes")
    assert [x.usd for x in nodes_scheduled] == pytest.approx([x.usd * fraction for x in nodes_always])
    assert nodes_scheduled[0].usd == pytest.approx(2 * 0.052 * 260)  # 27.04
    assert nodes_scheduled[1].usd == pytest.approx(2 * 20 * 0.0912 * 260 / 730)
    # Nothing else sleeps (stop_database is false).
    saved = sum(x.usd for x in nodes_always) * (1 - fraction)
    assert scheduled.total == pytest.approx(always.total - saved)


def test_stop_database_schedules_the_db_instance_hours_but_not_its_storage(tmp_path):
    est = cost.estimate(old_system(tmp_path / "cdk.out"), make_env(schedule={**SCHEDULE, "stop_database": True}))

    instance, storage, _backup = lines_of(est, "Db")
    assert instance.usd == pytest.approx(0.026 * 260)
    assert storage.usd == pytest.approx(20 * 0.131)


def test_unknown_type_is_listed_unpriced_not_counted_as_zero(tmp_path):
    assembly = old_system(tmp_path / "cdk.out", Firewall=res("AWS::NetworkFirewall::Firewall", FirewallName="fw"))
    est = cost.estimate(assembly, make_env())

    assert [(u.logical_id, u.type) for u in est.unpriced] == [("Firewall", "AWS::NetworkFirewall::Firewall")]
    assert "unknown type" in est.unpriced[0].reason
    assert lines_of(est, "Firewall") == []
    assert "AWS::NetworkFirewall::Firewall" not in " ".join(est.free)
    assert est.total == pytest.approx(OLD_SYSTEM_TOTAL)
    assert "1 item(s) unpriced" in cost.to_text(est)


def test_nested_stack_resources_are_priced_under_their_parent_stack(tmp_path):
    nested = {"Type": "AWS::CloudFormation::Stack", "Metadata": {"aws:asset:path": "child.nested.template.json"}}
    lost = {"Type": "AWS::CloudFormation::Stack", "Metadata": {"aws:asset:path": "missing.nested.template.json"}}
    assembly = write_assembly(tmp_path / "cdk.out", {"Dev": {"erp-dev-data": {"Child": nested, "Lost": lost}}})
    (assembly / "assembly-Dev" / "child.nested.template.json").write_text(
        json.dumps({"Resources": {"Key": res("AWS::KMS::Key")}})
    )
    est = cost.estimate(assembly, make_env())

    [key] = lines_of(est, "Child/Key")
    assert (key.stack, key.usd) == ("erp-dev-data", pytest.approx(1.00))
    assert [(u.logical_id, u.type) for u in est.unpriced] == [("Lost", "AWS::CloudFormation::Stack")]


def test_intrinsic_instance_type_is_unpriced_with_the_reason(tmp_path):
    nodes = res(
        "AWS::EKS::Nodegroup",
        InstanceTypes=[{"Ref": "NodeType"}],
        ScalingConfig={"MinSize": 1, "DesiredSize": 2, "MaxSize": 3},
    )
    est = cost.estimate(old_system(tmp_path / "cdk.out", Nodes=nodes), make_env())

    [unpriced] = est.unpriced
    assert unpriced.logical_id == "Nodes"
    assert "InstanceTypes[0] is an unresolved intrinsic" in unpriced.reason
    assert lines_of(est, "Nodes") == []
    assert est.total == pytest.approx(OLD_SYSTEM_TOTAL - 2 * 0.052 * HOURS - 2 * 20 * 0.0912)


def test_nat_instance_of_unknown_seoul_price_is_unpriced_but_its_public_ipv4_is_priced(tmp_path):
    nat = res(
        "AWS::EC2::Instance",
        InstanceType="t4g.nano",
        SourceDestCheck=False,
        NetworkInterfaces=[{"AssociatePublicIpAddress": True, "DeviceIndex": "0", "SubnetId": {"Ref": "Public1"}}],
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}}],
    )
    assembly = write_assembly(tmp_path / "cdk.out", {"Dev": {"erp-dev-network": {"NatInstance": nat}}})
    est = cost.estimate(assembly, make_env())

    [unpriced] = est.unpriced
    assert "t4g.nano" in unpriced.reason and "U:" in unpriced.reason
    assert [(x.item, x.usd) for x in lines_of(est, "NatInstance")] == [
        ("public IPv4 address", pytest.approx(0.005 * HOURS)),  # 3.65
        ("EBS gp3 volume", pytest.approx(8 * 0.0912)),
    ]


def test_spot_node_group_is_unpriced_but_its_disks_are_priced(tmp_path):
    nodes = res(
        "AWS::EKS::Nodegroup",
        InstanceTypes=["t3.medium"],
        CapacityType="SPOT",
        DiskSize=20,
        ScalingConfig={"MinSize": 1, "DesiredSize": 2, "MaxSize": 3},
    )
    est = cost.estimate(old_system(tmp_path / "cdk.out", Nodes=nodes), make_env())

    assert [u.logical_id for u in est.unpriced] == ["Nodes"]
    assert "Spot" in est.unpriced[0].reason
    assert [x.usd for x in lines_of(est, "Nodes")] == [pytest.approx(2 * 20 * 0.0912)]


def test_usage_items_lambda_behind_the_api_and_c_level_prices(tmp_path):
    usage = {
        **NO_USAGE,
        "api_requests_per_month": 2_000_000,
        "lambda_invocations_per_month": 500_000,
        "lambda_avg_duration_ms": 100,
        "log_ingest_gb_per_month": 5,
        "log_stored_gb": 10,
    }
    dashboards = {f"Dash{i}": res("AWS::CloudWatch::Dashboard", DashboardBody="{}") for i in range(4)}
    api = {
        "Api": res("AWS::ApiGatewayV2::Api", ProtocolType="HTTP"),
        "Fn": res("AWS::Lambda::Function", Architectures=["arm64"], MemorySize=256),
        "FnPermission": res(
            "AWS::Lambda::Permission", Principal="apigateway.amazonaws.com", FunctionName={"Fn::GetAtt": ["Fn", "Arn"]}
        ),
        "Scheduler": res("AWS::Lambda::Function", MemorySize=128),
        "Alarm": res("AWS::CloudWatch::Alarm", MetricName="Errors", Namespace="AWS/Lambda", Period=300),
        "Secret": res("AWS::SecretsManager::Secret"),
        "Key": res("AWS::KMS::Key"),
        **dashboards,
    }
    est = cost.estimate(write_assembly(tmp_path / "cdk.out", {"Dev": {"erp-dev-api": api}}), make_env(usage=usage))

    expected_api_stack = (
        2 * 1.23  # 2 M HTTP API requests: 2.46
        + 500_000 * 0.1 * 0.25 * 0.0000133334  # 12,500 GB-s on arm64: 0.1666675
        + 0.5 * 0.20  # 0.5 M Lambda requests: 0.10
        + 1 * 0.10  # one standard alarm: 0.10
        + 0.40  # one secret
        + 1.00  # one KMS key
        + 3 * 0  # dashboards 1-3: free per account
        + 1 * 3.00  # dashboard 4: 3.00, level C (~)
    )
    assert est.subtotals["erp-dev-api"] == pytest.approx(expected_api_stack)
    assert est.subtotals[cost.ENV_WIDE] == pytest.approx(KAFKA_GIB * 0.0912 + 5 * 0.76 + 10 * 0.0314)
    assert (
        est.free["AWS::Lambda::Function (not behind the HTTP API: deploy- or schedule-driven, negligible invocations)"]
        == 1
    )
    assert est.approximate
    assert "~3.00" in cost.to_text(est) and cost.FOOTNOTE in cost.to_text(est)


def test_markdown_output(tmp_path):
    assembly = old_system(tmp_path / "cdk.out", Firewall=res("AWS::NetworkFirewall::Firewall"))
    text = cost.to_markdown(cost.estimate(assembly, make_env()))

    assert "| Stack | Logical ID | Type | Billed | Quantity × price × hours | USD/month |" in text
    assert (
        "| erp-dev-platform | Nodes | AWS::EKS::Nodegroup | t3.medium nodes (always on) | 2 × $0.052/hour × 730 h | 75.92 |"
        in text
    )
    assert "| **erp-dev-platform** |  |  |  | **subtotal** | **174.17** |" in text  # 73 + 75.92 + 3.648 + 18.98 + 2.62
    assert f"**Total: ${OLD_SYSTEM_TOTAL:,.2f}/month (priced items only: 1 item(s) unpriced" in text
    assert "- `erp-dev-platform` `Firewall` (AWS::NetworkFirewall::Firewall): unknown type" in text
    assert "#### Assumptions" in text and "no schedule: everything runs 730 h/month" in text


def test_json_output(tmp_path):
    est = cost.estimate(old_system(tmp_path / "cdk.out"), make_env())
    data = json.loads(cost.to_json(est))

    assert data["total"] == pytest.approx(OLD_SYSTEM_TOTAL)
    assert data["subtotals"] == pytest.approx(est.subtotals)
    nat = next(x for x in data["lines"] if x["logical_id"] == "Nat" and x["item"] == "NAT gateway")
    assert (nat["quantity"], nat["unit_usd"], nat["hours"], nat["usd"]) == (1, 0.059, 730, pytest.approx(43.07))
    assert nat["price_source"].startswith("A+B:") and nat["approximate"] is False
    assert data["unpriced"] == [] and data["assumptions"]


def test_compare_prints_the_delta_per_stack_and_total(tmp_path):
    base = cost.estimate(old_system(tmp_path / "main"), make_env())
    three_nodes = res(
        "AWS::EKS::Nodegroup",
        InstanceTypes=["t3.medium"],
        DiskSize=20,
        ScalingConfig={"MinSize": 1, "DesiredSize": 3, "MaxSize": 3},
    )
    head = cost.estimate(old_system(tmp_path / "branch", Nodes=three_nodes), make_env())
    text = cost.compare(base, head)

    # One more node: 0.052 × 730 = 37.96, and its 20 GiB disk: 20 × 0.0912 = 1.824.
    assert head.total - base.total == pytest.approx(37.96 + 1.824)
    assert "| erp-dev-platform | 174.17 | 213.95 | +39.78 |" in text  # 174.168 -> 213.952
    assert f"| erp-dev-network | {base.subtotals['erp-dev-network']:,.2f} | " in text and "| +0.00 |" in text
    assert f"| **Total** | **{base.total:,.2f}** | **{head.total:,.2f}** | **+39.78** |" in text
    assert "- `erp-dev-platform` `Nodes` t3.medium nodes (always on): +37.96" in text
    assert "- `erp-dev-platform` `Nodes` node root volumes, gp3 20 GiB each: +1.82" in text


def test_selects_the_env_stacks_once_and_the_pipeline_only_when_asked(tmp_path):
    pipeline = {"Pipeline": res("AWS::CodePipeline::Pipeline", PipelineType="V2")}
    assembly = write_assembly(
        tmp_path / "cdk.out",
        {
            "Dev": {"erp-dev-network": network()},
            "Prod": {"erp-prod-network": network()},
            "Sandbox": {"erp-dev-network": network()},
        },  # the same stack reached twice: counted once
        top={"ErpPipeline": pipeline},
    )
    env = make_env()

    assert cost.estimate(assembly, env).stacks == ["erp-dev-network", cost.ENV_WIDE]
    with_pipeline = cost.estimate(assembly, env, include_pipeline=True)
    assert with_pipeline.stacks == ["ErpPipeline", "erp-dev-network", cost.ENV_WIDE]
    [line] = lines_of(with_pipeline, "Pipeline")
    assert line.usd == pytest.approx(cost.PIPELINE_RUNS_PER_MONTH * cost.PIPELINE_ACTION_MINUTES_PER_RUN * 0.002)
    assert line.price.approximate


def test_cli(tmp_path, capsys):
    assembly = old_system(tmp_path / "cdk.out")

    assert cost.main(["--env", "dev", "--cdk-out", str(assembly), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["env"] == "dev"
    assert cost.main(["--env", "dev", "--cdk-out", str(assembly), "--compare", str(assembly)]) == 0
    assert "| **Total** |" in capsys.readouterr().out
    empty = write_assembly(tmp_path / "empty", {})
    assert cost.main(["--env", "dev", "--cdk-out", str(empty)]) == 1


def test_price_file_states_unit_source_and_date_for_every_price():
    data = yaml.safe_load(cost.PRICE_FILE.read_text())
    assert (data["currency"], data["region"], data["hours_per_month"]) == ("USD", "ap-northeast-2", 730)
    for service, items in data["prices"].items():
        for item, price in items.items():
            assert set(price) == {"usd", "unit", "source", "as_of"}, (service, item)
            level = price["source"].split(":")[0]
            assert level in {"A", "B", "A+B", "C", "U"}, (service, item)
            assert (price["usd"] is None) == (level == "U"), (service, item)
    assert data["prices"]["ec2"]["t4g.nano"]["usd"] is None  # U in the shared notes: never invented

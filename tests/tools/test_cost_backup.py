"""AWS Backup and the restore drill (issue 21) in `make cost`: recovery points in the vault, cross-region copies
and the drill's temporary database, on small hand-made templates shaped like the backup stacks, each line moved by
its input (prices typed from tools/cost/prices-ap-northeast-2.yaml)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import yaml

from tests.tools.test_cost import NO_USAGE, lines_of, make_env, res, write_assembly
from tools import cost
from tools.cost.backup import Stream, stored_gb, transfer_gb

HOURS = 730
RDS_POINT_GB_MONTH = 0.095
EBS_POINT_GB_MONTH = 0.05
INTER_REGION_GB = 0.080
TRANSITIONS_PER_1K = 0.0271
DB_T4G_MICRO_HOUR = 0.025
DB_T4G_SMALL_HOUR = 0.051
RDS_GP3_GB_MONTH = 0.131
DAYS_PER_MONTH = 1461 / 48  # 2025-2028, the years schedules.py counts over
DB_GB, KAFKA_GB = 20, 10  # the DB's AllocatedStorage below; tests/tools/test_cost.KAFKA_GIB × 1 replica
TAG = {"Key": "erp:backup", "Value": "erp-dev"}
COPY_VAULT = {
    "Fn::Join": [
        "",
        ["arn:", {"Ref": "AWS::Partition"}, ":backup:ap-northeast-1:", {"Ref": "AWS::AccountId"}, ":backup-vault:c"],
    ]
}


def sundays_per_month() -> float:
    start = date(2025, 1, 1)
    return sum((start + timedelta(days=i)).weekday() == 6 for i in range(1461)) / 48


def rule(name="daily", schedule="cron(0 22 * * ? *)", retention: int | None = 7, copy: dict | None = None) -> dict:
    out = {"RuleName": name, "TargetBackupVault": {"Ref": "Vault"}, "ScheduleExpression": schedule}
    if retention is not None:
        out["Lifecycle"] = {"DeleteAfterDays": retention}
    if copy is not None:
        out["CopyActions"] = [copy]
    return out


def copy_action(retention: int | None = 35) -> dict:
    return {"DestinationBackupVaultArn": COPY_VAULT} | (
        {"Lifecycle": {"DeleteAfterDays": retention}} if retention else {}
    )


def selection(name: str, **spec) -> dict:
    body = {"SelectionName": name, "IamRoleArn": "arn:aws:iam::1:role/b", **spec}
    return res(
        "AWS::Backup::BackupSelection", BackupPlanId={"Fn::GetAtt": ["Plan", "BackupPlanId"]}, BackupSelection=body
    )


def arn(service: str, resource: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":{service}:*:*:{resource}"]]}


def equals(key: str, value: str) -> dict:
    return {"ConditionKey": f"aws:ResourceTag/{key}", "ConditionValue": value}


# As constructs_lib/data/backup.py selects: resource ARNs AND tag conditions; Kafka's tags are the CSI driver's.
BY_ARN_AND_TAG = {
    "Database": selection(
        "db", Resources=[arn("rds", "db:*")], Conditions={"StringEquals": [equals("erp:backup", "erp-dev")]}
    ),
    "KafkaVolumes": selection(
        "kafka",
        Resources=[arn("ec2", "volume/*")],
        Conditions={"StringEquals": [equals("ebs.csi.aws.com/cluster", "true")]},
    ),
}


def backup_stack(*rules: dict, selections: dict | None = None) -> dict:
    return {
        "Key": res("AWS::KMS::Key", KeyPolicy={}),
        "Vault": res("AWS::Backup::BackupVault", BackupVaultName="erp-dev-backup"),
        "Plan": res("AWS::Backup::BackupPlan", BackupPlan={"BackupPlanName": "erp-dev", "BackupPlanRule": list(rules)}),
        **(BY_ARN_AND_TAG if selections is None else selections),
    }


def data_and_cluster(db_tags: list[dict] | None = None, volume_tag: str = "erp:backup=true") -> dict[str, dict]:
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "parameters": {"type": "gp3", "tagSpecification_1": volume_tag},
    }
    return {
        "erp-dev-data": {
            "Db": res(
                "AWS::RDS::DBInstance",
                Engine="mysql",
                DBInstanceClass="db.t4g.micro",
                AllocatedStorage=str(DB_GB),
                StorageType="gp3",
                MultiAZ=False,
                Tags=[TAG] if db_tags is None else db_tags,
            )
        },
        "erp-dev-cluster": {
            "StorageClass": res("Custom::AWSCDK-EKS-KubernetesResource", Manifest=json.dumps([storage_class]))
        },
    }


def estimate(tmp_path, stacks: dict[str, dict], book: cost.PriceBook | None = None, **env) -> cost.Estimate:
    assembly = write_assembly(tmp_path / "cdk.out", {"Dev": {**data_and_cluster(), **stacks}})
    return cost.estimate(assembly, make_env(**env), price_book=book)


def usage(**fields) -> dict:
    return {"usage": {**NO_USAGE, **fields}}


def by_item(est: cost.Estimate, logical_id: str, *words: str) -> list[cost.Line]:
    return [x for x in lines_of(est, logical_id) if all(w in x.item for w in words)]


def test_daily_points_of_the_database_and_kafka_volumes_against_a_hand_calculation(tmp_path):
    est = estimate(tmp_path, {"erp-dev-backup": backup_stack(rule())})

    (db,) = by_item(est, "Plan", "database")
    (kafka,) = by_item(est, "Plan", "kafka")
    # 7 daily points: the first full, six increments of one day's changes (5 %).
    assert db.quantity == pytest.approx(DB_GB + 6 * DB_GB * 0.05)  # 26 GB
    assert db.usd == pytest.approx(26 * RDS_POINT_GB_MONTH)
    assert kafka.quantity == pytest.approx(KAFKA_GB + 6 * KAFKA_GB * 0.05)  # 13 GB
    assert kafka.usd == pytest.approx(13 * EBS_POINT_GB_MONTH)
    assert "daily 30.44/month kept 7 d" in db.item and "allocated storage, an upper bound" in db.item
    assert db.price.approximate and not kafka.price.approximate  # RDS points: level C
    assert [u.reason for u in est.unpriced] == []
    assert est.subtotals["erp-dev-backup"] == pytest.approx(26 * RDS_POINT_GB_MONTH + 13 * EBS_POINT_GB_MONTH + 1.00)


def test_point_storage_moves_with_stored_gb_retention_and_change_rate(tmp_path):
    def db_usd(retention: int = 7, **fields) -> float:
        est = estimate(
            tmp_path / f"{retention}-{sorted(fields.items())}",
            {"erp-dev-backup": backup_stack(rule(retention=retention))},
            **usage(**fields),
        )
        return by_item(est, "Plan", "database")[0].usd

    base = db_usd(backup_db_gb=10)
    assert db_usd(backup_db_gb=20) == pytest.approx(2 * base)  # doubling the data doubles every point
    # Doubling retention adds seven more increments: 10 + 6 × 0.5 -> 10 + 13 × 0.5.
    assert base == pytest.approx(13 * RDS_POINT_GB_MONTH)
    assert db_usd(14, backup_db_gb=10) == pytest.approx(16.5 * RDS_POINT_GB_MONTH)
    # When everything changes daily each point is full: doubling retention doubles storage.
    assert db_usd(14, backup_db_gb=10, backup_change_pct=100) == pytest.approx(
        2 * db_usd(7, backup_db_gb=10, backup_change_pct=100)
    )
    assert db_usd(backup_db_gb=10, backup_change_pct=0) == pytest.approx(10 * RDS_POINT_GB_MONTH)


DAILY, SUNDAY = "cron(0 7 * * ? *)", "cron(0 9 ? * SUN *)"


def test_weekly_and_short_retention_rules_follow_the_schedule():
    weekly = sundays_per_month()
    # Weekly points kept 90 days (12.86 on average): each later point holds a week of changes (35 %).
    points = 90 / 7
    assert stored_gb(100, [Stream("w", SUNDAY, 90)], 0.05) == pytest.approx(100 + (points - 1) * 35, rel=1e-4)
    # A week of changes at 20 %/day is more than the data: such a point is a full copy, not 140 %.
    assert stored_gb(100, [Stream("w", SUNDAY, 90)], 0.20) == pytest.approx(100 * points, rel=1e-4)
    assert weekly == pytest.approx(209 / 48)
    # Kept one day out of seven: every backup is full again (AWS Backup's one-week advice), kept 1/7 of the time
    # (the last Sunday of 2028 is cut at the end of the years counted).
    assert stored_gb(100, [Stream("w", SUNDAY, 1)], 0.05) == pytest.approx(100 / 7, rel=1e-3)
    assert stored_gb(100, [], 0.05) == 0


def test_rules_of_one_source_form_one_chain():
    daily, weekly = Stream("daily", DAILY, 35), Stream("weekly", SUNDAY, 90)
    both = stored_gb(100, [daily, weekly], 0.05)
    # One full copy, 35 days of daily changes, and the weekly points older than the daily ones: ~8 weeks of
    # changes at 7 days each, less than the two rules priced apart (each with its own full copy).
    assert both == pytest.approx(100 + 34 * 5 + (90 - 35) / 7 * 35, rel=0.03)
    assert both < stored_gb(100, [daily], 0.05) + stored_gb(100, [weekly], 0.05) - 100
    # Copies of both to one region: the weekly copy sends the two hours since Sunday's daily one, Monday's daily the
    # 22 hours since the weekly: a month's changes cross once, as with the daily rule alone.
    copies = [Stream("daily", DAILY, 35), Stream("weekly", SUNDAY, 35)]
    assert transfer_gb(100, copies, 0.05) == pytest.approx(DAYS_PER_MONTH * 5, rel=1e-4)
    assert transfer_gb(100, copies, 0.05) == pytest.approx(transfer_gb(100, copies[:1], 0.05), rel=1e-4)


def test_no_copy_action_no_transfer_and_a_copy_to_tokyo_pays_transfer_and_tokyo_storage(tmp_path):
    local = estimate(tmp_path / "local", {"erp-dev-backup": backup_stack(rule())})
    assert not by_item(local, "Plan", "copies")
    assert "data-transfer" not in {x.price.source.split(":")[0] for x in local.lines}

    est = estimate(tmp_path / "copied", {"erp-dev-backup": backup_stack(rule(copy=copy_action(35)))})
    (sent,) = by_item(est, "Plan", "database copies to ap-northeast-1")
    (kept,) = by_item(est, "Plan", "database copies kept in ap-northeast-1")
    daily = 1461 / 48  # daily runs a month: each sends one day's increment
    assert sent.quantity == pytest.approx(daily * DB_GB * 0.05)
    assert sent.usd == pytest.approx(daily * 1.0 * INTER_REGION_GB)
    assert kept.quantity == pytest.approx(DB_GB + 34 * DB_GB * 0.05)  # 35 points there
    assert kept.usd == pytest.approx(54 * RDS_POINT_GB_MONTH)
    assert "Tokyo" in kept.price.source
    (kafka_sent,) = by_item(est, "Plan", "kafka copies to ap-northeast-1")
    assert kafka_sent.quantity == pytest.approx(daily * KAFKA_GB * 0.05)
    # The local points are the same with or without a copy.
    assert [x.usd for x in by_item(est, "Plan", "recovery points")] == [
        x.usd for x in by_item(local, "Plan", "recovery points")
    ]


def test_the_copy_region_is_priced_at_its_own_price_and_a_copy_without_lifecycle_keeps_the_source_retention(tmp_path):
    data = yaml.safe_load(cost.PRICE_FILE.read_text())
    data["prices"]["backup"]["rds-warm ap-northeast-1"]["usd"] = 0.2
    changed = tmp_path / "prices.yaml"
    changed.write_text(yaml.safe_dump(data))

    est = estimate(
        tmp_path,
        {"erp-dev-backup": backup_stack(rule(retention=14, copy=copy_action(None)))},
        book=cost.PriceBook(changed),
    )

    (kept,) = by_item(est, "Plan", "database copies kept in ap-northeast-1")
    (home,) = by_item(est, "Plan", "database recovery points")
    assert kept.quantity == pytest.approx(home.quantity)  # 14 days there too (the copy's guide: source retention)
    assert kept.usd == pytest.approx(home.quantity * 0.2)
    assert home.usd == pytest.approx(home.quantity * RDS_POINT_GB_MONTH)  # Seoul unchanged
    # Copies gone before the next one is made: each is a full copy again.
    assert transfer_gb(20, [Stream("daily", DAILY, 0.5)], 0.05) == pytest.approx(20 * DAYS_PER_MONTH)


def test_what_the_selections_do_not_cover_is_not_priced(tmp_path):
    untagged_db = write_assembly(
        tmp_path / "a", {"Dev": {**data_and_cluster(db_tags=[]), "erp-dev-backup": backup_stack(rule())}}
    )
    est = cost.estimate(untagged_db, make_env())
    assert [x.item.split(" ")[0] for x in lines_of(est, "Plan")] == ["kafka"]

    # Tags alone (ListOfTags, ORed): the DB's own tag, and a tag the StorageClass asks the CSI driver to write.
    by_tag = {
        "Tagged": selection(
            "t",
            ListOfTags=[{"ConditionType": "STRINGEQUALS", "ConditionKey": "erp:backup", "ConditionValue": "erp-dev"}],
        )
    }
    est = estimate(tmp_path / "b", {"erp-dev-backup": backup_stack(rule(), selections=by_tag)})
    assert [x.item.split(" ")[0] for x in lines_of(est, "Plan")] == ["database"]
    stacks = {
        **data_and_cluster(volume_tag="erp:backup=erp-dev"),
        "erp-dev-backup": backup_stack(rule(), selections=by_tag),
    }
    est = cost.estimate(write_assembly(tmp_path / "c", {"Dev": stacks}), make_env())
    assert [x.item.split(" ")[0] for x in lines_of(est, "Plan")] == ["database", "kafka"]

    buckets = {"Buckets": selection("s3", Resources=[arn("s3", "bucket/*")])}
    nothing = estimate(tmp_path / "d", {"erp-dev-backup": backup_stack(rule(), selections=buckets)})
    assert lines_of(nothing, "Plan") == []
    assert "neither the database nor Kafka" in nothing.unpriced[0].reason


def test_a_rule_that_keeps_points_forever_is_unpriced(tmp_path):
    forever = estimate(tmp_path, {"erp-dev-backup": backup_stack(rule(retention=None))})
    assert lines_of(forever, "Plan") == []
    assert ["forever" in u.reason for u in forever.unpriced] == [True]


def test_vault_and_selection_are_free_with_the_reason(tmp_path):
    est = estimate(tmp_path, {"erp-dev-backup": backup_stack(rule())})

    free = {kind: n for kind, n in est.free.items() if kind.startswith("AWS::Backup::")}
    assert sum(free.values()) == 3 and all("aws.amazon.com/backup/pricing" in kind for kind in free)
    assert not lines_of(est, "Vault") and not lines_of(est, "Selection")
    assert [x.usd for x in lines_of(est, "Key")] == [1.00]  # the vault's KMS key


# ---------------------------------------------------------------- the restore drill


def drill(
    *, instance_class: str | None = "db.t4g.micro", wait_seconds: int = 60, machine_type: str = "STANDARD"
) -> dict:
    # None: the class comes from the execution's input, as a drill started with parameters would read it.
    metadata = {"DBInstanceClass": instance_class} if instance_class else {"DBInstanceClass.$": "$.instanceClass"}
    states = {
        "Latest": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:backup:listRecoveryPointsByBackupVault",
            "Next": "Restore",
        },
        "Restore": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:backup:startRestoreJob",
            "Parameters": {"Metadata": {**metadata, "MultiAZ": "false"}},
            "Next": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": wait_seconds, "Next": "Status"},
        "Status": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:backup:describeRestoreJob", "Next": "Done?"},
        "Done?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.s", "StringEquals": "COMPLETED", "Next": "Check"}],
            "Default": "Wait",
        },
        "Check": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Delete"},
        "Delete": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:rds:deleteDBInstance", "End": True},
    }
    text = json.dumps({"StartAt": "Latest", "States": states})
    head, tail = text.split('"arn:aws:states:::lambda:invoke"')
    return res(
        "AWS::StepFunctions::StateMachine",
        StateMachineType=machine_type,
        # As CDK writes it: a join around the tokens.
        DefinitionString={"Fn::Join": ["", [head, '"', {"Ref": "AWS::Partition"}, ':states:::lambda:invoke"', tail]]},
    )


def drill_stack(schedule: str | None = "cron(0 2 ? * SUN *)", state: str = "ENABLED", **machine) -> dict:
    out = {"Drill": drill(**machine)}
    if schedule:
        out["Weekly"] = res(
            "AWS::Scheduler::Schedule",
            ScheduleExpression=schedule,
            State=state,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": {"Ref": "Drill"}, "RoleArn": "arn:aws:iam::1:role/s"},
        )
    return out


def test_weekly_drill_pays_its_instance_hours_storage_and_transitions(tmp_path):
    est = estimate(tmp_path, {"erp-dev-drill": drill_stack()})

    runs = sundays_per_month()  # ~4.35
    (instance,) = by_item(est, "Drill", "drill instance db.t4g.micro single-az")
    (storage,) = by_item(est, "Drill", "gp3 storage")
    (transitions,) = by_item(est, "Drill", "state transitions")
    assert instance.usd == pytest.approx(runs * 1.0 * DB_T4G_MICRO_HOUR)
    assert storage.usd == pytest.approx(DB_GB * RDS_GP3_GB_MONTH * runs * 1.0 / HOURS)
    # 7 states + a 3-transition round every 60 s for an hour = 187 a run: ~813 a month, inside the free 4,000.
    assert transitions.usd == 0 and "187" in transitions.item
    assert [u.logical_id for u in est.unpriced] == ["Drill"] and "restor" in est.unpriced[0].reason
    # The schedule itself: Scheduler's free invocations, no "only Lambda functions" unpriced.
    assert [x.usd for x in lines_of(est, "Weekly")] == [0]


def test_drill_instance_cost_moves_with_hours_runs_and_class(tmp_path):
    def instance_usd(path: str, stack: dict, **env) -> float:
        est = estimate(tmp_path / path, {"erp-dev-drill": stack}, **env)
        return sum(x.usd for x in by_item(est, "Drill", "drill instance"))

    base = instance_usd("base", drill_stack())
    assert instance_usd("two-hours", drill_stack(), **usage(drill_instance_hours=2)) == pytest.approx(2 * base)
    daily = instance_usd("daily", drill_stack("cron(0 2 * * ? *)"))
    assert daily == pytest.approx(base * DAYS_PER_MONTH / sundays_per_month())
    small = instance_usd("small", drill_stack(instance_class="db.t4g.small"))
    assert small - base == pytest.approx(sundays_per_month() * (DB_T4G_SMALL_HOUR - DB_T4G_MICRO_HOUR))


def test_no_drill_schedule_no_drill_cost_and_one_run_is_in_the_assumptions(tmp_path):
    for path, stack in {"none": drill_stack(None), "disabled": drill_stack(state="DISABLED")}.items():
        est = estimate(tmp_path / path, {"erp-dev-drill": stack, "erp-dev-backup": backup_stack(rule())})
        assert lines_of(est, "Drill") == [] and est.unpriced == []
        assert any("runs on demand" in kind for kind in est.free)
    (one_run,) = [a for a in est.assumptions if a.startswith("restore drill")]
    assert f"${DB_T4G_MICRO_HOUR + DB_GB * RDS_GP3_GB_MONTH / HOURS:,.2f}" in one_run
    assert "restore unpriced" in one_run  # this drill restores through an AWS Backup job (U)
    assert any(a.startswith("AWS Backup: the points of all rules") for a in est.assumptions)


def test_transitions_beyond_the_free_tier_and_express_workflows(tmp_path):
    # Hourly runs of a drill polling every 10 s: 7 + 3 × 360 = 1,087 transitions a run.
    est = estimate(tmp_path / "hourly", {"erp-dev-drill": drill_stack("rate(1 hour)", wait_seconds=10)})
    (transitions,) = by_item(est, "Drill", "state transitions")
    assert transitions.usd == pytest.approx((HOURS * 1087 - 4000) / 1000 * TRANSITIONS_PER_1K)

    express = estimate(tmp_path / "express", {"erp-dev-drill": drill_stack(machine_type="EXPRESS")})
    assert lines_of(express, "Drill") == [] and "Express" in express.unpriced[0].reason


def test_drill_class_from_config_when_the_definition_reads_it_from_its_input(tmp_path):
    stack = drill_stack(instance_class=None)
    backup = {"rules": [{"name": "daily", "schedule": "cron(0 7 * * ? *)", "retention_days": 7}],
              "drill": {"instance_class": "t4g.small"}}  # fmt: skip
    est = estimate(tmp_path, {"erp-dev-drill": stack}, backup=backup)

    (instance,) = by_item(est, "Drill", "drill instance", "single-az")
    assert "db.t4g.small" in instance.item
    assert instance.usd == pytest.approx(sundays_per_month() * DB_T4G_SMALL_HOUR)


def lambda_drill_stack(
    schedule: str | None = "cron(0 2 ? * SUN *)", instance_class: str = "db.t4g.micro", restores: bool = True
) -> dict:
    """As constructs_lib/data/restore_drill.py builds it: every step a call of one function (its ARN the Task's
    Resource), which does the restore with the class in its environment; a 60 s wait between status calls."""
    fn = {"Fn::GetAtt": ["DrillFunction", "Arn"]}

    def task(name: str, after: str) -> list:
        return [f'"{name}":{{"Type":"Task","Resource":"', fn, f'","Next":"{after}"}},']

    parts = [
        '{"StartAt":"Start","TimeoutSeconds":10800,"States":{',
        *task("Start", "Wait"),
        '"Wait":{"Type":"Wait","Seconds":60,"Next":"Status"},',
        *task("Status", "Ready"),
        '"Ready":{"Type":"Choice","Choices":[{"Variable":"$.ready","BooleanEquals":true,"Next":"Check"}],'
        '"Default":"Wait"},',
        *task("Check", "Cleanup"),
        *task("Cleanup", "Report"),
        '"Report":{"Type":"Task","Resource":"',
        fn,
        '","End":true}}}',
    ]
    out = {
        "DrillFunction": res(
            "AWS::Lambda::Function",
            MemorySize=256,
            Timeout=300,
            Architectures=["arm64"],
            Environment={"Variables": {"DB_INSTANCE_CLASS": instance_class, "POWERTOOLS_SERVICE_NAME": "drill"}},
            Role={"Fn::GetAtt": ["DrillRole", "Arn"]},
        ),
        "DrillRole": res("AWS::IAM::Role", AssumeRolePolicyDocument={}),
        "DrillPolicy": res(
            "AWS::IAM::Policy",
            Roles=[{"Ref": "DrillRole"}],
            PolicyDocument={
                "Statement": [
                    {"Action": "rds:RestoreDBInstanceFromDBSnapshot" if restores else "rds:DescribeDBInstances"}
                ]
            },
        ),
        "Drill": res("AWS::StepFunctions::StateMachine", DefinitionString={"Fn::Join": ["", parts]}),
    }
    if schedule:
        out["Weekly"] = res(
            "AWS::Scheduler::Schedule",
            ScheduleExpression=schedule,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": {"Ref": "Drill"}, "RoleArn": "arn:aws:iam::1:role/s"},
        )
    return out


def test_a_drill_that_restores_in_its_lambda_pays_the_instance_and_the_calls(tmp_path):
    est = estimate(tmp_path, {"erp-dev-drill": lambda_drill_stack(instance_class="db.t4g.small")})

    runs = sundays_per_month()
    (instance,) = by_item(est, "Drill", "drill instance db.t4g.small single-az")
    assert instance.usd == pytest.approx(runs * DB_T4G_SMALL_HOUR)  # the class from the function's environment
    # 5 calls of the steps + one status call per 60 s round for the instance's hour: 65 a run, 5 s each (assumed).
    (compute,) = by_item(est, "Drill", "DrillFunction runs")
    (requests,) = by_item(est, "Drill", "DrillFunction requests")
    assert compute.quantity == pytest.approx(runs * 65 * 5 * 256 / 1024)
    assert requests.quantity == pytest.approx(runs * 65 / 1e6)
    (transitions,) = by_item(est, "Drill", "state transitions")
    assert "× 187" in transitions.item  # 7 states + 3 × 60 rounds
    # The function itself is free: its calls are priced on the state machine.
    assert lines_of(est, "DrillFunction") == []
    # Restored through RDS (its role may RestoreDBInstanceFromDBSnapshot): no fee beyond the new instance.
    (restore,) = by_item(est, "Drill", "the restore: RDS")
    assert restore.usd == 0 and "RDS billing FAQ" in restore.price.source
    assert est.unpriced == []
    unknown = estimate(tmp_path / "unknown", {"erp-dev-drill": lambda_drill_stack(restores=False)})
    assert ["how it restores" in u.reason for u in unknown.unpriced] == [True]

    on_demand = estimate(tmp_path / "none", {"erp-dev-drill": lambda_drill_stack(None)})
    assert lines_of(on_demand, "Drill") == [] and on_demand.unpriced == []


@pytest.mark.parametrize(
    "expression", [DAILY, SUNDAY, "cron(0 8 ? * MON-FRI *)", "cron(30 1 L * ? *)", "rate(12 hours)", "rate(3 days)"]
)
def test_run_times_agree_with_runs_per_month(expression):
    from tools.cost.schedules import YEARS, run_times, runs_per_month

    times = run_times(expression, YEARS)
    assert len(times) / 48 == pytest.approx(runs_per_month(expression), rel=1e-3)
    assert list(times) == sorted(times) and 0 <= times[0] < 31 and times[-1] < 1461

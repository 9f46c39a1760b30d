"""The replacement guard on real `cdk diff` output (fixtures/cdk-diff; guard-* captured from this app with
`cdk diff --exclusively --template <edited deployed template>`, see the fixtures README)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tools import replacement_guard as guard

FIXTURES = Path(__file__).parent / "fixtures" / "cdk-diff"
TODAY = "2026-11-29"


def run(name: str, tmp_path: Path, allowances: str | None = None, capsys=None) -> tuple[int, str]:
    path = tmp_path / "allowed.yaml"
    path.write_text(allowances if allowances is not None else "allowances: []\n")
    code = guard.main([str(FIXTURES / name), "--allowances", str(path), "--today", TODAY])
    out = capsys.readouterr() if capsys else None
    return code, (out.out + out.err) if out else ""


def test_database_name_change_replaces_the_instance_and_is_blocked(tmp_path, capsys):
    code, out = run("guard-data-dbname.txt", tmp_path, capsys=capsys)
    assert code == 1
    assert "erp-prod-data DatabaseInstanceAA8A5FDE (AWS::RDS::DBInstance) replace: BLOCKED" in out


def test_a_reviewed_allowance_lets_it_through_until_it_expires(tmp_path, capsys):
    allowance = (
        "allowances:\n  - {stack: erp-prod-data, logical_id: DatabaseInstanceAA8A5FDE,"
        " reason: restore from snapshot under a new name, expires: %s}\n"
    )
    code, out = run("guard-data-dbname.txt", tmp_path, allowance % "2026-12-31", capsys)
    assert code == 0 and "allowed until 2026-12-31: restore from snapshot" in out
    code, out = run("guard-data-dbname.txt", tmp_path, allowance % "2026-11-28", capsys)
    assert code == 1 and "BLOCKED" in out


def test_allowance_for_another_stack_does_not_count(tmp_path, capsys):
    allowance = (
        "allowances:\n  - {stack: erp-dev-data, logical_id: DatabaseInstanceAA8A5FDE,"
        " reason: dev only and not prod at all, expires: 2099-01-01}\n"
    )
    assert run("guard-data-dbname.txt", tmp_path, allowance, capsys)[0] == 1


def test_kafka_volume_claim_template_change_is_blocked(tmp_path, capsys):
    code, out = run("guard-workloads-storage.txt", tmp_path, capsys=capsys)
    assert code == 1
    assert "erp-prod-workloads kafka5BADF433" in out and "volumeClaimTemplates changed" in out


def test_other_kafka_manifest_changes_pass(tmp_path, capsys):
    code, out = run("guard-workloads-image.txt", tmp_path, capsys=capsys)
    assert code == 0 and "no stateful resource" in out


def test_every_destructive_stateful_change_in_the_multi_stack_diff(tmp_path, capsys):
    code, out = run("multi-stack.txt", tmp_path, capsys=capsys)
    assert code == 1
    for logical_id in ("OrdersDb889E652A", "AttachmentsBucket8E14A36F", "ReportsDb7D60001D", "AuditLogA5B7094E"):
        assert f"erp-dev-data {logical_id} " in out
    assert "DbSg495F8305" not in out  # a replaced security group holds no state


@pytest.mark.parametrize("name", ["no-differences.txt", "no-differences-quiet.txt"])
def test_no_differences_pass(name, tmp_path, capsys):
    assert run(name, tmp_path, capsys=capsys)[0] == 0


def test_unreadable_diff_fails_closed(tmp_path, capsys):
    code, out = run("no-credentials.txt", tmp_path, capsys=capsys)
    assert code == 2 and "FAILED CLOSED" in out


@pytest.mark.parametrize(
    "text",
    [
        "allowances: [{stack: erp-prod-data, logical_id: X1, reason: short, expires: 2099-01-01}]\n",
        "allowances: [{stack: erp-prod-data, logical_id: X1, reason: long enough reason}]\n",
        "allowances: [{stack: s, logical_id: X1, reason: long enough reason, expires: 2099-01-01, who: me}]\n",
        "allowances: [\n",
    ],
)
def test_bad_allowance_file_fails_closed(text, tmp_path, capsys):
    assert run("guard-data-dbname.txt", tmp_path, text, capsys)[0] == 2


def test_committed_allowance_file_is_valid():
    assert guard.load_allowances(Path("config/allowed-replacements.yaml"), date(2026, 11, 29)) is not None


def test_pr_comment_shows_the_guard_verdict_first(tmp_path, capsys):
    from tools import diff_report

    code, out = run("guard-data-dbname.txt", tmp_path, capsys=capsys)
    verdict = tmp_path / "guard.txt"
    verdict.write_text(out)
    assert diff_report.main([str(FIXTURES / "guard-data-dbname.txt"), "--guard", str(verdict)]) == 0
    comment = capsys.readouterr().out
    assert "### ⛔ Replacement guard: blocked" in comment
    assert comment.index("Replacement guard") < comment.index("### Summary")
    assert "DatabaseInstanceAA8A5FDE" in comment.split("### Summary")[0]


def test_pr_comment_guard_passed(tmp_path, capsys):
    from tools import diff_report

    run("guard-workloads-image.txt", tmp_path, capsys=capsys)
    verdict = tmp_path / "guard.txt"
    verdict.write_text("replacement guard: no stateful resource is replaced or deleted\n")
    diff_report.main([str(FIXTURES / "guard-workloads-image.txt"), "--guard", str(verdict)])
    assert "### Replacement guard: passed" in capsys.readouterr().out


def test_pr_workflow_runs_pr_code_only_without_credentials():
    """Issue 12 item 8: synth (PR code) has no id-token; the job with credentials checks out the base commit."""
    import yaml

    workflow = yaml.safe_load(Path(".github/workflows/cdk-diff.yml").read_text())
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert "id-token" not in jobs["synth"]["permissions"]
    assert not any("configure-aws-credentials" in str(step.get("uses", "")) for step in jobs["synth"]["steps"])
    diff = jobs["diff"]
    assert diff["needs"] == "synth" and diff["permissions"]["id-token"] == "write"
    steps = diff["steps"]
    checkout = steps[0]
    assert "actions/checkout@" in checkout["uses"]
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    creds = next(i for i, s in enumerate(steps) if "configure-aws-credentials" in str(s.get("uses", "")))
    after = " ".join(str(s.get("run", "")) for s in steps[creds:])
    for forbidden in ("make ", "app.py", "pip install", "npm ci", "npm install", "cdk synth"):
        assert forbidden not in after, forbidden
    assert "--app pr/cdk.out" in after and "tools.replacement_guard" in after
    # Nothing checks out or runs the PR head after credentials exist.
    assert not any("actions/checkout@" in str(s.get("uses", "")) for s in steps[1:])


# --- the service NLB's fixed addresses (issue 18 item 10) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("guard-api-nlb-replaced.txt", "replace: NLB with fixed private IPs"),
        ("guard-api-nlb-renamed.txt", "replaces a removed one (a rename)"),
    ],
)
def test_a_replaced_or_renamed_nlb_is_blocked_with_its_procedure(name, why, tmp_path, capsys):
    """No data is lost, but the new NLB cannot get the addresses the old one holds: the deploy would fail and roll
    back. The guard blocks it and says what to do instead."""
    code, out = run(name, tmp_path, capsys=capsys)
    assert code == 1
    assert f"erp-prod-api ServiceNlbLoadBalancer7FD5BA14 (AWS::ElasticLoadBalancingV2::LoadBalancer) {why}" in out
    assert "BLOCKED" in out and f"procedure: {guard.NLB_PROCEDURE}" in out
    # The listeners replaced with it hold nothing and are not findings of their own.
    assert "Listener" not in out


def test_an_allowed_nlb_replacement_passes_without_the_procedure(tmp_path, capsys):
    allowance = (
        "allowances:\n  - {stack: erp-prod-api, logical_id: ServiceNlbLoadBalancer7FD5BA14,"
        " reason: nlb_private_ips moved to free addresses in the same change, expires: 2026-12-31}\n"
    )
    code, out = run("guard-api-nlb-replaced.txt", tmp_path, allowance, capsys)
    assert code == 0 and "allowed until 2026-12-31" in out and "procedure:" not in out


def test_the_procedure_is_the_one_the_update_safety_table_gives():
    """One procedure: what the guard prints is what tests/infra/update_safety.yaml says for the fields that move the
    NLB's addresses (tests/infra/test_update_safety.py checks those fields)."""
    import yaml

    table = yaml.safe_load(Path("tests/infra/update_safety.yaml").read_text())
    nlb_fields = {
        key: entry
        for key, entry in table.items()
        if any(t.startswith("AWS::ElasticLoadBalancingV2::LoadBalancer.") for t in entry.get("flows_to", []))
    }
    assert nlb_fields
    for key, entry in nlb_fields.items():
        assert entry["effect"] == "manual", key
        assert "fixed private IPs" in entry["procedure"], key

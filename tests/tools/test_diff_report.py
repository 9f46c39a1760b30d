"""The PR diff comment, built from real `cdk diff` output captured with CLI 2.1148.1 (see fixtures/cdk-diff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import diff_report

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "cdk-diff"
DATA = "ErpPipeline/Dev/Data (erp-dev-data)"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def comment(name: str, *args: str, capsys) -> tuple[int, str]:
    code = diff_report.main([str(FIXTURES / name), *args])
    return code, capsys.readouterr().out


def section(text: str, heading: str) -> str:
    """The text from `heading` up to the next `### ` heading."""
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def test_parses_every_stack_with_its_environment():
    stacks, finished = diff_report.parse(fixture("multi-stack.txt"))
    assert finished
    assert [(s.name, s.environment, s.changed) for s in stacks] == [
        ("ErpPipeline (erp-pipeline)", "aws://123456789012/ap-northeast-2", False),
        ("ErpPipeline/Dev/Network (erp-dev-network)", "aws://123456789012/ap-northeast-2", True),
        (DATA, "aws://123456789012/ap-northeast-2", True),
        ("ErpPipeline/Dev/Messaging (erp-dev-messaging)", "aws://123456789012/ap-northeast-2", True),
    ]


def test_resource_lines_markers_and_impacts():
    stacks, _ = diff_report.parse(fixture("multi-stack.txt"))
    data = {change.logical_id: change for change in stacks[2].resources}
    R = diff_report.ResourceChange
    assert data["OrdersDb889E652A"] == R(
        "removed", "AWS::RDS::DBInstance", "OrdersDb889E652A", "Dev/Data/OrdersDb", "destroy"
    )
    assert data["AttachmentsBucket8E14A36F"].impact == "orphan"
    assert data["OrdersDb2140E632F"] == R(
        "added", "AWS::RDS::DBInstance", "OrdersDb2140E632F", "Dev/Data/OrdersDb2", ""
    )
    assert data["ReportsDb7D60001D"].kind == "replaced" and data["ReportsDb7D60001D"].impact == "may be replaced"
    assert data["AuditLogA5B7094E"].kind == "replaced" and data["AuditLogA5B7094E"].impact == "replace"
    assert data["WorkerRoleDefaultPolicy1750E153"].kind == "modified"
    # a construct path with a space in it
    ingress = data["DbSgfromErpPipelineDevNetworkAppSgE8E214DD54320FE87305"]
    assert ingress.path == "Dev/Data/DbSg/from ErpPipelineDevNetworkAppSgE8E214DD:5432"
    assert ingress.resource_type == "AWS::EC2::SecurityGroupIngress"


@pytest.mark.parametrize("name", ["multi-stack.txt", "multi-stack-color.txt", "multi-stack-auto.txt"])
def test_counts_per_stack(name):
    stacks, _ = diff_report.parse(fixture(name))
    counts = {
        s.name: tuple(s.count(kind) for kind in ("added", "modified", "removed", "replaced")) + (s.other_changes,)
        for s in stacks
    }
    assert counts == {
        "ErpPipeline (erp-pipeline)": (0, 0, 0, 0, 0),
        "ErpPipeline/Dev/Network (erp-dev-network)": (0, 1, 0, 0, 0),
        DATA: (5, 1, 5, 4, 0),
        "ErpPipeline/Dev/Messaging (erp-dev-messaging)": (1, 0, 0, 0, 2),  # + the parameter and condition
    }


def test_destructive_changes_come_first(capsys):
    code, text = comment("multi-stack.txt", capsys=capsys)
    assert code == 0
    assert text.startswith(diff_report.MARKER + "\n")
    assert text.index("### ⚠ Destructive changes") < text.index("### Summary") < text.index("### Full diff")
    destructive = section(text, "### ⚠ Destructive changes")
    rows = [line for line in destructive.splitlines() if line.startswith(f"| `{DATA}`")]
    assert rows == [
        f"| `{DATA}` | `OrdersDbSecret7D5076CC` | AWS::SecretsManager::Secret | `Dev/Data/OrdersDb/Secret` | **deleted** |",
        f"| `{DATA}` | `OrdersDb889E652A` | AWS::RDS::DBInstance | `Dev/Data/OrdersDb` | **deleted** |",
        f"| `{DATA}` | `AttachmentsBucket8E14A36F` | AWS::S3::Bucket | `Dev/Data/AttachmentsBucket` | "
        "removed from the stack (resource retained, orphaned) |",
        f"| `{DATA}` | `ReportsDb7D60001D` | AWS::RDS::DBInstance | `Dev/Data/ReportsDb` | **may be replaced** |",
        f"| `{DATA}` | `AuditLogA5B7094E` | AWS::Logs::LogGroup | `Dev/Data/AuditLog` | "
        "**replaced** (new resource, old one deleted) |",
    ]


def test_non_stateful_changes_are_not_flagged(capsys):
    _, text = comment("multi-stack.txt", capsys=capsys)
    destructive = section(text, "### ⚠ Destructive changes")
    for not_stateful in (
        "DbSg495F8305",
        "OrdersDbSubnetGroupC6216362",
        "AppSg898BCA4E",
        "ApprovalQueueF7A98584",
        "WorkerRoleDefaultPolicy1750E153",
        "OrdersDb2140E632F",
        "NotificationsQueue3B766469",
    ):
        assert not_stateful not in destructive


def test_summary_table(capsys):
    _, text = comment("multi-stack.txt", capsys=capsys)
    summary = section(text, "### Summary")
    assert "| `ErpPipeline/Dev/Network (erp-dev-network)` | 0 | 1 | 0 | 0 | 0 |" in summary
    assert f"| `{DATA}` | 5 | 1 | 5 | 4 (1 possibly) | 0 |" in summary
    assert "| `ErpPipeline/Dev/Messaging (erp-dev-messaging)` | 1 | 0 | 0 | 0 | 2 |" in summary
    assert "No changes: `ErpPipeline (erp-pipeline)`" in summary
    assert "3 of 4 stack(s) have changes." in text


def test_full_diff_in_details_blocks(capsys):
    _, text = comment("multi-stack.txt", capsys=capsys)
    assert text.count("<details>") == 3  # the unchanged stack gets none
    assert f"<details><summary><b>{DATA}</b>: 5 added, 1 modified, 5 removed, 4 replaced</summary>" in text
    assert "```diff\n" in text
    assert "- [-] AWS::RDS::DBInstance Dev/Data/OrdersDb OrdersDb889E652A destroy\n" in text
    assert "+ [+] AWS::SQS::Queue Dev/Data/ApprovalQueue ApprovalQueueF7A98584\n" in text
    assert "! [~] AWS::Logs::LogGroup Dev/Data/AuditLog AuditLogA5B7094E replace\n" in text


def test_ansi_colours_are_stripped(capsys):
    assert "\x1b[" in fixture("multi-stack-color.txt")
    _, coloured = comment("multi-stack-color.txt", capsys=capsys)
    _, plain = comment("multi-stack.txt", capsys=capsys)
    assert "\x1b" not in coloured
    assert section(coloured, "### ⚠ Destructive changes") == section(plain, "### ⚠ Destructive changes")
    assert section(coloured, "### Summary") == section(plain, "### Summary")


def test_cli_progress_lines_are_not_part_of_any_stack(capsys):
    _, auto = comment("multi-stack-auto.txt", capsys=capsys)
    _, plain = comment("multi-stack.txt", capsys=capsys)
    assert "Hold on while we create" in fixture("multi-stack-auto.txt")
    assert auto == plain


def test_single_stack_template_diff(capsys):
    code, text = comment("single-stack-template.txt", capsys=capsys)
    assert code == 0
    assert f"| `{DATA}` | 5 | 1 | 5 | 4 (1 possibly) | 0 |" in text
    assert "`OrdersDb889E652A`" in section(text, "### ⚠ Destructive changes")


@pytest.mark.parametrize("name", ["no-differences.txt", "no-differences-quiet.txt"])
def test_no_changes_gives_a_short_comment(name, capsys):
    code, text = comment(name, capsys=capsys)
    assert code == 0
    assert text.startswith(diff_report.MARKER)
    assert "✅ No infrastructure changes" in text
    assert "<details>" not in text and "Destructive" not in text
    assert len(text) < 400


def test_failed_diff_is_reported_not_hidden(capsys, tmp_path):
    code, text = comment("no-credentials.txt", capsys=capsys)
    assert code == 1
    assert "printed no stack diff" in text and "Unable to resolve AWS account to use" in text
    assert "No infrastructure changes" not in text
    empty = tmp_path / "diff.txt"
    empty.write_text("")
    assert diff_report.main([str(empty)]) == 1
    assert "printed no stack diff" in capsys.readouterr().out


@pytest.mark.parametrize("max_chars", [60000, 6000, 4000, 2600])
def test_truncation_keeps_destructive_section_and_summary(max_chars, capsys):
    _, full = comment("multi-stack.txt", capsys=capsys)
    code, text = comment("multi-stack.txt", "--max-chars", str(max_chars), capsys=capsys)
    assert code == 0
    assert len(text) <= max_chars
    assert text.startswith(diff_report.MARKER)
    assert section(text, "### ⚠ Destructive changes") == section(full, "### ⚠ Destructive changes")
    assert section(text, "### Summary") == section(full, "### Summary")
    if len(full) <= max_chars:
        assert text == full
    else:
        assert "✂ The full diff was cut to fit GitHub's comment size limit" in text
        assert text.count("<details>") == text.count("</details>")
        assert text.count("```diff") * 2 == text.count("```")


def test_truncation_says_what_was_cut(capsys):
    _, text = comment("multi-stack.txt", "--max-chars", "4000", capsys=capsys)
    assert f"`{DATA}` truncated; `ErpPipeline/Dev/Messaging (erp-dev-messaging)` omitted" in text
    assert "lines cut to fit the comment" in text


def test_limit_below_the_essentials_is_an_error(capsys):
    code, text = comment("multi-stack.txt", "--max-chars", "1000", capsys=capsys)
    assert code == 1 and text == ""


def test_cost_delta_inserted_verbatim(capsys, tmp_path):
    cost = tmp_path / "cost.md"
    cost.write_text("### Cost delta\n\n| Stack | Monthly |\n|---|--:|\n| erp-dev-data | +$12.40 |\n")
    _, text = comment("multi-stack.txt", "--cost-delta", str(cost), capsys=capsys)
    assert "### Cost delta\n\n| Stack | Monthly |\n|---|--:|\n| erp-dev-data | +$12.40 |\n" in text
    assert text.index("### Summary") < text.index("### Cost delta") < text.index("### Full diff")
    _, missing = comment("multi-stack.txt", "--cost-delta", str(tmp_path / "absent.md"), capsys=capsys)
    assert "_Cost delta unavailable: cannot read" in missing


def test_cost_delta_is_left_out_before_the_summary_is_cut(capsys, tmp_path):
    cost = tmp_path / "cost.md"
    cost.write_text("### Cost delta\n\n" + "| line item | +$1 |\n" * 500)
    code, text = comment("multi-stack.txt", "--cost-delta", str(cost), "--max-chars", "4000", capsys=capsys)
    assert code == 0 and len(text) <= 4000
    assert "_Cost delta left out: it did not fit in the comment._" in text
    assert f"| `{DATA}` | 5 | 1 | 5 | 4 (1 possibly) | 0 |" in text


def test_stateful_types_constant():
    assert {
        "AWS::RDS::DBInstance",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::EKS::Cluster",
    } <= diff_report.STATEFUL_TYPES
    assert "AWS::EC2::SecurityGroup" not in diff_report.STATEFUL_TYPES


def test_cli_as_the_workflow_runs_it():
    run = subprocess.run(
        [sys.executable, "tools/diff_report.py", str(FIXTURES / "multi-stack-color.txt"), "--max-chars", "60000"],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0
    assert run.stdout.decode("utf-8").startswith(diff_report.MARKER)


def test_kubernetes_support_notices_go_on_top_of_the_comment(tmp_path):
    """Issue 24 item 4: the workflow passes the support-date warnings of the deployed config; they lead the comment."""
    notices = tmp_path / "notices.txt"
    notices.write_text("dev: standard support of 1.36 ends 2027-08-02 (in 60 days): ...\n\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "tools/diff_report.py", str(FIXTURES / "multi-stack-color.txt"), "--notices", str(notices)],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    comment = run.stdout.decode("utf-8")
    assert run.returncode == 0
    assert "⚠ **Kubernetes support**\n\n- dev: standard support of 1.36 ends 2027-08-02 (in 60 days)" in comment
    assert comment.index("Kubernetes support") < comment.index("stack(s)")

"""No credential in the repository, and proof that the scanner would notice one."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO
from tools.secret_scan import repository_files, scan


def test_repository_has_no_committed_credentials():
    files = repository_files(REPO)
    assert "config/prod.yaml" in files and "app.py" in files
    findings = scan(REPO, files)
    assert findings == [], "\n".join(f"{f}:{line}: {kind}" for f, line, kind in findings)


def test_scanner_catches_the_old_systems_leaks(tmp_path):
    # Built at runtime so that this test file itself holds no credential.
    password, other = "Pr0d" + "Passw0rd" + "!2024", "Zq8v" + "Lm2Kx9"
    key_id = "AKIA" + "Q" * 4 + "7" * 4 + "X" * 8
    (tmp_path / "values-dev.yaml").write_text(
        f'database:\n  password: "{password}"\naws_access_key_id: {key_id}\n'  # pragma: allowlist secret
    )
    (tmp_path / "application.properties").write_text(
        f"spring.datasource.url=mysql://erp_admin:{other}@erp-db.internal:3306/erp\n"
    )
    found = scan(tmp_path, ["values-dev.yaml", "application.properties"])
    assert [(name, kind) for name, _, kind in found] == [
        ("application.properties", "Basic Auth Credentials"),
        ("values-dev.yaml", "Secret Keyword"),
        ("values-dev.yaml", "AWS Access Key"),
    ]


def test_a_link_to_a_scanned_file_is_scanned_once_and_a_link_out_of_the_tree_still_is(tmp_path):
    outside = tmp_path / "outside.env"
    outside.write_text("x\n")
    repo = tmp_path / "repo"
    (repo / "a").mkdir(parents=True)
    (repo / "a" / "ca.pem").write_text("x\n")
    (repo / "b").mkdir()
    (repo / "b" / "ca.pem").symlink_to("../a/ca.pem")
    (repo / "b" / "creds.env").symlink_to(outside)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert sorted(repository_files(repo)) == ["a/ca.pem", "b/creds.env"]

"""The vendored CRDs (k8s_charts/crds) are the upstream ones, checked wherever the tests run.

Everywhere, CodeBuild included: each copy matches the checksum recorded when it was copied
(k8s_charts/crds/SHA256SUMS), and every copy has one. Where ../shared/crds is beside the repository,
the record must also match upstream. Where it is not, that one comparison cannot run: it is skipped
with the reason in pytest's summary (`-ra` in pyproject.toml), or fails when ERP_REQUIRE_SHARED_CRDS=1
says upstream must be there. CI (.ci/run) has ../shared beside the clone: it refuses to start without
../shared/crds and sets ERP_REQUIRE_SHARED_CRDS=1, so there the comparison always runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.charts import CRD_DIR, SHARED_CRD_DIR

SUMS_FILE = CRD_DIR / "SHA256SUMS"
CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"
REQUIRE_ENV = "ERP_REQUIRE_SHARED_CRDS"


def recorded() -> dict[str, str]:
    """file name -> sha256, from `sha256sum *.yaml` output."""
    sums = {}
    for line in SUMS_FILE.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest
    return sums


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_vendored_crd_matches_its_recorded_checksum():
    vendored = {p.name: p for p in sorted(CRD_DIR.glob("*.yaml"))}
    sums = recorded()
    assert vendored, f"no CRDs in {CRD_DIR}"
    assert sorted(vendored) == sorted(sums), (
        f"{SUMS_FILE} lists {sorted(sums)}, the folder holds {sorted(vendored)}: "
        "after copying from ../shared/crds run `cd k8s_charts/crds && sha256sum *.yaml > SHA256SUMS`"
    )
    for name, path in vendored.items():
        assert sha256(path) == sums[name], f"{name} was edited after it was copied from upstream"


def test_the_recorded_checksums_are_upstreams():
    if not SHARED_CRD_DIR.is_dir():
        reason = (
            f"{SHARED_CRD_DIR} is not beside the repository (e.g. the pipeline's CodeBuild): the vendored CRDs "
            "were checked against k8s_charts/crds/SHA256SUMS only, not against upstream"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires upstream)")
        pytest.skip(reason)
    for name, digest in recorded().items():
        upstream = SHARED_CRD_DIR / name
        assert upstream.is_file(), f"{name} is not in {SHARED_CRD_DIR}"
        assert sha256(upstream) == digest, f"{name} drifted from {SHARED_CRD_DIR}"


def run_ci(tmp_path: Path, with_shared: bool) -> tuple[subprocess.CompletedProcess, str | None]:
    """.ci/run from a scratch clone, `make` replaced by a stub that records ERP_REQUIRE_SHARED_CRDS."""
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy(CI_RUN, clone / ".ci" / "run")
    if with_shared:
        (tmp_path / "shared" / "crds").mkdir(parents=True)
    bin_dir, record = tmp_path / "bin", tmp_path / "make-called"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(f'#!/bin/sh\necho "$*:${{{REQUIRE_ENV}:-unset}}" > {record}\n')
    (bin_dir / "make").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True, env=env, check=False)
    return result, record.read_text().strip() if record.exists() else None


def test_ci_refuses_to_run_without_upstream_crds_and_requires_the_comparison(tmp_path):
    result, make = run_ci(tmp_path, with_shared=False)
    assert result.returncode != 0 and make is None
    assert "shared/crds is missing" in result.stderr
    result, make = run_ci(tmp_path / "with", with_shared=True)
    assert result.returncode == 0, result.stderr
    assert make == "test:1", "CI must run `make test` with ERP_REQUIRE_SHARED_CRDS=1"

"""The vendored CRDs (k8s_charts/crds) are the upstream ones, checked wherever the tests run.

Everywhere, CodeBuild included: each copy matches the checksum recorded when it was copied
(k8s_charts/crds/SHA256SUMS), and every copy has one. Where ../shared/crds is beside the repository,
the record must also match upstream. Where it is not, that one comparison cannot run: it is skipped
with the reason in pytest's summary (`-ra` in pyproject.toml), or fails when ERP_REQUIRE_SHARED_CRDS=1
says upstream must be there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.charts import CRD_DIR, SHARED_CRD_DIR

SUMS_FILE = CRD_DIR / "SHA256SUMS"
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

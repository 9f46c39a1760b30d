"""One Kubernetes API client (lambda_handlers/kube_api.py) for the three functions that reach into the cluster,
each holding it as a link: the link must ship, as a file, with each function and count in its asset hash, or a
change to the client would never redeploy them. The client's calls are tested through each handler's tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from constructs_lib.common.python_function import build_bundle, source_hash

HANDLERS = Path(__file__).resolve().parents[2] / "lambda_handlers"
SHARED = HANDLERS / "kube_api.py"
USERS = ("workload_health", "scheduler", "drift_check")


@pytest.mark.parametrize("folder", USERS)
def test_each_function_links_the_one_client(folder):
    link = HANDLERS / folder / "kube_api.py"
    assert link.is_symlink() and os.readlink(link) == "../kube_api.py"
    assert link.resolve() == SHARED


def a_function(root: Path) -> Path:
    """A function folder laid out like the three: its app.py, no packages, the shared client as a link."""
    (root / "kube_api.py").write_text("TIMEOUT_SECONDS = 10\n")
    entry = root / "fn"
    entry.mkdir()
    (entry / "app.py").write_text("from kube_api import TIMEOUT_SECONDS\n")
    (entry / "requirements.txt").write_text("# standard library only\n")
    (entry / "kube_api.py").symlink_to("../kube_api.py")
    return entry


def test_a_linked_module_ships_as_a_file_and_changes_the_hash(tmp_path):
    entry = a_function(tmp_path)
    before = source_hash(entry)
    bundle = build_bundle(entry, tmp_path / "cache")
    shipped = bundle / "kube_api.py"
    assert not shipped.is_symlink() and shipped.read_text() == "TIMEOUT_SECONDS = 10\n"

    (tmp_path / "kube_api.py").write_text("TIMEOUT_SECONDS = 20\n")
    assert source_hash(entry) != before, "a change to the shared client must redeploy every function using it"


def test_a_link_a_checkout_flattened_into_text_fails_synth(tmp_path):
    """CodePipeline's source zip keeps no symlinks: the link arrives as a file holding '../kube_api.py'."""
    entry = a_function(tmp_path)
    (entry / "kube_api.py").unlink()
    (entry / "kube_api.py").write_text("../kube_api.py")

    with pytest.raises(ValueError, match=r"kube_api\.py: holds only the path '\.\./kube_api\.py': a symlink"):
        source_hash(entry)

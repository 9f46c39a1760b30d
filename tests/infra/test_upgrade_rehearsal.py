"""`make upgrade-check` for the next minor, on this session's synth (issue 24 item 2): the suite warns a release
ahead, not on the day. The rehearsal must run and validate every manifest; its blockers (today: the add-on
versions and the release EKS has not published for 1.37, and the kubectl layer to pin) become a pytest warning,
never a failure: a calendar date must not turn the suite red."""

from __future__ import annotations

import warnings

from config.base import SUPPORTED_KUBERNETES
from tools import upgrade_check


def next_minor() -> str:
    major, minor = max(tuple(map(int, v.split("."))) for v in SUPPORTED_KUBERNETES)
    return f"{major}.{minor + 1}"


def test_the_next_minor_is_rehearsed_on_every_synth(cdk_out, capsys):
    target = next_minor()
    code = upgrade_check.main(["--to", target, "--cdk-out", str(cdk_out), "--today", "2026-12-04"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    for env in ("dev", "prod"):
        # Every manifest object that is not a custom resource was validated against the target's strict schemas.
        assert f"{env}: " in out and f"manifest objects validated against {target} (strict)" in out
        assert f"config/{env}.yaml: cluster.kubernetes_version:" in out
    assert "extended support: $0.60/cluster-hour instead of $0.10" in out
    blockers = [line for line in out.splitlines() if line.startswith("blocker: ")]
    assert (code == 1) == bool(blockers)
    # No manifest of ours uses an API or field the next minor removed: that would be a failure now, not later.
    assert not [b for b in blockers if "removed in" in b or "field" in b], blockers
    if blockers:
        detail = " | ".join(b[len("blocker: ") :] for b in blockers)
        warnings.warn(f"upgrade to {target} is blocked: {detail}", stacklevel=1)

"""The recorded Kubernetes calendar and per-minor add-on versions (kubernetes-versions.yaml), for synth and tools.

Synth pins each EKS managed add-on to the version recorded for the cluster's minor, so that changing
`cluster.kubernetes_version` changes every AddonVersion too and CloudFormation upgrades the add-ons right after
the control plane. A version the table cannot source is null: that add-on takes EKS's default when created and is
not moved by an upgrade until its version is recorded (`make upgrade-check` refuses a target without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TABLE_FILE = Path(__file__).with_name("kubernetes-versions.yaml")


@cache
def table(path: Path = TABLE_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def minor_entry(minor: str, path: Path = TABLE_FILE) -> dict[str, Any]:
    entry = table(path).get("minors", {}).get(minor)
    if entry is None:
        raise KeyError(f"{path.name} has no entry for Kubernetes {minor}")
    return entry


def addon_version(minor: str, addon: str, path: Path = TABLE_FILE) -> str | None:
    """The version recorded for `addon` on `minor`, or None (not sourced: EKS's default at create)."""
    return (minor_entry(minor, path).get("addons", {}).get(addon) or {}).get("version")


# Standard support ending this soon (or a table read this long ago) is worth a warning: a release's notice period.
SUPPORT_WARNING_DAYS = 90


def table_date(value: Any) -> date | None:
    """A date of the table (YAML may give a date or a string); None when absent or malformed."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def support_warnings(
    currents: Mapping[str, str], today: date, recorded: Mapping[str, Any] | None = None, name: str = TABLE_FILE.name
) -> list[str]:
    """One line per environment whose minor leaves standard support within SUPPORT_WARNING_DAYS of `today` (or
    has no recorded date), and one when the table (`recorded`, default: this folder's) is older than that. A
    warning only: never a failure, so nothing starts failing on a calendar date."""
    recorded = table() if recorded is None else recorded
    found = []
    for env, minor in sorted(currents.items()):
        end = table_date((recorded.get("minors", {}).get(minor) or {}).get("end_of_standard_support"))
        if end is None:
            found.append(f"{env}: {minor} has no end_of_standard_support in {name}")
            continue
        left = (end - today).days
        if left <= SUPPORT_WARNING_DAYS:
            when = f"in {left} days" if left >= 0 else f"{-left} days ago"
            found.append(
                f"{env}: standard support of {minor} ends {end} ({when}): EKS then upgrades the control plane "
                "itself (UpgradePolicy STANDARD); rehearse and deploy the next minor before that "
                "(make upgrade-check TO=<next>)"
            )
    read_on = table_date(recorded.get("read_on"))
    if read_on is None:
        found.append(f"{name} has no read_on date: refresh it (README: Kubernetes upgrades)")
    elif (today - read_on).days > SUPPORT_WARNING_DAYS:
        found.append(
            f"{name} was read on {read_on}, {(today - read_on).days} days ago: refresh it (README: Kubernetes upgrades)"
        )
    return found

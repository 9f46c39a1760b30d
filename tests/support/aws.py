"""Fake AWS credentials for tests that run boto3 against moto: even a mock that failed to start reaches no account."""

from __future__ import annotations

import pytest

FAKE_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def use_fake_credentials(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """Fake keys, a default region, and no profile (a developer's ~/.aws profile would otherwise win)."""
    for name in FAKE_CREDENTIALS:
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

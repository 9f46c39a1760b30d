"""The real frontend's journeys and the attacks on them, end to end through the synthesized platform, for
every environment (tests/journeys/harness.py says how each real piece is modelled)."""

from __future__ import annotations

import json
import os

import pytest

from tests.journeys.attacks import ATTACKS
from tests.journeys.conftest import ENVIRONMENTS
from tests.journeys.journeys import JOURNEYS

JOURNEY_CASES = [(env, name) for env in ENVIRONMENTS for name in JOURNEYS]
ATTACK_CASES = [(env, name) for env in ENVIRONMENTS for name in ATTACKS]


def _ids(cases):
    return [f"{env}-{name}" for env, name in cases]


def _self_sign_up(configs, env: str) -> None:
    if not configs[env].auth.allowed_signup_domains:
        pytest.skip(f"{env}: self sign-up is off (auth.allowed_signup_domains is empty); these journeys start there")


def _run(world, env: str, kind: str, name: str, play) -> None:
    """Plays one journey; with JOURNEY_REPORT=<file> also appends its steps and result there (make journeys)."""
    played = world(env)
    outcome = "passed"
    try:
        play(played)
    except BaseException as exc:
        outcome = f"FAILED: {str(exc).splitlines()[0]}" if str(exc) else "FAILED"
        raise
    finally:
        if os.environ.get("JOURNEY_REPORT"):
            steps = [
                {"name": j.name, "setup": j.within not in (None, j.name), "steps": j.steps} for j in played.journeys
            ]
            line = {"env": env, "kind": kind, "name": name, "result": outcome, "journeys": steps}
            with open(os.environ["JOURNEY_REPORT"], "a", encoding="utf-8") as report:
                report.write(json.dumps(line) + "\n")


@pytest.mark.parametrize(("env", "journey"), JOURNEY_CASES, ids=_ids(JOURNEY_CASES))
def test_journey(world, configs, env, journey):
    _self_sign_up(configs, env)
    _run(world, env, "journey", journey, JOURNEYS[journey])


@pytest.mark.parametrize(("env", "attack"), ATTACK_CASES, ids=_ids(ATTACK_CASES))
def test_attack(world, configs, env, attack):
    _self_sign_up(configs, env)
    _run(world, env, "attack", attack, ATTACKS[attack])

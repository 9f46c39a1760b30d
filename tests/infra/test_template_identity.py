"""One template per environment whichever way it is deployed.

`make deploy ENV=x` synthesizes with `-c env=x`; the pipeline synthesizes every stage inside the pipeline
stack. Logical ids that CDK derives from construct paths (the generated master secret, security-group
rules) must not differ between the two, or each mode would replace what the other created (a new
database password under running services). The test compares the files byte for byte, stack by stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import synth_app


def templates_by_stack_name(outdir: Path) -> dict[str, bytes]:
    found = {}

    def walk(assembly: Path) -> None:
        manifest = json.loads((assembly / "manifest.json").read_text())
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            props = artifact.get("properties", {})
            if artifact["type"] == "aws:cloudformation:stack":
                found[props.get("stackName", artifact_id)] = (assembly / props["templateFile"]).read_bytes()
            elif artifact["type"] == "cdk:cloud-assembly":
                walk(assembly / props["directoryName"])

    walk(outdir)
    return found


@pytest.fixture(scope="module")
def hand_outdir(tmp_path_factory) -> Path:
    """What `make deploy ENV=dev` synthesizes (the CLI passes `-c env=dev`)."""
    return synth_app(tmp_path_factory.mktemp("hand-dev"), env="dev")


@pytest.fixture(scope="module")
def hand_deploy_dev(hand_outdir) -> dict[str, bytes]:
    return templates_by_stack_name(hand_outdir)


def test_hand_deploy_and_pipeline_synthesize_identical_templates(hand_deploy_dev, cdk_out):
    pipeline = templates_by_stack_name(cdk_out)
    assert sorted(hand_deploy_dev) == sorted(name for name in pipeline if name.startswith("erp-dev-"))
    differing = [name for name, template in sorted(hand_deploy_dev.items()) if template != pipeline[name]]
    assert differing == []


def test_hand_deploy_stacks_sit_at_the_pipeline_construct_path(hand_outdir):
    """The Makefile selects 'ErpPipeline/<Stage>/*'; every stack of the stage must match that pattern."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "STAGE_STACKS := 'ErpPipeline/$(STAGE_ID)/*'" in makefile
    # make synth runs the app itself (-c env=...), then the CLI reads that assembly.
    assert "cdk deploy --app $(OUT) $(STAGE_STACKS)" in makefile
    assert "cdk diff --app $(OUT) $(STAGE_STACKS)" in makefile
    tree = json.loads((hand_outdir / "tree.json").read_text())
    dev = tree["tree"]["children"]["ErpPipeline"]["children"]["Dev"]["children"]
    assert {"Network", "Data", "Auth", "Api", "Registry", "Cluster", "Observability", "Workloads"} <= set(dev)

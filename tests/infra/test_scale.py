"""HEAVY, one extra synth: the dev stage at the Elice seed's size (twelve services, tools/scale_config.py).

Twelve services used to die with a traceback (13 regex metric filters on one log group where CloudWatch
allows 5; a restart alarm summing 16 pods where an alarm reads 10 metrics). Here the stage synthesizes,
cdk-nag stays clean (a finding fails app.synth()), cfn-lint finds nothing in the observability template,
and every stack stays inside the CloudFormation and CloudWatch limits that grow with the services.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import build, new_app
from config.placeholders import CONTEXT_KEY as PLACEHOLDERS_KEY
from tests.conftest import REPO, cdk_context, resources_of
from tools.cost import stack_artifacts
from tools.scale_config import write_config_dir

pytestmark = pytest.mark.heavy

SERVICES = 12
# CloudFormation: resources, outputs, parameters per stack; template body (from S3) in bytes.
MAX_RESOURCES, MAX_OUTPUTS, MAX_PARAMETERS, MAX_TEMPLATE_BYTES = 500, 200, 200, 1_000_000
# CloudWatch: metrics one alarm may read; alarms one status widget shows; regex filters per log group.
MAX_ALARM_METRICS, MAX_ALARMS_PER_WIDGET, MAX_REGEX_FILTERS = 10, 100, 5


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Stack name -> (template file, template) of the twelve-service dev stage."""
    root = tmp_path_factory.mktemp("scale")
    config_dir = write_config_dir(root / "config", SERVICES)
    app = new_app(
        outdir=str(root / "cdk.out"),
        context={**cdk_context(), "config_dir": str(config_dir), "env": "dev", PLACEHOLDERS_KEY: "warn"},
    )
    build(app)
    app.synth()  # raises on an unacknowledged cdk-nag finding
    return {a.name: (a.template, json.loads(a.template.read_text())) for a in stack_artifacts(root / "cdk.out")}


def test_twelve_services_synthesize_within_cloudformation_limits(scaled):
    assert {name.removeprefix("erp-dev-") for name in scaled} >= {"api", "cluster", "observability", "workloads"}
    for name, (path, template) in scaled.items():
        assert len(template["Resources"]) <= MAX_RESOURCES, name
        assert len(template.get("Outputs", {})) <= MAX_OUTPUTS, name
        assert len(template.get("Parameters", {})) <= MAX_PARAMETERS, name
        assert path.stat().st_size <= MAX_TEMPLATE_BYTES, name


def test_error_counts_use_two_filters_and_the_dashboard_shows_every_service(scaled):
    _, template = scaled["erp-dev-observability"]
    # The application log's filters (the SLO filters sit on the API's access log: tests/infra/test_slo.py).
    filters = {
        k: f
        for k, f in resources_of(template, "AWS::Logs::MetricFilter").items()
        if "/aws/apigateway/" not in json.dumps(f["Properties"]["LogGroupName"])
    }
    assert len(filters) == 2 <= MAX_REGEX_FILTERS
    body = json.dumps(template["Resources"][next(iter(resources_of(template, "AWS::CloudWatch::Dashboard")))])
    for n in range(1, SERVICES + 1):
        assert f'\\"Container\\",\\"svc-{n:02d}\\"' in body, f"svc-{n:02d} missing from the error graph"


def test_every_alarm_reads_at_most_ten_metrics_and_every_alarm_is_on_the_dashboard(scaled):
    _, template = scaled["erp-dev-observability"]
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 2 * SERVICES + 13  # two NLB alarms per service, the restart alarm included
    for logical_id, alarm in alarms.items():
        assert len(alarm["Properties"].get("Metrics", [])) <= MAX_ALARM_METRICS + 1, logical_id
    restarts = next(a["Properties"] for a in alarms.values() if a["Properties"]["AlarmName"] == "erp-dev-pod-restarts")
    assert restarts["Metrics"][0]["Expression"].startswith("SELECT SUM(pod_number_of_container_restarts)")
    dashboard = next(iter(resources_of(template, "AWS::CloudWatch::Dashboard").values()))
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert all(logical_id in body for logical_id in alarms)


def test_xray_rule_matches_the_services_and_not_the_whole_account(scaled):
    _, template = scaled["erp-dev-observability"]
    rules = [r["Properties"]["SamplingRule"] for r in resources_of(template, "AWS::XRay::SamplingRule").values()]
    for rule in rules:
        assert rule["ServiceName"] == "svc-*"
        assert all(fnmatch.fnmatchcase(f"svc-{n:02d}", rule["ServiceName"]) for n in range(1, SERVICES + 1))


def test_cfn_lint_is_clean_on_the_scaled_observability_template(scaled):
    path, _ = scaled["erp-dev-observability"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode in (0, 8), result.stdout + result.stderr

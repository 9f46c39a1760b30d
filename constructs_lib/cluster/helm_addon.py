"""The shared shape of every Helm add-on: a pinned chart version from config, released the same way.

Each add-on (load_balancer_controller.py, external_secrets.py, reloader.py) says what it installs and
with which values; how it is installed (wait, timeout, what it must come after) is decided once here.
A new add-on: its version in config.cluster.helm (HelmVersions), a HelmAddon naming that field, and `install`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.models import EnvironmentConfig

HELM_TIMEOUT = Duration.minutes(10)


@dataclass(frozen=True)
class HelmAddon:
    chart: str
    repository: str
    namespace: str
    create_namespace: bool
    version_field: str  # its pinned version: this field of config.cluster.helm (HelmVersions)
    release: str | None = None  # the chart's name unless told

    @property
    def release_name(self) -> str:
        return self.release or self.chart


def install(
    scope: Construct,
    id: str,
    addon: HelmAddon,
    *,
    cluster: eks.ICluster,
    config: EnvironmentConfig,
    values: dict,
    after: list[Construct],
    helm_chart: type = eks.HelmChart,
):
    """Release `addon` at its pinned version after `after` (its Pod Identity role, the node groups: Helm waits for the
    pods, and without nodes it only times out).

    Always with --wait (issue 18 item 15): a release that returns before its pods are ready lets the Workloads
    stack apply through webhooks with no endpoints. A stage with a night schedule cannot run pods at night, where
    --wait would time out and the rollback's --wait again (UPDATE_ROLLBACK_FAILED); the pipeline's awake check
    (tools/awake_check.py) refuses to start a deploy there while the nodes sleep or when the deploy could run into
    the night stop; before a hand deploy, run it yourself (README: By hand). The Workloads stack
    also waits for the webhooks itself (constructs_lib/cluster/addon_readiness.py), for deploys that do not
    change a release."""
    chart = helm_chart(
        scope,
        id,
        cluster=cluster,
        chart=addon.chart,
        repository=addon.repository,
        version=getattr(config.cluster.helm, addon.version_field),
        release=addon.release_name,
        namespace=addon.namespace,
        create_namespace=addon.create_namespace,
        wait=True,
        timeout=HELM_TIMEOUT,
        values=values,
    )
    chart.node.add_dependency(*after)
    return chart

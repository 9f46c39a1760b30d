"""cdk8s charts for what runs inside the EKS cluster; the CDK side deploys each chart as a KubernetesManifest."""

from k8s_charts.platform import build_charts, build_storage_chart
from k8s_charts.values import PlatformValues

__all__ = ["PlatformValues", "build_charts", "build_storage_chart"]

"""Fluent Bit: tails the erp namespace's container logs on every node into the one CloudWatch log group.

It runs as root in its own namespace, the one exception to the non-root rule (names.ROOT_EXEMPT_WORKLOADS):
the kubelet writes /var/log/pods files root-owned and 0640. Everything else stays locked down: no privilege
escalation, no capabilities, read-only root and host mounts, except the directory holding its tail positions.
"""

from __future__ import annotations

import hashlib

from cdk8s import ApiObjectMetadata
from cdk8s_plus_27 import ApiResource, ClusterRole, ClusterRoleBinding, ConfigMap, ServiceAccount, k8s
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import names
from k8s_charts.common import (
    PSA,
    RUNTIME_DEFAULT,
    int_or_string,
    meta,
    namespace,
    pod_labels,
    resources,
    scratch_volume,
    selector_labels,
)
from k8s_charts.images import FLUENT_BIT, image_uri
from k8s_charts.namespace import aws_api_egress, dns_egress, network_policy
from k8s_charts.values import PlatformValues

# The tag AWS marks `stable` (AWS_FOR_FLUENT_BIT_STABLE_VERSION), Fluent Bit 1.9.10 on Amazon Linux 2.
IMAGE = FLUENT_BIT  # k8s_charts/images.py: through the stage's ECR pull-through cache
CONFIG_DIR = "/fluent-bit/etc"  # where the image's entrypoint reads fluent-bit.conf
STATE_DIR = "/var/fluent-bit/state"  # tail positions and buffered chunks: must survive pod restarts
HTTP_PORT = 2020


def fluent_bit_config(env: EnvironmentConfig, values: PlatformValues) -> str:
    """Log files are named <pod>_<namespace>_<container>-<id>.log: the path picks the namespace, and the
    tag (prefix + file name) gives each pod's container its own log stream."""
    return f"""\
[SERVICE]
    Flush                     5
    Grace                     30
    Log_Level                 info
    Daemon                    off
    HTTP_Server               On
    HTTP_Listen               0.0.0.0
    HTTP_Port                 {HTTP_PORT}
    Health_Check              On
    HC_Errors_Count           5
    HC_Retry_Failure_Count    5
    HC_Period                 60
    storage.path              {STATE_DIR}/flb-storage/
    storage.sync              normal
    storage.backlog.mem_limit 5M

[INPUT]
    Name                tail
    Tag                 kube.*
    Path                /var/log/containers/*_{env.namespace}_*.log
    multiline.parser    cri, docker
    DB                  {STATE_DIR}/flb_container.db
    DB.locking          true
    Mem_Buf_Limit       50MB
    Skip_Long_Lines     On
    Refresh_Interval    10
    Rotate_Wait         30
    storage.type        filesystem

[FILTER]
    Name                kubernetes
    Match               kube.*
    Kube_URL            https://kubernetes.default.svc:443
    Kube_Tag_Prefix     kube.var.log.containers.
    Merge_Log           On
    Keep_Log            Off
    K8S-Logging.Parser  Off
    K8S-Logging.Exclude On
    Labels              Off
    Annotations         Off
    Buffer_Size         0

[OUTPUT]
    Name                cloudwatch_logs
    Match               kube.*
    region              {values.region}
    log_group_name      {values.log_group_name}
    log_stream_prefix   {env.namespace}.
    auto_create_group   false
    Retry_Limit         5
"""


class FluentBit(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, values: PlatformValues) -> None:
        super().__init__(scope, id)
        ns, name = names.LOGGING_NAMESPACE, names.FLUENT_BIT
        labels = pod_labels(name, "logging")

        # hostPath and root are what `baseline`/`restricted` forbid: privileged, but audited.
        namespace(self, ns, {f"{PSA}/enforce": "privileged", f"{PSA}/audit": "restricted"})
        # The kubernetes filter calls the API server with this account's token.
        account = ServiceAccount(
            self, "ServiceAccount", metadata=ApiObjectMetadata(name=name, namespace=ns), automount_token=True
        )
        reader = ClusterRole(self, "Reader", metadata=ApiObjectMetadata(name=f"{name}-read"))
        reader.allow_read(ApiResource.PODS, ApiResource.NAMESPACES)
        ClusterRoleBinding(
            self, "ReaderBinding", role=reader, metadata=ApiObjectMetadata(name=f"{name}-read")
        ).add_subjects(account)
        conf = fluent_bit_config(env, values)
        config = ConfigMap(
            self,
            "Config",
            metadata=ApiObjectMetadata(name=f"{name}-config", namespace=ns),
            data={"fluent-bit.conf": conf},
        )

        network_policy(
            self, "DefaultDeny", name="default-deny-all", namespace=ns, pod_selector={}, ingress=[], egress=[]
        )
        # CloudWatch Logs and the Kubernetes API are both HTTPS; credentials come from the Pod Identity Agent.
        network_policy(
            self,
            "Egress",
            name="allow-fluent-bit-egress",
            namespace=ns,
            pod_selector=selector_labels(name),
            egress=[dns_egress(), *aws_api_egress()],
        )

        http = int_or_string(HTTP_PORT)
        container = k8s.Container(
            name=name,
            image=image_uri(IMAGE, env, values.registry_host),
            image_pull_policy="IfNotPresent",
            ports=[k8s.ContainerPort(name="http", container_port=HTTP_PORT)],
            resources=resources(cpu_request="100m", cpu_limit="500m", memory_request="128Mi", memory_limit="256Mi"),
            # /api/v1/health turns unhealthy after repeated output failures (Health_Check above).
            liveness_probe=k8s.Probe(
                http_get=k8s.HttpGetAction(path="/api/v1/health", port=http),
                initial_delay_seconds=10,
                period_seconds=30,
            ),
            readiness_probe=k8s.Probe(http_get=k8s.HttpGetAction(path="/", port=http), period_seconds=10),
            security_context=k8s.SecurityContext(
                run_as_user=0,
                run_as_non_root=False,
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=k8s.Capabilities(drop=["ALL"]),
            ),
            volume_mounts=[
                k8s.VolumeMount(name="varlog", mount_path="/var/log", read_only=True),
                k8s.VolumeMount(name="state", mount_path=STATE_DIR),
                k8s.VolumeMount(name="config", mount_path=CONFIG_DIR, read_only=True),
                k8s.VolumeMount(name="tmp", mount_path="/tmp"),
            ],
        )
        k8s.KubeDaemonSet(
            self,
            "DaemonSet",
            metadata=meta(name, ns, labels=labels),
            spec=k8s.DaemonSetSpec(
                selector=k8s.LabelSelector(match_labels=selector_labels(name)),
                template=k8s.PodTemplateSpec(
                    # Fluent Bit reads its config once: a changed config must roll the pods.
                    metadata=k8s.ObjectMeta(
                        labels=labels,
                        annotations={"erp.io/config-sha256": hashlib.sha256(conf.encode()).hexdigest()[:16]},
                    ),
                    spec=k8s.PodSpec(
                        service_account_name=account.name,
                        automount_service_account_token=True,
                        enable_service_links=False,
                        security_context=k8s.PodSecurityContext(seccomp_profile=RUNTIME_DEFAULT),
                        # Every node, tainted Kafka nodes included: erp pods run there too.
                        tolerations=[k8s.Toleration(operator="Exists")],
                        termination_grace_period_seconds=45,
                        containers=[container],
                        volumes=[
                            k8s.Volume(
                                name="varlog", host_path=k8s.HostPathVolumeSource(path="/var/log", type="Directory")
                            ),
                            k8s.Volume(
                                name="state",
                                host_path=k8s.HostPathVolumeSource(path=STATE_DIR, type="DirectoryOrCreate"),
                            ),
                            k8s.Volume(name="config", config_map=k8s.ConfigMapVolumeSource(name=config.name)),
                            scratch_volume("tmp"),
                        ],
                    ),
                ),
            ),
        )

"""Kafka's volumes grow without touching the StatefulSet.

A StatefulSet's volumeClaimTemplates are immutable, so the template keeps the size of the first deploy
(`kafka.initial_storage_gib`) and a larger `kafka.storage_gib` is applied to each broker's claim
(`data-kafka-<n>`) with a patch; the gp3 StorageClass allows expansion, and the EBS CSI driver grows the
volume and the filesystem online. Shrinking is refused by config validation (EBS cannot shrink).
"""

from __future__ import annotations

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.models import EnvironmentConfig
from k8s_charts import names

CLAIM_TEMPLATE = "data"


def claim_names(config: EnvironmentConfig) -> list[str]:
    """The claims the StatefulSet controller creates: <template>-<statefulset>-<ordinal>."""
    return [f"{CLAIM_TEMPLATE}-{names.KAFKA}-{ordinal}" for ordinal in range(config.kafka.replicas)]


class KafkaVolumeGrowth(Construct):
    def __init__(
        self, scope: Construct, id: str, *, cluster: eks.ICluster, config: EnvironmentConfig, after: Construct
    ) -> None:
        super().__init__(scope, id)
        self.patches: dict[str, eks.KubernetesPatch] = {}
        kafka = config.kafka
        if kafka.storage_gib <= kafka.template_storage_gib:
            return
        size = {"spec": {"resources": {"requests": {"storage": f"{kafka.storage_gib}Gi"}}}}
        for claim in claim_names(config):
            patch = eks.KubernetesPatch(
                self,
                claim,
                cluster=cluster,
                resource_name=f"persistentvolumeclaim/{claim}",
                resource_namespace=config.namespace,
                apply_patch=size,
                # A claim cannot shrink: removing the patch leaves the volume as large as it is.
                restore_patch=size,
                patch_type=eks.PatchType.STRATEGIC,
            )
            patch.node.add_dependency(after)
            self.patches[claim] = patch

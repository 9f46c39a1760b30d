"""The cluster's default StorageClass: encrypted gp3 volumes that outlive the claims bound to them."""

from __future__ import annotations

from cdk8s_plus_27 import k8s
from constructs import Construct

from k8s_charts import names
from k8s_charts.common import meta


class Gp3StorageClass(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        k8s.KubeStorageClass(
            self,
            "StorageClass",
            metadata=meta(names.STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
            # Created in the zone the pod lands in, so a StatefulSet pod is never stranded away from its disk.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            # Deleting a claim (or the Kafka StatefulSet) must not delete the messages on it.
            reclaim_policy="Retain",
        )

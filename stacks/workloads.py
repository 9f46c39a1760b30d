"""Workloads tier: the cdk8s charts applied to the cluster, fed with real values from the other stacks.

Its own stack because its manifests take values from Api and Data; on the Cluster
stack they would make a dependency cycle (Api -> Cluster -> Api).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.kafka_volumes import KafkaVolumeGrowth
from constructs_lib.cluster.workload_access import WorkloadAccess
from constructs_lib.common.reference_fingerprint import follow
from constructs_lib.data.cache import CACHE_PORT
from constructs_lib.data.database import MYSQL_PORT
from constructs_lib.delivery.registry import image_uri
from k8s_charts import build_charts
from k8s_charts.values import PlatformValues
from stacks.api import ApiEndpoints
from stacks.data import DataEndpoints


class WorkloadsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        cluster: eks.Cluster,
        vpc: ec2.IVpc,
        data: DataEndpoints,
        api: ApiEndpoints,
        repositories: Mapping[str, ecr.IRepository],
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        values = PlatformValues(
            region=self.region,
            vpc_cidr=vpc.vpc_cidr_block,
            nlb_private_ips=api.nlb_private_ips,
            db_host=data.database_host,
            db_port=str(MYSQL_PORT),
            db_name=config.database.database_name,
            # Each service that declares `mysql` logs in as its own user (erp/{env}/mysql/<user>).
            mysql_secret_arns={name: secret.secret_arn for name, secret in data.service_db_secrets.items()},
            cache_host=data.cache_host,
            cache_port=str(CACHE_PORT),
            cache_secret_arn=data.cache_secret.secret_arn,
            mongodb_secret_arn=data.mongodb_secret.secret_arn,
            employee_function_url_host=api.employee_function_url_host,
            target_group_arns=api.target_group_arns,
            nlb_security_group_id=api.nlb_security_group.security_group_id,
            images={s.name: image_uri(self, s, repositories) for s in config.services},
            log_group_name=config.application_log_group,
            registry_host=f"{Aws.ACCOUNT_ID}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}",
        )
        access = WorkloadAccess(
            self,
            "Access",
            config=config,
            cluster=cluster,
            database_security_group=data.database_security_group,
            cache_security_group=data.cache_security_group,
            employees=api.employees if config.uses_employee_api else None,
        )
        # Every producer whose value the manifests read: when one is replaced, the manifests re-apply.
        producers = [
            *api.target_groups.values(),
            api.nlb_security_group,
            data.database,
            data.database_secret,
            data.cache_replication_group,
            data.cache_secret,
        ]
        self.manifests: dict[str, eks.KubernetesManifest] = {}
        previous = None
        for chart_id, chart in build_charts(config, values).items():
            manifest = eks.KubernetesManifest(self, chart_id, cluster=cluster, manifest=chart.to_json(), overwrite=True)
            # Pod Identity associations (Fluent Bit, X-Ray daemon) and the pods' SG rules exist before any pod.
            manifest.node.add_dependency(access)
            if previous is not None:
                # Namespace first, then secrets, Kafka, services...: each chart may use the previous one's objects.
                manifest.node.add_dependency(previous)
            follow(manifest, producers)
            previous = manifest
            self.manifests[chart_id] = manifest
        self.kafka_volumes = KafkaVolumeGrowth(
            self, "KafkaVolumes", cluster=cluster, config=config, after=self.manifests["kafka"]
        )

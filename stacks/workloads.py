"""Workloads tier: the cdk8s charts applied to the cluster, fed with real values from the other stacks.

Its own stack because its manifests take values from Api and Data; on the Cluster
stack they would make a dependency cycle (Api -> Cluster -> Api).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.cluster.addon_readiness import WebhooksReady, api_server_service_ip
from constructs_lib.cluster.kafka_volumes import KafkaVolumeGrowth
from constructs_lib.cluster.workload_access import WorkloadAccess
from constructs_lib.common.reference_fingerprint import follow
from constructs_lib.data.cache import CACHE_PORT
from constructs_lib.data.database import MYSQL_PORT
from constructs_lib.delivery.registry import image_uri
from constructs_lib.observability.drift import DriftCheck
from k8s_charts import build_charts
from k8s_charts.manifests import deploy_units
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
            api_server_service_ip=api_server_service_ip(self, "ApiServerServiceIp", cluster=cluster),
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
            # The employee function URL's host (Fn::GetStackOutput): a new URL is a new host.
            api.employees.internal_url,
        ]
        # Every manifest waits until the add-ons' webhooks serve (constructs_lib/cluster/addon_readiness.py).
        self.webhooks = WebhooksReady(self, "Webhooks", cluster=cluster)
        charts = {chart_id: chart.to_json() for chart_id, chart in build_charts(config, values).items()}
        # One manifest per chart for what kubectl prunes, one per object for what it does not, so that a removed
        # object is always deleted (issue 18 item 9: k8s_charts/manifests.py). Applied one after another (~50
        # kubectl Lambdas; a new account may run 10 at once), in chart order: the add-ons' policies, the
        # namespace's policies, secrets, Kafka, services, logging, tracing.
        self.manifests: dict[str, eks.KubernetesManifest] = {}  # chart id -> the chart's own manifest
        self.object_manifests: dict[str, eks.KubernetesManifest] = {}  # object id -> its own manifest
        previous = previous_chart = None
        for unit in deploy_units(charts):
            manifest = eks.KubernetesManifest(
                self,
                unit.id,
                cluster=cluster,
                manifest=unit.objects,
                overwrite=True,
                **({"removal_policy": RemovalPolicy.RETAIN} if unit.retain else {}),
            )
            # Pod Identity associations (Fluent Bit, the collectors) and the pods' SG rules exist before any pod.
            manifest.node.add_dependency(access, self.webhooks)
            # Namespace first, then secrets, Kafka, services...: each may use what the ones before it created.
            manifest.node.add_dependency(*dict.fromkeys(m for m in (previous, previous_chart) if m is not None))
            follow(manifest, producers)
            previous = manifest
            if unit.single:
                self.object_manifests[unit.id] = manifest
            else:
                self.manifests[unit.chart] = manifest
                previous_chart = manifest
        self.webhooks.follow(charts, producers)
        self.kafka_volumes = KafkaVolumeGrowth(
            self, "KafkaVolumes", cluster=cluster, config=config, after=self.manifests["kafka"]
        )
        # Daily: CloudFormation drift of every stack of the stage, and cluster objects no chart holds any more.
        self.drift = DriftCheck(self, "Drift", config=config, cluster=cluster, vpc=vpc, charts=charts)

"""Build every chart for dev and prod once per session, from realistic fake deploy-time values."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pytest
from cdk8s import Chart

from config import load_environment
from config.hosting import nlb_private_ips
from config.models import EnvironmentConfig
from k8s_charts import PlatformValues, build_charts, build_storage_chart
from k8s_charts.namespace import APP_NAMESPACE_CHART, build_app_namespace_chart
from k8s_charts.values import token_values
from tests.support.charts import Manifest

ENVIRONMENTS = ("dev", "prod")


def fake_values(env: EnvironmentConfig) -> PlatformValues:
    """What CDK would pass once deployed, shaped like the real thing (ids are made up)."""
    region, account = env.region, env.account
    return PlatformValues(
        region=region,
        vpc_cidr=env.network.vpc_cidr,
        api_server_service_ip="172.20.0.1",
        nlb_private_ips=nlb_private_ips(env.network),
        db_host=f"{env.cluster_name}-db.cxexample0001.{region}.rds.amazonaws.com",
        db_port="3306",
        db_name=env.database.database_name,
        mysql_secret_arns={
            s.name: f"arn:aws:secretsmanager:{region}:{account}:secret:erp/{env.name}/mysql/{s.name}-AbCdEf"
            for s in env.services
            if "mysql" in s.uses
        },
        cache_host=f"master.{env.cluster_name}-cache.example.apn2.cache.amazonaws.com",
        cache_port="6379",
        cache_secret_arn=f"arn:aws:secretsmanager:{region}:{account}:secret:erp/{env.name}/cache-GhIjKl",
        mongodb_secret_arn=f"arn:aws:secretsmanager:{region}:{account}:secret:erp/{env.name}/mongodb-MnOpQr",
        employee_function_url_host=f"abcdefghijklmnopqrstuvwxyz012345.lambda-url.{region}.on.aws",
        target_group_arns={
            s.name: f"arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{s.name[:24]}/{i:016x}"
            for i, s in enumerate(env.services, start=1)
        },
        nlb_security_group_id="sg-0123456789abcdef0",
        images={
            s.name: f"{account}.dkr.ecr.{region}.amazonaws.com/erp/{s.name}:{s.image.tag or '1.0.0'}"
            for s in env.services
        },
        log_group_name=env.application_log_group,
        registry_host=f"{account}.dkr.ecr.{region}.amazonaws.com",
    )


@dataclass(frozen=True)
class Built:
    env: EnvironmentConfig
    values: PlatformValues
    charts: dict[str, Chart]
    # chart id -> chart.to_json(), plus the cluster-level charts: "storage" and "app-namespace" (the erp Namespace)
    manifests: dict[str, list[Manifest]]

    @property
    def everything(self) -> list[Manifest]:
        return [m for chart in self.manifests.values() for m in chart]

    def chart(self, chart_id: str) -> list[Manifest]:
        return self.manifests[chart_id]


@cache
def build(env_name: str, tokens: bool = False) -> Built:
    env = load_environment(env_name)
    values = token_values(env) if tokens else fake_values(env)
    charts = build_charts(env, values)
    manifests = {key: chart.to_json() for key, chart in charts.items()}
    manifests["storage"] = build_storage_chart(env).to_json()
    manifests[APP_NAMESPACE_CHART] = build_app_namespace_chart(env).to_json()
    return Built(env=env, values=values, charts=charts, manifests=manifests)


@pytest.fixture(params=ENVIRONMENTS)
def built(request) -> Built:
    """Parametrises a test over dev and prod; each environment is built once per session."""
    return build(request.param)


@pytest.fixture
def tokenized() -> Built:
    return build("dev", tokens=True)

"""Observability tier: the log group Fluent Bit writes to, the alarm topic, alarms on every tier, traces, the dashboard.

It reads the Data and Api stacks' resources (metric dimensions only); no stack reads it, except
that Workloads is ordered after it so the log group exists before Fluent Bit writes to it.
The Container Insights metrics are addressed by the cluster's configured name, so it does not
wait for the Cluster stack.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.policies import log_removal, retention
from constructs_lib.observability.alarm_topic import AlarmTopic
from constructs_lib.observability.alarms import PlatformAlarms
from constructs_lib.observability.backup_alarms import backup_alarms
from constructs_lib.observability.chat import chat_channel
from constructs_lib.observability.dashboard import PlatformDashboard
from constructs_lib.observability.drift import drift_failed_alarm
from constructs_lib.observability.kafka_health import KafkaHealth
from constructs_lib.observability.log_metrics import ErrorLineMetrics
from constructs_lib.observability.metrics import cache_node_ids
from constructs_lib.observability.slo import ApiSlo
from constructs_lib.observability.tracing import TraceSampling
from constructs_lib.observability.watched import Watched


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        database: rds.IDatabaseInstance,
        cache_replication_group_id: str,
        http_api: apigw.IHttpApi,
        employee_function: lambda_.IFunction,
        load_balancer: elbv2.NetworkLoadBalancer,
        target_groups: Mapping[str, elbv2.NetworkTargetGroup],
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        name = config.resource_prefix
        # The ONE name Fluent Bit writes to and the error alarms read (config.application_log_group).
        self.application_log_group = logs.LogGroup(
            self,
            "ApplicationLogs",
            log_group_name=config.application_log_group,
            retention=retention(config.observability.log_retention_days),
            removal_policy=log_removal(config.production),
        )
        # Exposed for reuse (e.g. EventBridge rules); the pipeline keeps its own notification topic.
        self.alarm_topic = AlarmTopic(
            self,
            "AlarmTopic",
            topic_name=f"{name}-alarms",
            emails=config.observability.alarm_emails,
            production=config.production,
        )
        self.topic = self.alarm_topic.topic
        # Every alarm (and the drift job's report) on this topic also reaches the chat channel, if one is configured.
        self.chat = chat_channel(
            self, "Chat", name=f"{name}-alarms", channel=config.observability.chat, topics=[self.topic]
        )

        self.error_lines = ErrorLineMetrics(
            self,
            "ErrorLines",
            log_group=self.application_log_group,
            services=[service.name for service in config.services],
            metric_namespace=f"{config.project}/{config.name}/application",
        )
        watched = Watched(
            errors=self.error_lines,
            http_api=http_api,
            function=employee_function,
            load_balancer=load_balancer,
            target_groups=target_groups,
            database=database,
            cache_node_ids=cache_node_ids(cache_replication_group_id, config.cache.replicas),
        )
        self.alarms = PlatformAlarms(self, "Alarms", config=config, action=self.alarm_topic.action, watched=watched)
        # The API's SLO burn-rate alarms, on the Api stack's access-log group addressed by name (no export): that
        # group must exist first, so this stack deploys after the Api stack whatever else it reads from it.
        self.slo = ApiSlo(self, "Slo", config=config, action=self.alarm_topic.action)
        self.add_dependency(Stack.of(http_api), "SLO metric filters on the HTTP API's access-log group")
        # Kafka lag, replication, brokers and disk, on what the kafka-metrics collector writes (and its log group).
        self.kafka = KafkaHealth(self, "KafkaHealth", config=config, action=self.alarm_topic.action)
        # The drift job (Workloads stack) runs under a fixed name; its failures page from here, like every alarm.
        self.drift_failed = drift_failed_alarm(self, config, self.alarm_topic.action)
        # The restore drill (Backup stack) by its fixed name and metrics; AWS Backup's failed jobs by EventBridge.
        self.backup_alarms = backup_alarms(self, config, self.alarm_topic.action, self.topic)
        self.tracing = TraceSampling(
            self,
            "Tracing",
            name=name,
            services=[service.name for service in config.services],
            fixed_rate=config.observability.xray_sampling_rate,
            extra_services=[employee_function.function_name],
        )
        self.dashboard = PlatformDashboard(
            self,
            "Dashboard",
            config=config,
            alarms=[*self.alarms.alarms, self.drift_failed, *self.backup_alarms],
            watched=watched,
            slo=self.slo,
            kafka=self.kafka,
        )

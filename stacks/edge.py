"""Edge tier, in us-east-1: the frontend's bucket, the distribution (frontend + /api/*), its web ACL and alarms.

us-east-1 because CloudFront takes certificates only from ACM there, CLOUDFRONT-scope web ACLs live there, and
CloudFront and WAF publish their metrics there (alarms must be in the region of their metrics). It reads the Api
stack in the environment's region through weak cross-region references (Fn::GetStackOutput); with api.edge_only
it reads nothing: the API's origin domain is in config.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from constructs import Construct

from config.models import EnvironmentConfig
from constructs_lib.common.reference_fingerprint import fingerprint
from constructs_lib.edge.distribution import EdgeDistribution
from constructs_lib.edge.signals import EdgeSignals
from constructs_lib.edge.site_bucket import SiteBuckets
from constructs_lib.edge.waf import EdgeWebAcl
from constructs_lib.observability.alarm_topic import AlarmTopic
from constructs_lib.observability.chat import chat_channel

URL_OUTPUT = "Url"


class EdgeStack(Stack):
    def __init__(
        self, scope: Construct, id: str, *, config: EnvironmentConfig, http_api: apigw.IHttpApi, **kwargs
    ) -> None:
        super().__init__(scope, id, **kwargs)
        name = config.resource_prefix
        edge = config.edge
        self.buckets = SiteBuckets(
            self,
            "Buckets",
            log_days=edge.access_log_retention_days,
            noncurrent_version_days=edge.noncurrent_version_days,
        )
        self.web_acl = (
            EdgeWebAcl(
                self,
                "WebAcl",
                name=f"{name}-edge",
                rate_limit=edge.waf.rate_limit,
                count_only_rules=edge.waf.count_only_rules,
            )
            if edge.waf.enabled
            else None
        )
        if config.api.edge_only:
            # The API answers only at its own domain (execute-api is off): a name from config, no reference.
            api_domain = config.api.domain_name
            producers = []
        else:
            api_domain = f"{http_api.api_id}.execute-api.{config.region}.{self.url_suffix}"
            producers = [http_api]
        self.distribution = EdgeDistribution(
            self,
            "Site",
            name=name,
            config=edge,
            site=self.buckets.site,
            logs=self.buckets.logs,
            api_domain=api_domain,
            pool_region=config.region,
            web_acl_arn=self.web_acl.web_acl.attr_arn if self.web_acl else None,
            # A weak reference is re-read only when this resource changes: the producers' fingerprint does change
            # it whenever the HTTP API would be replaced (constructs_lib/common/reference_fingerprint.py).
            comment=f"{name}: frontend and /api/*" + (f" (api {fingerprint(producers)})" if producers else ""),
        )
        self.topic = AlarmTopic(
            self,
            "AlarmTopic",
            topic_name=f"{name}-edge-alarms",
            emails=config.observability.alarm_emails,
            production=config.production,
        )
        self.signals = EdgeSignals(
            self,
            "Signals",
            name=name,
            config=edge,
            distribution_id=self.distribution.distribution.distribution_id,
            web_acl_name=self.web_acl.name if self.web_acl else None,
            action=self.topic.action,
        )
        # The environment's chat channel, with a configuration of its own here (names are account-wide).
        self.chat = chat_channel(
            self, "Chat", name=f"{name}-edge-alarms", channel=config.observability.chat, topics=[self.topic.topic]
        )
        self.url = self.distribution.url
        # The pipeline's smoke test and `make frontend` (through the Frontend stack's parameters) read these.
        self.url_output = CfnOutput(
            self, URL_OUTPUT, value=self.url, description="The environment's address: frontend and /api/*"
        )
        CfnOutput(
            self,
            "DistributionDomainName",
            value=self.distribution.distribution.distribution_domain_name,
            description=f"CNAME/alias target for {edge.domain_name}" if edge.domain_name else "The edge's address",
        )
        CfnOutput(self, "DistributionId", value=self.distribution.distribution.distribution_id)
        CfnOutput(self, "SiteBucket", value=self.buckets.site.bucket_name)

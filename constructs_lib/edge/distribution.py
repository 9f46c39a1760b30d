"""The one public address of an environment: the frontend's files, and /api/* passed through to the HTTP API.

Same origin for both, so the browser's API calls are same-origin (no CORS preflight) and the frontend is built
with the distribution's address as its API base (tools/frontend.py).
- Frontend: a private bucket read through Origin Access Control; a CloudFront Function turns client routes into
  /index.html (spa_fallback.js). No distribution-wide error pages: those would turn an /api/* 404 or 403 into
  the app's HTML with a 200.
- /api/*: every method, nothing cached, every viewer header (Authorization included: allowed in an origin request
  policy only because nothing is cached), query strings and cookies passed on.
- Security headers on every response; TLS 1.2+ (with a custom domain: CloudFront's own *.cloudfront.net
  certificate keeps its fixed minimum, TLSv1).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.sections import EdgeConfig
from constructs_lib.common.nag import acknowledge

API_PATH_PATTERN = "/api/*"
SPA_FALLBACK = Path(__file__).with_name("spa_fallback.js")
HSTS_MAX_AGE = Duration.days(730)
# A little over the HTTP API's own 30 s integration timeout, so its 504 reaches the browser instead of CloudFront
# giving up first (and retrying a GET against a backend that is still working on the first one).
API_READ_TIMEOUT = Duration.seconds(35)


def content_security_policy(*, pool_region: str, extra_connect: list[str]) -> str:
    """Scripts and styles from the app's own origin only; XHR to its own origin (the API is /api/* there) and to
    Cognito's user-pool endpoint (sign-up and SRP sign-in); never framed."""
    connect = " ".join(["'self'", f"https://cognito-idp.{pool_region}.amazonaws.com", *extra_connect])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            # React and framer-motion set style attributes; the built CSS is a file of the same origin.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src {connect}",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
            "upgrade-insecure-requests",
        ]
    )


class EdgeDistribution(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        config: EdgeConfig,
        site: s3.IBucket,
        logs: s3.IBucket,
        api_domain: str,
        pool_region: str,
        web_acl_arn: str | None,
        comment: str,
    ) -> None:
        super().__init__(scope, id)
        public_origin = f"https://{config.domain_name}" if config.domain_name else None
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            response_headers_policy_name=f"{name}-security-headers",
            comment=f"{name}: HSTS, CSP, no framing, no sniffing",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(
                        pool_region=pool_region, extra_connect=[public_origin] if public_origin else []
                    ),
                    override=True,
                ),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override=True
                ),
            ),
        )
        # The frontend's files: what `make frontend` sets (Cache-Control) decides, from not cached (index.html) to a
        # year (hashed assets); compressed at the edge; nothing from the viewer in the cache key.
        self.site_cache = cloudfront.CachePolicy(
            self,
            "SiteCache",
            cache_policy_name=f"{name}-site",
            comment=f"{name}: the frontend's files, TTL from their Cache-Control",
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.days(1),
            max_ttl=Duration.days(365),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.none(),
        )
        self.spa_fallback = cloudfront.Function(
            self,
            "SpaFallback",
            function_name=f"{name}-spa-fallback",
            comment="Client routes answer /index.html; files are fetched as asked",
            code=cloudfront.FunctionCode.from_file(file_path=str(SPA_FALLBACK)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
        )
        api_origin = origins.HttpOrigin(
            api_domain,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            read_timeout=API_READ_TIMEOUT,
        )
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn)
            if config.certificate_arn
            else None
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=comment,
            default_root_object="index.html",
            domain_names=[config.domain_name] if config.domain_name else None,
            certificate=certificate,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if certificate else None,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass[config.price_class.replace("PriceClass_", "PRICE_CLASS_").upper()],
            enable_ipv6=True,
            web_acl_id=web_acl_arn,
            enable_logging=True,
            log_bucket=logs,
            log_file_prefix="cloudfront/",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(site),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=self.site_cache,
                response_headers_policy=self.headers,
                compress=True,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.spa_fallback, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            additional_behaviors={
                API_PATH_PATTERN: cloudfront.BehaviorOptions(
                    origin=api_origin,
                    # A redirect would turn a POST into a GET: plain http is refused instead.
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy=self.headers,
                    compress=True,
                )
            },
        )
        self.url = public_origin or f"https://{self.distribution.distribution_domain_name}"
        if web_acl_arn is None:
            acknowledge(
                self.distribution,
                "AwsSolutions-CFR2",
                "This environment's config runs its edge without a web ACL (edge.waf.enabled); prod requires one.",
            )
        if certificate is None:
            acknowledge(
                self.distribution,
                "AwsSolutions-CFR4",
                "No custom domain here: CloudFront's default certificate fixes TLSv1 as minimum; prod needs a domain.",
            )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "The ERP's users are not limited by country; the per-IP rate rule and managed rules guard the edge.",
        )

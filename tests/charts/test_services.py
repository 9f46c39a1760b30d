"""Each microservice: wired to the data stores, Kafka and X-Ray, autoscaled, and bound to its NLB target group."""

from __future__ import annotations

import dataclasses

import pytest

from k8s_charts import build_charts, names
from k8s_charts.services import pinned_image
from k8s_charts.testing import find, selector_matches

from .conftest import build, fake_values


def container_env(deployment: dict) -> dict[str, dict]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_each_service_has_its_objects(built):
    services = built.chart("services")
    for service in built.env.services:
        for kind in ("ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler", "TargetGroupBinding"):
            assert len(find(services, kind, service.name)) == 1, (service.name, kind)


def test_target_group_binding_is_applied_before_its_pods(built):
    # The LB controller's webhook adds its readiness gate only to pods created after the binding exists.
    order = [(m["kind"], m["metadata"]["name"]) for m in built.chart("services")]
    for service in built.env.services:
        assert order.index(("TargetGroupBinding", service.name)) < order.index(("Deployment", service.name))


def test_deployment_follows_config(built):
    for service in built.env.services:
        deployment = find(built.chart("services"), "Deployment", service.name)[0]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert deployment["spec"]["replicas"] == service.replicas
        assert container["image"] == built.values.images[service.name]
        assert container["resources"] == {
            "requests": {"cpu": service.cpu_request, "memory": service.memory_request},
            "limits": {"cpu": service.cpu_limit, "memory": service.memory_limit},
        }
        assert [p["containerPort"] for p in container["ports"]] == [service.port]
        # Readiness may include the database; liveness must not (an outage must not restart every pod).
        assert container["readinessProbe"]["httpGet"]["path"] == service.health_path
        assert container["livenessProbe"]["httpGet"]["path"] == service.liveness_path != service.health_path
        assert container["startupProbe"]["httpGet"]["path"] == service.liveness_path
        assert pod["serviceAccountName"] == names.service_account(service.name)
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_environment_wiring(built):
    env, values = built.env, built.values
    for service in env.services:
        variables = container_env(find(built.chart("services"), "Deployment", service.name)[0])
        plain = {k: v["value"] for k, v in variables.items() if "value" in v}
        assert plain["SERVER_PORT"] == str(service.port)
        assert (
            plain["SPRING_DATASOURCE_URL"]
            == f"jdbc:mysql://{values.db_host}:{values.db_port}/{values.db_name}?sslMode=REQUIRED"
        )
        assert (plain["SPRING_DATA_REDIS_HOST"], plain["SPRING_DATA_REDIS_PORT"]) == (
            values.cache_host,
            values.cache_port,
        )
        assert plain["SPRING_DATA_REDIS_SSL_ENABLED"] == "true"
        assert plain["SPRING_KAFKA_BOOTSTRAP_SERVERS"] == f"kafka.{env.namespace}.svc.cluster.local:9092"
        assert plain["APP_KAFKA_TOPIC"] == "approval-requests"
        assert plain["SPRING_KAFKA_CONSUMER_GROUP_ID"] == "approval-processing-group"
        assert plain["AWS_REGION"] == values.region
        for key, value in service.env.items():
            assert plain[key] == value


def test_credentials_come_only_from_the_external_secrets(built):
    """Every secretKeyRef names a Secret and key an ExternalSecret creates; no credential is a literal."""
    created = {
        (es["spec"]["target"]["name"], item["secretKey"])
        for es in find(built.chart("secrets"), "ExternalSecret")
        for item in es["spec"]["data"]
    }
    for deployment in find(built.chart("services"), "Deployment"):
        variables = container_env(deployment)
        for name in ("SPRING_DATASOURCE_USERNAME", "SPRING_DATASOURCE_PASSWORD", "SPRING_DATA_REDIS_PASSWORD"):
            ref = variables[name]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) in created, name
        assert not [k for k, v in variables.items() if "PASSWORD" in k and "value" in v]


def test_xray_address_is_the_daemon_services_dns_name_and_port(built):
    (daemon_service,) = find(built.chart("tracing"), "Service", names.XRAY_DAEMON)
    namespace = daemon_service["metadata"]["namespace"]
    ports = {(p["port"], p.get("protocol", "TCP")) for p in daemon_service["spec"]["ports"]}
    assert ports == {(2000, "UDP"), (2000, "TCP")}
    expected = f"{daemon_service['metadata']['name']}.{namespace}.svc.cluster.local:2000"
    assert expected == f"xray-daemon.erp-{built.env.name}.svc.cluster.local:2000" == names.xray_address(built.env)
    for deployment in find(built.chart("services"), "Deployment"):
        assert container_env(deployment)["AWS_XRAY_DAEMON_ADDRESS"]["value"] == expected


def test_service_and_hpa(built):
    for service in built.env.services:
        deployment = find(built.chart("services"), "Deployment", service.name)[0]
        svc = find(built.chart("services"), "Service", service.name)[0]["spec"]
        assert svc["type"] == "ClusterIP" and [p["port"] for p in svc["ports"]] == [service.port]
        assert selector_matches({"matchLabels": svc["selector"]}, deployment["spec"]["template"]["metadata"]["labels"])
        hpa = find(built.chart("services"), "HorizontalPodAutoscaler", service.name)[0]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (service.min_replicas, service.max_replicas)
        (metric,) = hpa["metrics"]
        assert metric["resource"] == {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": service.cpu_target_pct},
        }


def test_target_group_binding_carries_the_values_passed_in(built):
    for service in built.env.services:
        tgb = find(built.chart("services"), "TargetGroupBinding", service.name)[0]["spec"]
        assert tgb["targetGroupARN"] == built.values.target_group_arns[service.name]
        assert tgb["targetType"] == "ip"
        assert tgb["serviceRef"] == {"name": service.name, "port": service.port}
        (rule,) = tgb["networking"]["ingress"]
        assert rule["from"] == [{"securityGroup": {"groupID": built.values.nlb_security_group_id}}]
        assert rule["ports"] == [{"port": service.port, "protocol": "TCP"}]


def test_cdk_tokens_flow_through_unchanged(tokenized):
    """The CDK side passes unresolved tokens: nothing may parse, split or drop them."""
    values = tokenized.values
    services = tokenized.chart("services")
    for service in tokenized.env.services:
        assert (
            find(services, "TargetGroupBinding", service.name)[0]["spec"]["targetGroupARN"]
            == (values.target_group_arns[service.name])
        )
        deployment = find(services, "Deployment", service.name)[0]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == values.images[service.name]
        url = container_env(deployment)["SPRING_DATASOURCE_URL"]["value"]
        assert url == f"jdbc:mysql://{values.db_host}:{values.db_port}/{values.db_name}?sslMode=REQUIRED"
    store = find(tokenized.chart("secrets"), "ClusterSecretStore")[0]
    assert store["spec"]["provider"]["aws"]["region"] == values.region
    conf = find(tokenized.chart("logging"), "ConfigMap")[0]["data"]["fluent-bit.conf"]
    assert f"log_group_name      {values.log_group_name}\n" in conf


# --- what the charts refuse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image", ["erp/svc", "erp/svc:latest", "${Token[TOKEN.1]}:latest", "registry.example:5000/erp/svc"]
)
def test_unpinned_images_are_refused(image):
    with pytest.raises(ValueError, match="not pinned"):
        pinned_image(image)


@pytest.mark.parametrize("image", ["${Token[TOKEN.1]}", "${Token[TOKEN.1]}:1.0.0", "erp/svc@sha256:" + "0" * 64])
def test_tokens_tags_and_digests_are_accepted(image):
    assert pinned_image(image) == image


def test_missing_per_service_values_are_refused():
    env = build("dev").env
    values = fake_values(env)
    first = env.services[0].name
    partial = dataclasses.replace(values, images={k: v for k, v in values.images.items() if k != first})
    with pytest.raises(ValueError, match=f"images has no entry for: {first}"):
        build_charts(env, partial)


def test_config_env_cannot_override_the_platform_wiring():
    env = build("dev").env
    first = env.services[0].model_copy(update={"env": {"SPRING_DATASOURCE_PASSWORD": "literal"}})
    broken = env.model_copy(update={"services": [first, *env.services[1:]]})
    with pytest.raises(ValueError, match="SPRING_DATASOURCE_PASSWORD are set by the platform"):
        build_charts(broken, fake_values(env))

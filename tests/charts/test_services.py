"""Each microservice: wired to the data stores, Kafka and X-Ray, autoscaled, and bound to its NLB target group."""

from __future__ import annotations

import dataclasses

import pytest

from k8s_charts import build_charts, names
from k8s_charts.services import pinned_image
from tests.support.charts import find, selector_matches

from .conftest import build, fake_values


def container_env(deployment: dict) -> dict[str, dict]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def binding_name(service) -> str:
    return f"{service.name}-{service.port}"


def test_each_service_has_its_objects(built):
    services = built.chart("services")
    for service in built.env.services:
        for kind in ("ServiceAccount", "Deployment", "Service"):
            assert len(find(services, kind, service.name)) == 1, (service.name, kind)
        # Named with the port: a new port is a new target group and so a new binding (test_port_change.py).
        assert len(find(services, "TargetGroupBinding", binding_name(service))) == 1, service.name
        # Only a service that may scale gets an HPA (a singleton never does).
        assert len(find(services, "HorizontalPodAutoscaler", service.name)) == int(service.autoscaled), service.name


def test_target_group_binding_is_applied_before_its_pods(built):
    # The LB controller's webhook adds its readiness gate only to pods created after the binding exists.
    order = [(m["kind"], m["metadata"]["name"]) for m in built.chart("services")]
    for service in built.env.services:
        assert order.index(("TargetGroupBinding", binding_name(service))) < order.index(("Deployment", service.name))


def test_deployment_follows_config(built):
    for service in built.env.services:
        deployment = find(built.chart("services"), "Deployment", service.name)[0]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        # An autoscaled service's count is its HPA's (test_an_hpa_owns_the_replica_count_of_its_deployment).
        assert deployment["spec"].get("replicas") == (None if service.autoscaled else service.replicas)
        assert container["image"] == built.values.images[service.name]
        assert container["resources"] == {
            "requests": {"cpu": service.cpu_request, "memory": service.memory_request},
            "limits": {"cpu": service.cpu_limit, "memory": service.memory_limit},
        }
        assert [p["containerPort"] for p in container["ports"]] == [service.port]
        # One check from config for every probe (and the NLB): TCP, or GET on a path the service really has.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if service.health.type == "http":
                assert container[probe]["httpGet"] == {"path": service.health.path, "port": "http"}
            else:
                assert container[probe]["tcpSocket"] == {"port": "http"} and "httpGet" not in container[probe]
        assert pod["serviceAccountName"] == names.service_account(service.name)
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


EXPECTED_ENV = {
    # Exactly what each service's code reads (../shared/erp-services.md sections 3 and 6); nothing else.
    "approval-request-service": {
        "SERVER_PORT",
        "MONGODB_URI",
        "SPRING_KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPICS_APPROVAL_REQUESTS",
        "KAFKA_TOPICS_APPROVAL_RESULTS",
        "AWS_XRAY_DAEMON_ADDRESS",
        "AWS_XRAY_TRACING_NAME",
        "EMPLOYEE_SERVICE_URL",
        "NOTIFICATION_SERVICE_URL",
    },
    "approval-processing-service": {
        "SERVER_PORT",
        "SPRING_KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPICS_APPROVAL_REQUESTS",
        "KAFKA_TOPICS_APPROVAL_RESULTS",
    },
    "notification-service": {
        "SERVER_PORT",
        "REDIS_HOST",
        "REDIS_PORT",
        "AWS_XRAY_DAEMON_ADDRESS",
        "AWS_XRAY_TRACING_NAME",
    },
}
# With TLS + AUTH on the cache (prod), the cache user also gets Boot's password/SSL properties.
SECURE_CACHE_ENV = {"SPRING_DATA_REDIS_PASSWORD", "SPRING_DATA_REDIS_SSL_ENABLED"}


def test_environment_wiring(built):
    env, values = built.env, built.values
    for service in env.services:
        variables = container_env(find(built.chart("services"), "Deployment", service.name)[0])
        expected = set(EXPECTED_ENV[service.name]) | set(service.env)
        if "cache" in service.uses and not env.cache.allow_plaintext_clients:
            expected |= SECURE_CACHE_ENV
        assert set(variables) == expected, service.name
        plain = {k: v["value"] for k, v in variables.items() if "value" in v}
        assert plain["SERVER_PORT"] == str(service.port)
        if "kafka" in service.uses:
            assert plain["SPRING_KAFKA_BOOTSTRAP_SERVERS"] == f"kafka.{env.namespace}.svc.cluster.local:9092"
            assert plain["KAFKA_TOPICS_APPROVAL_REQUESTS"] == "approval-requests"
            assert plain["KAFKA_TOPICS_APPROVAL_RESULTS"] == "approval-results"
        if "cache" in service.uses:
            assert (plain["REDIS_HOST"], plain["REDIS_PORT"]) == (values.cache_host, values.cache_port)
        for key, value in service.env.items():
            assert plain[key] == value
    request = container_env(find(built.chart("services"), "Deployment", "approval-request-service")[0])
    assert (
        request["EMPLOYEE_SERVICE_URL"]["value"]
        == f"http://employee-service.{env.namespace}.svc.cluster.local:8081/api"
    )
    assert request["NOTIFICATION_SERVICE_URL"]["value"] == (
        f"http://notification-service.{env.namespace}.svc.cluster.local:8084"
    )


def test_nobody_gets_the_old_unread_variables(built):
    for deployment in find(built.chart("services"), "Deployment"):
        variables = set(container_env(deployment))
        assert not variables & {"SPRING_KAFKA_CONSUMER_GROUP_ID", "APP_KAFKA_TOPIC", "AWS_REGION"}
        assert not any(v.startswith("SPRING_DATASOURCE_") for v in variables)


def test_credentials_come_only_from_the_service_own_external_secret(built):
    """Every secretKeyRef names the service's own Secret and a key its ExternalSecret creates; no literal."""
    created = {
        (es["spec"]["target"]["name"], item["secretKey"])
        for es in find(built.chart("secrets"), "ExternalSecret")
        for item in es["spec"]["data"]
    }
    for deployment in find(built.chart("services"), "Deployment"):
        name = deployment["metadata"]["name"]
        for var in container_env(deployment).values():
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == names.service_secret(name)
                assert (ref["name"], ref["key"]) in created, (name, var["name"])
        assert not [k for k, v in container_env(deployment).items() if "PASSWORD" in k and "value" in v]


def test_mongodb_placeholder_stops_the_pod_with_a_clear_reason(built):
    deployment = find(built.chart("services"), "Deployment", "approval-request-service")[0]
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][-1]
    assert f"erp/{built.env.name}/mongodb" in script and "put-secret-value" in script and "exit 1" in script
    assert [e["name"] for e in init["env"]] == ["MONGODB_URI"]
    for other in ("approval-processing-service", "notification-service"):
        spec = find(built.chart("services"), "Deployment", other)[0]["spec"]["template"]["spec"]
        assert "initContainers" not in spec


def test_mongodb_check_script_really_refuses_the_placeholder(tmp_path):
    """Run the init container's script: only a mongodb:// or mongodb+srv:// URI passes."""
    import subprocess

    from k8s_charts.services import MONGODB_CHECK

    script = MONGODB_CHECK.format(secret="erp/dev/mongodb").replace("/dev/termination-log", str(tmp_path / "t"))
    for uri, rc in (("", 1), ("unset", 1), ("mongodb+srv://u:p@c.example.net/erp", 0), ("mongodb://m:27017/erp", 0)):
        done = subprocess.run(["sh", "-c", script], env={"MONGODB_URI": uri}, capture_output=True, text=True)
        assert done.returncode == rc, uri
        if rc:
            assert "erp/dev/mongodb" in done.stderr


def test_singleton_runs_one_pod_without_hpa_and_recreates(built):
    for service in built.env.services:
        if not service.singleton:
            continue
        deployment = find(built.chart("services"), "Deployment", service.name)[0]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert not find(built.chart("services"), "HorizontalPodAutoscaler", service.name)
        # No budget at all: a one-pod budget of 0 would block node drains forever.
        assert not find(built.chart("services"), "PodDisruptionBudget", service.name)


def test_amd64_images_run_on_x86_nodes_only(built):
    for service in built.env.services:
        pod = find(built.chart("services"), "Deployment", service.name)[0]["spec"]["template"]["spec"]
        assert pod["nodeSelector"]["kubernetes.io/arch"] == "amd64" == service.image.architectures[0]
    groups = [g for g in built.env.cluster.node_groups if g.labels.get("workload") == "apps"]
    assert any(not g.arm64 for g in groups)


def test_xray_address_is_the_daemon_services_dns_name_and_port(built):
    """Unchanged since the X-Ray daemon: the collector's Service kept its name and port (test_collector.py)."""
    (daemon_service,) = find(built.chart("tracing"), "Service", names.XRAY_SERVICE)
    namespace = daemon_service["metadata"]["namespace"]
    ports = {(p["port"], p.get("protocol", "TCP")) for p in daemon_service["spec"]["ports"]}
    assert {(2000, "UDP"), (2000, "TCP")} <= ports
    expected = f"{daemon_service['metadata']['name']}.{namespace}.svc.cluster.local:2000"
    assert expected == f"xray-daemon.erp-{built.env.name}.svc.cluster.local:2000" == names.xray_address(built.env)
    for service in built.env.services:
        variables = container_env(find(built.chart("services"), "Deployment", service.name)[0])
        if "xray" in service.uses:
            assert variables["AWS_XRAY_DAEMON_ADDRESS"]["value"] == expected
        else:
            assert "AWS_XRAY_DAEMON_ADDRESS" not in variables


def test_service_and_hpa(built):
    for service in built.env.services:
        deployment = find(built.chart("services"), "Deployment", service.name)[0]
        svc = find(built.chart("services"), "Service", service.name)[0]["spec"]
        assert svc["type"] == "ClusterIP" and [p["port"] for p in svc["ports"]] == [service.port]
        assert selector_matches({"matchLabels": svc["selector"]}, deployment["spec"]["template"]["metadata"]["labels"])
        if not service.autoscaled:
            continue
        hpa = find(built.chart("services"), "HorizontalPodAutoscaler", service.name)[0]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (service.min_replicas, service.max_replicas)
        (metric,) = hpa["metrics"]
        assert metric["resource"] == {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": service.cpu_target_pct},
        }


def test_an_hpa_owns_the_replica_count_of_its_deployment(built):
    """Issue 18 item 14: `kubectl apply` of a Deployment that carries `spec.replicas` resets the count its HPA
    chose on every deploy. Every HPA-managed Deployment the charts render (any chart, any service) leaves
    `replicas` out; a Deployment without an HPA (a singleton, min == max) keeps its configured count."""
    rendered = built.everything
    managed = {
        (h["metadata"]["namespace"], h["spec"]["scaleTargetRef"]["name"])
        for h in find(rendered, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    }
    assert {(built.env.namespace, s.name) for s in built.env.services if s.autoscaled} <= managed  # never vacuous
    for deployment in find(rendered, "Deployment"):
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        if key in managed:
            assert "replicas" not in deployment["spec"], key
        else:
            assert deployment["spec"]["replicas"] >= 1, key
    for service in built.env.services:
        if not service.autoscaled:
            assert find(rendered, "Deployment", service.name)[0]["spec"]["replicas"] == service.replicas


def test_target_group_binding_carries_the_values_passed_in(built):
    for service in built.env.services:
        tgb = find(built.chart("services"), "TargetGroupBinding", binding_name(service))[0]["spec"]
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
            find(services, "TargetGroupBinding", binding_name(service))[0]["spec"]["targetGroupARN"]
            == (values.target_group_arns[service.name])
        )
        deployment = find(services, "Deployment", service.name)[0]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == values.images[service.name]
        if "cache" in service.uses:
            assert container_env(deployment)["REDIS_HOST"]["value"] == values.cache_host
    (proxy,) = find(services, "Deployment", names.EMPLOYEE_PROXY)
    assert values.employee_function_url_host in proxy["spec"]["template"]["spec"]["containers"][0]["args"]
    (mongo,) = [
        item
        for es in find(tokenized.chart("secrets"), "ExternalSecret")
        for item in es["spec"]["data"]
        if item["secretKey"] == names.MONGODB_URI_KEY
    ]
    assert mongo["remoteRef"] == {"key": values.mongodb_secret_arn, "property": "uri"}
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
    first = env.services[0].model_copy(update={"env": {"MONGODB_URI": "mongodb://literal"}})
    broken = env.model_copy(update={"services": [first, *env.services[1:]]})
    with pytest.raises(ValueError, match="MONGODB_URI are set by the platform"):
        build_charts(broken, fake_values(env))


def test_a_mysql_user_gets_its_own_secret_or_synth_fails():
    """The hook for per-consumer MySQL users: a service declaring mysql needs erp/{env}/mysql/<service>."""
    env = build("dev").env
    first = env.services[0].model_copy(update={"uses": [*env.services[0].uses, "mysql"]})
    with_mysql = env.model_copy(update={"services": [first, *env.services[1:]]})
    with pytest.raises(ValueError, match=f"mysql_secret_arns has no entry for it.*mysql/{first.name}"):
        build_charts(with_mysql, fake_values(env))
    arn = "arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:erp/dev/mysql/x-AbCdEf"
    charts = build_charts(with_mysql, dataclasses.replace(fake_values(env), mysql_secret_arns={first.name: arn}))
    variables = container_env(find(charts["services"].to_json(), "Deployment", first.name)[0])
    assert {"SPRING_DATASOURCE_URL", "SPRING_DATASOURCE_USERNAME", "SPRING_DATASOURCE_PASSWORD"} <= set(variables)
    (secret,) = find(charts["secrets"].to_json(), "ExternalSecret", names.service_secret(first.name))
    assert {d["remoteRef"]["key"] for d in secret["spec"]["data"] if d["secretKey"].startswith("mysql")} == {arn}

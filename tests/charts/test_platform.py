"""The contract with the CDK side: chart ids and order, one App per chart, secrets, logging, tracing, storage."""

from __future__ import annotations

import re

from k8s_charts import names
from k8s_charts.addon_policies import ADDON_PODS
from k8s_charts.logging import IMAGE as FLUENT_BIT_IMAGE
from k8s_charts.manifests import INVENTORY_PREFIX
from k8s_charts.tracing import IMAGE as COLLECTOR_IMAGE
from tests.support.charts import find

from .conftest import build


def test_chart_ids_in_deployment_order(built):
    # Each id is the construct id of its chart's manifest: never renamed (tests/infra/test_workloads.py pins them).
    assert list(built.charts) == ["addon-policies", "namespace", "secrets", "kafka", "services", "logging", "tracing"]


def test_each_chart_has_its_own_app(built):
    apps = {id(chart.node.scope) for chart in built.charts.values()}
    assert len(apps) == len(built.charts)


def test_namespaced_objects_land_in_the_erp_or_logging_namespace(built):
    for chart_id, manifests in built.manifests.items():
        for m in manifests:
            namespace = m["metadata"].get("namespace")
            if m["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding", "ClusterSecretStore", "StorageClass"):
                assert namespace is None, (chart_id, m["kind"])
            elif m["metadata"]["name"].startswith(INVENTORY_PREFIX):
                assert namespace == built.env.namespace  # each chart's inventory (k8s_charts/manifests.py)
            elif chart_id == "addon-policies":
                assert namespace in {pod.namespace for pod in ADDON_PODS}, m["metadata"]["name"]
            elif chart_id == "logging":
                assert namespace == names.LOGGING_NAMESPACE
            else:
                assert namespace == built.env.namespace, (chart_id, m["kind"], m["metadata"]["name"])


def test_cluster_secret_store_uses_the_controllers_pod_identity(built):
    (store,) = find(built.chart("secrets"), "ClusterSecretStore")
    aws = store["spec"]["provider"]["aws"]
    assert aws == {"service": "SecretsManager", "region": built.values.region}  # no auth block, no static keys
    assert store["metadata"]["name"] == names.CLUSTER_SECRET_STORE
    assert store["spec"]["conditions"] == [{"namespaces": [built.env.namespace]}]


def test_external_secrets_one_per_service_with_only_what_it_uses(built):
    """No shared bundle: approval-request-service alone gets the MongoDB URI; the cache token only where the
    cache has AUTH (prod) and only for its user; nobody gets the RDS master secret."""
    secrets = {es["metadata"]["name"]: es["spec"] for es in find(built.chart("secrets"), "ExternalSecret")}
    for spec in secrets.values():
        assert spec["refreshInterval"]
        assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": names.CLUSTER_SECRET_STORE}
    keys = {name: {d["secretKey"]: d["remoteRef"] for d in spec["data"]} for name, spec in secrets.items()}
    request = keys.pop(names.service_secret("approval-request-service"))
    assert request == {names.MONGODB_URI_KEY: {"key": built.values.mongodb_secret_arn, "property": "uri"}}
    if built.env.cache.allow_plaintext_clients:
        assert keys == {}
    else:
        assert keys == {
            names.service_secret("notification-service"): {
                names.CACHE_AUTH_TOKEN_KEY: {"key": built.values.cache_secret_arn, "property": "authToken"}
            }
        }


def fluent_bit_sections(conf: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for line in conf.splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line.strip()):
            sections.append((match[1], {}))
        elif line.strip():
            key, value = line.split(None, 1)
            sections[-1][1][key] = value.strip()
    return sections


def test_fluent_bit_ships_the_erp_namespace_to_the_one_log_group(built):
    (config_map,) = [m for m in find(built.chart("logging"), "ConfigMap") if "fluent-bit.conf" in m["data"]]
    sections = fluent_bit_sections(config_map["data"]["fluent-bit.conf"])
    (tail,) = [s for kind, s in sections if kind == "INPUT"]
    (output,) = [s for kind, s in sections if kind == "OUTPUT"]
    assert tail["Path"] == f"/var/log/containers/*_{built.env.namespace}_*.log"
    assert output["Name"] == "cloudwatch_logs"
    assert output["log_group_name"] == built.values.log_group_name == built.env.application_log_group
    assert output["log_group_name"] == f"/aws/eks/erp-{built.env.name}/application"
    assert output["auto_create_group"] == "false"
    assert output["log_stream_prefix"]
    assert any(kind == "FILTER" and s["Name"] == "kubernetes" for kind, s in sections)


def test_fluent_bit_rolls_when_its_config_changes():
    def annotation(env_name: str) -> str:
        (daemonset,) = find(build(env_name).chart("logging"), "DaemonSet", names.FLUENT_BIT)
        return daemonset["spec"]["template"]["metadata"]["annotations"]["erp.io/config-sha256"]

    assert annotation("dev") != annotation("prod")  # their configs differ in namespace and log group


def test_fluent_bit_reads_the_host_read_only_except_its_position_db(built):
    (daemonset,) = find(built.chart("logging"), "DaemonSet", names.FLUENT_BIT)
    pod = daemonset["spec"]["template"]["spec"]
    host_volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    (container,) = pod["containers"]
    writable = {m["name"] for m in container["volumeMounts"] if m["name"] in host_volumes and not m.get("readOnly")}
    assert {host_volumes[name] for name in writable} == {"/var/fluent-bit/state"}
    conf = find(built.chart("logging"), "ConfigMap")[0]["data"]["fluent-bit.conf"]
    assert "DB                  /var/fluent-bit/state/" in conf
    assert pod["serviceAccountName"] == names.FLUENT_BIT and pod["automountServiceAccountToken"] is True
    rules = find(built.chart("logging"), "ClusterRole")[0]["rules"]
    assert {r for rule in rules for r in rule["resources"]} == {"pods", "namespaces"}
    assert {v for rule in rules for v in rule["verbs"]} == {"get", "list", "watch"}


def test_images_of_the_agents_are_pinned_releases():
    assert FLUENT_BIT_IMAGE.path == "aws-observability/aws-for-fluent-bit"
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.\d+)?", FLUENT_BIT_IMAGE.tag)
    assert COLLECTOR_IMAGE.path == "aws-observability/aws-otel-collector"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", COLLECTOR_IMAGE.tag)


def test_storage_class_is_the_encrypted_gp3_default():
    (storage_class,) = build("prod").chart("storage")
    assert storage_class["kind"] == "StorageClass" and storage_class["metadata"]["name"] == names.STORAGE_CLASS
    assert storage_class["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    assert storage_class["parameters"]["type"] == "gp3" and storage_class["parameters"]["encrypted"] == "true"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["allowVolumeExpansion"] is True and storage_class["reclaimPolicy"] == "Retain"


def test_pod_identity_service_accounts_exist_in_the_charts(built):
    accounts = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in find(built.everything, "ServiceAccount")}
    wanted = names.pod_identity_service_accounts(built.env)
    eso = wanted.pop("external-secrets")
    assert eso == (names.EXTERNAL_SECRETS_NAMESPACE, names.EXTERNAL_SECRETS_SERVICE_ACCOUNT)  # installed by Helm
    assert set(wanted.values()) <= accounts

"""The daily drift check (issue 20, item 4): CloudFormation drift of every stack, orphans in the cluster, one
message to the alarm topic when something is wrong and none when nothing is.

SNS is moto's (the message is read back as the topic received it). moto 5.2.5 has none of CloudFormation's drift
APIs (DetectStackDrift, DescribeStackDriftDetectionStatus, DescribeStackResourceDrifts), so those three calls are
stubbed with botocore's Stubber, one client per region: a stack detected in the wrong region is an unexpected
call. The Kubernetes API is tests/support/fake_kube.py, which filters by label selector like the API server does.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools import Metrics
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from tests.handlers.conftest import load_function
from tests.support.aws import use_fake_credentials
from tests.support.fake_kube import FakeKube, ca_data, kube_object

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "drift_check"
app = load_function(HANDLER_DIR).app  # imported as Lambda would (tests/handlers/conftest.py)

REGION, EDGE_REGION = "ap-northeast-2", "us-east-1"
STACKS = [["erp-dev-network", REGION], ["erp-dev-edge", EDGE_REGION]]
ENDPOINT = "https://0123456789ABCDEF.gr7.ap-northeast-2.eks.amazonaws.com"
LABELS = {"app.kubernetes.io/managed-by": "cdk8s", "app.kubernetes.io/part-of": "erp"}
SELECTOR = ",".join(f"{k}={v}" for k, v in sorted(LABELS.items()))
KINDS = [
    "v1/ConfigMap",
    "v1/Service",
    "apps/v1/Deployment",
    "networking.k8s.io/v1/NetworkPolicy",
    "elbv2.k8s.aws/v1beta1/TargetGroupBinding",
]
INVENTORY = {
    "platform-manifest-services": [
        "Deployment erp-dev/notification-service",
        "Service erp-dev/notification-service",
        "NetworkPolicy erp-dev/allow-notification-service",
        "TargetGroupBinding erp-dev/notification-service",
    ],
    "platform-manifest-logging": ["ConfigMap logging/fluent-bit-config", "NetworkPolicy logging/default-deny-all"],
}
NOW = datetime.datetime(2026, 12, 5, 6, 0, tzinfo=datetime.UTC)


# ---- the fake Kubernetes API ------------------------------------------------------------------------------------


def k8s_object(identity: str, *, labels: dict | None = None, owned: bool = False) -> dict:
    """An object from "Kind namespace/name", with the platform's labels unless told otherwise."""
    kind, where = identity.split(" ")
    namespace, name = where.split("/")
    owner = {"ownerReferences": [{"kind": "ExternalSecret", "name": name, "uid": "1"}]} if owned else {}
    return kube_object(kind, namespace, name, labels=LABELS if labels is None else labels, metadata=owner)


def inventory_configmap(name: str, objects: list[str]) -> dict:
    return {**k8s_object(f"ConfigMap erp-dev/{name}"), "data": {"chart": name, "objects": "\n".join(objects) + "\n"}}


def deployed() -> list[dict]:
    """The cluster exactly as the inventories say (plus what every namespace has that the platform did not make)."""
    objects = [inventory_configmap(name, listed) for name, listed in INVENTORY.items()]
    objects += [k8s_object(identity) for listed in INVENTORY.values() for identity in listed]
    objects.append(k8s_object("ConfigMap erp-dev/kube-root-ca.crt", labels={}))
    return objects


def cluster(objects: list[dict], forbidden: frozenset[str] = frozenset()) -> FakeKube:
    """The API server holding `objects`; `forbidden` plurals answer 403 (outside the function's access)."""
    return FakeKube(ENDPOINT, objects, forbidden=forbidden)


# ---- CloudFormation (Stubber) and SNS (moto) --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def stack_id(name: str, region: str) -> str:
    return f"arn:aws:cloudformation:{region}:{DEFAULT_ACCOUNT_ID}:stack/{name}/1a2b3c4d"


class Drift:
    """The drift APIs of one region, stubbed; `expect_*` queue what CloudFormation answers, in call order."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.client = boto3.client("cloudformation", region_name=region)
        self.stub = Stubber(self.client)

    def started(self, stack: str) -> Drift:
        self.stub.add_response("detect_stack_drift", {"StackDriftDetectionId": f"{stack}-run"}, {"StackName": stack})
        return self

    def refused(self, stack: str, message: str) -> Drift:
        self.stub.add_client_error(
            "detect_stack_drift", "ValidationError", message, 400, expected_params={"StackName": stack}
        )
        return self

    def status(self, stack: str, detection: str, drift: str | None = None, reason: str | None = None) -> Drift:
        response = {
            "StackId": stack_id(stack, self.region),
            "StackDriftDetectionId": f"{stack}-run",
            "DetectionStatus": detection,
            "Timestamp": NOW,
            **({"StackDriftStatus": drift} if drift else {}),
            **({"DetectionStatusReason": reason} if reason else {}),
        }
        self.stub.add_response(
            "describe_stack_drift_detection_status", response, {"StackDriftDetectionId": f"{stack}-run"}
        )
        return self

    def drifts(self, stack: str, resources: list[dict]) -> Drift:
        for resource in resources:
            resource.setdefault("StackId", stack_id(stack, self.region))
            resource.setdefault("Timestamp", NOW)
        self.stub.add_response(
            "describe_stack_resource_drifts",
            {"StackResourceDrifts": resources},
            {
                "StackName": stack,
                "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"],
                "MaxResults": 100,
            },
        )
        return self


def security_group_drift(logical_id: str = "ApiSecurityGroup", paths: tuple[str, ...] = ("/SecurityGroupIngress/1",)):
    return {
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": "sg-0123456789abcdef0",
        "ResourceType": "AWS::EC2::SecurityGroup",
        "StackResourceDriftStatus": "MODIFIED",
        "PropertyDifferences": [
            {
                "PropertyPath": path,
                "ExpectedValue": "",
                "ActualValue": '{"CidrIp":"0.0.0.0/0"}',
                "DifferenceType": "ADD",
            }
            for path in paths
        ],
    }


def in_sync(drift: Drift, stack: str) -> Drift:
    return drift.started(stack).status(stack, "DETECTION_COMPLETE", "IN_SYNC")


@pytest.fixture
def aws(monkeypatch):
    use_fake_credentials(monkeypatch, REGION)
    for name, value in {
        "AWS_REGION": REGION,
        "ENVIRONMENT": "erp-dev",
        "STACKS": json.dumps(STACKS),
        "MAX_WAIT_SECONDS": "120",
        "CLUSTER_NAME": "erp-dev",
        "ENDPOINT": ENDPOINT,
        "CA_DATA": ca_data(),
        "INVENTORY_NAMESPACE": "erp-dev",
        "INVENTORY": json.dumps(list(INVENTORY)),
        "NAMESPACES": json.dumps(["erp-dev", "logging"]),
        "KINDS": json.dumps(KINDS),
        "LABEL_SELECTOR": SELECTOR,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app, "metrics", Metrics(namespace="erp/dev/drift", service="drift-check"))
    with mock_aws():
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="erp-dev-alarms")["TopicArn"]
        monkeypatch.setenv("TOPIC_ARN", topic)
        yield topic


def run(topic: str, regions: dict[str, Drift], kube: FakeKube, capsys) -> tuple[dict, list[tuple], dict]:
    """(the handler's result, what the topic received, the metrics written)."""
    clock = Clock()
    sts = boto3.client("sts", region_name=REGION, endpoint_url=f"https://sts.{REGION}.amazonaws.com")
    for drift in regions.values():
        drift.stub.activate()
    result = app.handler(
        {},
        None,
        cloudformation=lambda region: regions[region].client,
        sts=sts,
        fetch=kube,
        sleep=clock.sleep,
        clock=clock,
    )
    for drift in regions.values():
        drift.stub.assert_no_pending_responses()
        drift.stub.deactivate()
    sent = sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic].sent_notifications
    written = {}
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if "_aws" in record:
            for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                (written[metric["Name"]],) = record[metric["Name"]]  # EMF: one value per run
    return result, sent, written


def parts(sent: list[tuple]) -> tuple[dict, str, str]:
    """(the chat notification, the e-mail text, the subject) of the one message sent."""
    ((_id, message, subject, _attributes, _group),) = sent
    structured = json.loads(message)
    return json.loads(structured["default"]), structured["email"], subject


def healthy_regions() -> dict[str, Drift]:
    return {
        REGION: in_sync(Drift(REGION), "erp-dev-network"),
        EDGE_REGION: in_sync(Drift(EDGE_REGION), "erp-dev-edge"),
    }


# ---- tests --------------------------------------------------------------------------------------------------


def test_nothing_drifted_sends_no_message_and_writes_zeros(aws, capsys):
    kube = cluster(deployed())
    result, sent, written = run(aws, healthy_regions(), kube, capsys)
    assert sent == []
    assert result["published"] is False
    assert written == {"DriftedStacks": 0, "OrphanedObjects": 0, "DriftCheckFailures": 0}
    # Every list asked the API server for the platform's labels only.
    lists = [r.path for r in kube.requests if "labelSelector" in r.path]
    assert lists and all(urllib.parse.quote(SELECTOR, safe="") in path for path in lists)


def test_a_drifted_stack_is_reported_with_its_resource_and_property_paths(aws, capsys):
    network = (
        Drift(REGION)
        .started("erp-dev-network")
        .status("erp-dev-network", "DETECTION_IN_PROGRESS")  # polled again after a pause
        .status("erp-dev-network", "DETECTION_COMPLETE", "DRIFTED")
        .drifts("erp-dev-network", [security_group_drift(paths=("/SecurityGroupIngress/1", "/Tags/0/Value"))])
    )
    edge = in_sync(Drift(EDGE_REGION), "erp-dev-edge")  # finishes on the first poll
    result, sent, written = run(aws, {REGION: network, EDGE_REGION: edge}, cluster(deployed()), capsys)

    assert written == {"DriftedStacks": 1, "OrphanedObjects": 0, "DriftCheckFailures": 0}
    chat, email, subject = parts(sent)
    assert chat["version"] == "1.0" and chat["source"] == "custom"
    assert chat["content"]["textType"] == "client-markdown"
    assert chat["content"]["title"] == subject == "Drift check of erp-dev: 1 stack(s) drifted, 0 orphaned object(s)"
    for text in (chat["content"]["description"], email):
        assert "erp-dev-network (ap-northeast-2): 1 resource(s)" in text.replace("`", "")
        assert "ApiSecurityGroup" in text and "AWS::EC2::SecurityGroup MODIFIED" in text
        assert "/SecurityGroupIngress/1 (ADD), /Tags/0/Value (ADD)" in text
        assert "erp-dev-edge" not in text  # in sync: not mentioned
        assert "0.0.0.0/0" not in text  # values stay in the console, never in chat
    assert result["stacks"]["erp-dev-edge"]["status"] == "IN_SYNC"


def test_a_stack_drift_detection_cannot_run_on_is_reported_not_crashed_on(aws, capsys):
    edge = Drift(EDGE_REGION).refused(
        "erp-dev-edge", "Stack [erp-dev-edge] is in UPDATE_IN_PROGRESS state and can not be checked for drift"
    )
    regions = {REGION: in_sync(Drift(REGION), "erp-dev-network"), EDGE_REGION: edge}
    result, sent, written = run(aws, regions, cluster(deployed()), capsys)

    assert written == {"DriftedStacks": 0, "OrphanedObjects": 0, "DriftCheckFailures": 1}
    chat, email, _ = parts(sent)
    assert "1 check(s) incomplete" in chat["content"]["title"]
    assert "NOT FULLY CHECKED" in email
    assert "erp-dev-edge: drift detection could not start: ValidationError: Stack [erp-dev-edge] is in " in email
    assert result["stacks"]["erp-dev-network"]["status"] == "IN_SYNC"


def test_a_detection_that_outlasts_the_wait_is_reported(aws, capsys):
    network = Drift(REGION).started("erp-dev-network")
    for _ in range(13):  # a poll every 10 s, from 0 s to the 120 s the wait allows
        network.status("erp-dev-network", "DETECTION_IN_PROGRESS")
    regions = {REGION: network, EDGE_REGION: in_sync(Drift(EDGE_REGION), "erp-dev-edge")}
    _, sent, written = run(aws, regions, cluster(deployed()), capsys)

    assert written["DriftCheckFailures"] == 1
    _, email, _ = parts(sent)
    assert "erp-dev-network: drift detection did not finish within 120 s" in email


def test_orphans_are_listed_and_inventory_objects_unlabelled_and_owned_objects_are_not(aws, capsys):
    objects = deployed() + [
        k8s_object("NetworkPolicy erp-dev/allow-legacy-service"),  # left behind when its service was removed
        k8s_object("Service logging/old-collector"),
        k8s_object("ConfigMap erp-dev/someone-elses", labels={"app.kubernetes.io/part-of": "other"}),
        k8s_object("ConfigMap erp-dev/made-by-a-controller", owned=True),
    ]
    kube = cluster(objects, forbidden=frozenset({"targetgroupbindings"}))
    result, sent, written = run(aws, healthy_regions(), kube, capsys)

    assert result["orphans"] == ["NetworkPolicy erp-dev/allow-legacy-service", "Service logging/old-collector"]
    assert written == {"DriftedStacks": 0, "OrphanedObjects": 2, "DriftCheckFailures": 0}
    chat, email, _ = parts(sent)
    assert chat["content"]["title"] == "Drift check of erp-dev: 0 stack(s) drifted, 2 orphaned object(s)"
    assert "• `NetworkPolicy erp-dev/allow-legacy-service`" in chat["content"]["description"]
    assert "- Service logging/old-collector" in email
    for absent in ("notification-service", "fluent-bit-config", "someone-elses", "made-by-a-controller", "kube-root"):
        assert absent not in email
    # A kind the access policy may not list is named, not guessed about.
    assert "Not listed (the function's EKS access policy cannot read them): TargetGroupBinding." in email


def test_a_missing_inventory_fails_the_orphan_check_without_listing_everything(aws, capsys):
    objects = [o for o in deployed() if o["metadata"]["name"] != "platform-manifest-logging"]
    result, sent, written = run(aws, healthy_regions(), cluster(objects), capsys)

    assert result["orphans"] == [] and written["DriftCheckFailures"] == 1
    _, email, _ = parts(sent)
    assert "cluster objects: the inventory ConfigMap erp-dev/platform-manifest-logging is missing" in email


def test_a_refused_inventory_read_names_the_access_the_function_needs(aws, capsys):
    kube = cluster(deployed(), forbidden=frozenset({"configmaps"}))
    result, sent, written = run(aws, healthy_regions(), kube, capsys)

    assert result["orphans"] == [] and written["DriftCheckFailures"] == 1
    _, email, _ = parts(sent)
    assert (
        "cluster objects: the Kubernetes API refused this function's role (403) reading the inventory "
        "erp-dev/platform-manifest-services: its EKS access entry (AmazonEKSViewPolicy on the platform's "
        "namespaces, constructs_lib/observability/drift.py) must exist"
    ) in email


def test_a_large_report_is_cut_to_fit_sns_with_a_count_of_what_was_left_out(aws, capsys):
    long_paths = tuple(f"/Properties/SecurityGroupIngress/{i}/" + "x" * 80 for i in range(30))
    resources = [security_group_drift(f"SecurityGroup{i:04d}", long_paths) for i in range(400)]
    network = (
        Drift(REGION)
        .started("erp-dev-network")
        .status("erp-dev-network", "DETECTION_COMPLETE", "DRIFTED")
        .drifts("erp-dev-network", resources)
    )
    regions = {REGION: network, EDGE_REGION: in_sync(Drift(EDGE_REGION), "erp-dev-edge")}
    _, sent, written = run(aws, regions, cluster(deployed()), capsys)

    assert written["DriftedStacks"] == 1
    ((_, message, *_),) = sent
    assert len(message.encode()) <= app.MAX_MESSAGE_BYTES < 256 * 1024
    chat, email, _ = parts(sent)
    shown = email.count("AWS::EC2::SecurityGroup MODIFIED")
    assert 0 < shown < 400
    # 401 lines: the stack's and one per resource; each shows at most MAX_PATHS paths and counts the rest.
    assert f"...and {401 - shown - 1} more line(s) not shown" in email
    assert f"+{30 - app.MAX_PATHS} more" in email
    assert "more line(s) not shown" in chat["content"]["description"]

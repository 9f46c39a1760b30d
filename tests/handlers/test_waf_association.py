"""The web-ACL association custom resource (issue 18 item 6): it retries while WAF has not propagated a new web
ACL (WAFUnavailableEntityException, documented for Cognito user pools), fails on anything else or when time runs
out, and answers CloudFormation through the presigned response URL every time (a local HTTP server stands in).

WAF is a fake that keeps the documented semantics: one web ACL per resource; AssociateWebACL raises
WAFUnavailableEntityException until the ACL has propagated; GetWebACLForResource on an unknown resource raises
WAFNonexistentItemException.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.handlers.conftest import load_function

HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers" / "waf_association"
ACL = "arn:aws:wafv2:ap-northeast-2:222222222222:regional/webacl/erp-prod-auth-rate-limit/1111"
OTHER_ACL = "arn:aws:wafv2:ap-northeast-2:222222222222:regional/webacl/replacement/2222"
POOL = "arn:aws:cognito-idp:ap-northeast-2:222222222222:userpool/ap-northeast-2_AbCdEf"


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


class FakeWaf:
    def __init__(self, unavailable_for: int = 0, pools=(POOL,)):
        self.unavailable_for = unavailable_for  # AssociateWebACL calls answered before the ACL has propagated
        self.pools = set(pools)
        self.associations: dict[str, str] = {}
        self.calls: list[str] = []

    def associate_web_acl(self, WebACLArn, ResourceArn):
        self.calls.append("associate")
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            raise client_error("WAFUnavailableEntityException")
        if ResourceArn not in self.pools:
            raise client_error("WAFNonexistentItemException")
        self.associations[ResourceArn] = WebACLArn

    def get_web_acl_for_resource(self, ResourceArn):
        self.calls.append("get")
        if ResourceArn not in self.pools:
            raise client_error("WAFNonexistentItemException")
        acl = self.associations.get(ResourceArn)
        return {"WebACL": {"ARN": acl, "Name": "x"}} if acl else {}

    def disassociate_web_acl(self, ResourceArn):
        self.calls.append("disassociate")
        self.associations.pop(ResourceArn, None)


class Context:
    def __init__(self, remaining_ms: int, clock: list[int]):
        self.deadline, self.clock = remaining_ms, clock

    def get_remaining_time_in_millis(self) -> int:
        return self.deadline - self.clock[0]


@pytest.fixture
def cloudformation():
    """A local stand-in for the presigned S3 URL: records every response body."""
    responses: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 (http.server's name)
            responses.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response", responses
    server.shutdown()


@pytest.fixture
def module(monkeypatch):
    app = load_function(HANDLER_DIR).app
    clock = [0]
    monkeypatch.setattr(app, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds * 1000))
    app.clock = clock
    return app


def run(module, waf, url, request_type, *, remaining_ms=600_000, physical=None, acl=ACL):
    module._client = lambda: waf
    event = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:ap-northeast-2:222222222222:stack/erp-prod-auth/1",
        "RequestId": "req-1",
        "LogicalResourceId": "UsersRateLimitAssociation",
        "ResourceType": "Custom::WafWebAclAssociation",
        "ResourceProperties": {"ServiceToken": "arn:fn", "WebAclArn": acl, "ResourceArn": POOL},
        **({"PhysicalResourceId": physical} if physical else {}),
    }
    module.handler(event, Context(remaining_ms, module.clock))


def test_create_retries_until_the_new_web_acl_has_propagated(module, cloudformation):
    url, responses = cloudformation
    waf = FakeWaf(unavailable_for=4)  # ~1 minute of propagation at 15 s per retry
    run(module, waf, url, "Create")
    (answer,) = responses
    assert answer["Status"] == "SUCCESS", answer
    assert waf.associations == {POOL: ACL} and waf.calls.count("associate") == 5
    assert answer["PhysicalResourceId"] == f"{ACL}|{POOL}"
    assert "after 5 attempt" in answer["Reason"]


def test_create_fails_with_the_last_error_before_the_function_times_out(module, cloudformation):
    url, responses = cloudformation
    waf = FakeWaf(unavailable_for=10_000)
    run(module, waf, url, "Create", remaining_ms=300_000)
    (answer,) = responses
    assert answer["Status"] == "FAILED" and answer["Reason"].startswith("WAFUnavailableEntityException")
    # Stopped with time left to answer (60 s reserve + one retry interval), not at the Lambda's timeout.
    assert 300_000 - module.clock[0] >= module.RESERVE_MS
    # Every 15 s while at least the reserve plus one interval is left: 4 min 15 s of retries, 17 attempts.
    assert waf.calls.count("associate") == 17


def test_other_errors_are_not_retried(module, cloudformation):
    url, responses = cloudformation
    waf = FakeWaf(pools=())  # the resource does not exist
    run(module, waf, url, "Create")
    (answer,) = responses
    assert answer["Status"] == "FAILED" and "WAFNonexistentItemException" in answer["Reason"]
    assert waf.calls == ["associate"]
    assert answer["PhysicalResourceId"]  # CloudFormation needs an id even for a failed create


def test_delete_removes_only_its_own_association(module, cloudformation):
    url, responses = cloudformation
    waf = FakeWaf()
    waf.associations[POOL] = OTHER_ACL  # a replacement association already moved the pool to another ACL
    run(module, waf, url, "Delete", physical=f"{ACL}|{POOL}")
    assert responses[-1]["Status"] == "SUCCESS" and waf.associations == {POOL: OTHER_ACL}
    waf.associations[POOL] = ACL
    run(module, waf, url, "Delete", physical=f"{ACL}|{POOL}")
    assert responses[-1]["Status"] == "SUCCESS" and waf.associations == {}


def test_delete_after_a_failed_create_or_of_a_gone_pool_succeeds(module, cloudformation):
    url, responses = cloudformation
    run(module, FakeWaf(), url, "Delete", physical="failed-req-0")
    run(module, FakeWaf(pools=()), url, "Delete", physical=f"{ACL}|{POOL}")
    assert [r["Status"] for r in responses] == ["SUCCESS", "SUCCESS"]


def test_update_to_another_web_acl_is_a_new_association(module, cloudformation):
    url, responses = cloudformation
    waf = FakeWaf()
    run(module, waf, url, "Update", physical=f"{ACL}|{POOL}", acl=OTHER_ACL)
    assert responses[-1]["PhysicalResourceId"] == f"{OTHER_ACL}|{POOL}"  # CloudFormation then deletes the old id
    run(module, waf, url, "Delete", physical=f"{ACL}|{POOL}")
    assert waf.associations == {POOL: OTHER_ACL}

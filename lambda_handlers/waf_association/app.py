"""CloudFormation custom resource: associate a web ACL with a resource, and retry until WAF has propagated it.

Why not AWS::WAFv2::WebACLAssociation: a web ACL takes "a few seconds to a few minutes" to propagate (Cognito
developer guide, *Associate an AWS WAF web ACL with a user pool*); associating it before then answers
WAFUnavailableEntityException, which CloudFormation's association handler does not retry, so the create fails
and rolls back (and the prod user pool, retained, is orphaned on every try). Why not an AwsCustomResource: its
single SDK call retries only what the SDK counts as transient, and this error is not one of them. This handler
retries exactly that error, every RETRY_SECONDS, until shortly before its own timeout, then fails with the last
error (so a real problem still fails the deploy, minutes later instead of never).

Properties: WebAclArn, ResourceArn. Physical id: "<web ACL ARN>|<resource ARN>", so a change of either is a new
association, and CloudFormation's Delete of the old one carries both ARNs. Delete disassociates only when the
resource is still associated with *this* web ACL (a replacement may already have moved it), and treats a
resource or web ACL that no longer exists as done.
"""

from __future__ import annotations

import json
import time
import urllib.request

import boto3

RETRY_SECONDS = 15
# Stop retrying this long before the Lambda's timeout: the answer to CloudFormation must still go out.
RESERVE_MS = 60_000
RETRYABLE = "WAFUnavailableEntityException"
GONE = ("WAFNonexistentItemException", "WAFUnavailableEntityException")
SEPARATOR = "|"
sleep = time.sleep  # replaced in tests


def _client():
    return boto3.client("wafv2")


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code", type(error).__name__)


def associate(waf, acl_arn: str, resource_arn: str, remaining_ms) -> int:
    """AssociateWebACL until it succeeds or time runs out; returns the number of attempts."""
    attempt = 0
    while True:
        attempt += 1
        try:
            waf.associate_web_acl(WebACLArn=acl_arn, ResourceArn=resource_arn)
            return attempt
        except Exception as error:
            if _code(error) != RETRYABLE or remaining_ms() < RESERVE_MS + RETRY_SECONDS * 1000:
                raise
            print(f"attempt {attempt}: {RETRYABLE} (web ACL not propagated yet); retrying in {RETRY_SECONDS} s")
            sleep(RETRY_SECONDS)


def disassociate(waf, acl_arn: str, resource_arn: str) -> bool:
    """Remove the association if the resource still has this web ACL; False when there was nothing to remove."""
    try:
        current = waf.get_web_acl_for_resource(ResourceArn=resource_arn).get("WebACL") or {}
    except Exception as error:
        if _code(error) in GONE:
            return False
        raise
    if current.get("ARN") != acl_arn:
        return False
    try:
        waf.disassociate_web_acl(ResourceArn=resource_arn)
    except Exception as error:
        if _code(error) not in GONE:
            raise
    return True


def _arns(event: dict) -> tuple[str, str]:
    physical = event.get("PhysicalResourceId") or ""
    if event["RequestType"] == "Delete" and physical.count(SEPARATOR) == 1:
        acl_arn, resource_arn = physical.split(SEPARATOR)
        return acl_arn, resource_arn
    props = event["ResourceProperties"]
    return props["WebAclArn"], props["ResourceArn"]


def respond(event: dict, status: str, reason: str, physical_id: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {},
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (CloudFormation's presigned URL)
        response.read()


def handler(event: dict, context) -> None:
    print(json.dumps({k: event.get(k) for k in ("RequestType", "LogicalResourceId", "PhysicalResourceId")}))
    waf = _client()
    status, reason = "SUCCESS", ""
    physical = event.get("PhysicalResourceId") or ""
    try:
        acl_arn, resource_arn = _arns(event)
        if event["RequestType"] in ("Create", "Update"):
            physical = f"{acl_arn}{SEPARATOR}{resource_arn}"
            attempts = associate(waf, acl_arn, resource_arn, context.get_remaining_time_in_millis)
            reason = f"associated after {attempts} attempt(s)"
        else:
            reason = "disassociated" if disassociate(waf, acl_arn, resource_arn) else "nothing to disassociate"
    except Exception as error:
        status, reason = "FAILED", f"{_code(error)}: {error}"
        # A failed create still needs an id; its Delete then finds nothing of ours to remove.
        physical = physical or f"failed-{event['RequestId']}"
    print(f"{status}: {reason}")
    respond(event, status, reason, physical)

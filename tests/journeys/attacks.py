"""Attacks are journeys too: each must FAIL with the expected status, and leave nothing changed.

`at_gateway=True` steps must be answered by the gateway itself: no backend may see the request.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.journeys.harness import World
from tests.journeys.journeys import (
    DEVELOPMENT,
    OWNER_EMAIL,
    kim,
    manager,
    onboard,
    request_leave,
    staff,
)


def outside_domain_sign_up(world: World) -> None:
    """An address outside auth.allowed_signup_domains is refused at sign-up, with the pre-sign-up message."""
    domain = world.config.auth.allowed_signup_domains[0]
    mallory = world.person("Mallory", f"mallory@evil-{domain}", "STAFF", DEVELOPMENT)
    j = world.journey("outside-domain sign-up")
    error = mallory.sign_up(j, expect="UserLambdaValidationException")
    message = getattr(error, "message", "")
    j.check_that(
        'the frontend shows "PreSignUp failed with error <reason>."',
        message.startswith("PreSignUp failed with error ") and message.endswith(".") and len(message) > 30,
        message,
    )
    j.check("accounts in the pool", sorted(world.pool.users), [])


def squat_colleague_address(world: World) -> None:
    """Signing up with a colleague's address works, but without her mailbox the account never signs in."""
    squatter = world.person("Kim Minji", OWNER_EMAIL, "MANAGER", DEVELOPMENT)
    j = world.journey("squat a colleague's address")
    squatter.sign_up(j)
    # The squatter cannot follow the link: it went to the colleague's mailbox.
    squatter.sign_in(j, expect="UserNotConfirmedException")
    j.check("tokens issued to the squatter", squatter.tokens, None)


def staff_approves_approval(world: World) -> None:
    leave = request_leave(world, "staff approves")
    requester, boss, request_id = leave.requester, leave.approver, leave.request_id
    attacker = onboard(world, staff(world), "staff approves")
    j = world.journey("staff approves")
    for decision in ("approve", "reject"):
        j.http(
            attacker,
            "PUT",
            f"/api/approvals/{request_id}/{decision}",
            {"approverId": boss.eid},
            expect=403,
            at_gateway=True,
        )
    j.check("the request's status", world.approvals.docs[request_id]["finalStatus"], "in_progress")
    j.check("PUTs approval-request-service saw", [r.path for r in world.approvals.requests if r.method == "PUT"], [])
    balance = requester.call(j, "GET", f"/api/employees/{requester.eid}")["annualLeaveBalance"]
    j.check("the requester's balance", balance, leave.balance)


def staff_drives_processing(world: World) -> None:
    leave = request_leave(world, "staff drives processing")
    boss, request_id = leave.approver, leave.request_id
    attacker = onboard(world, staff(world), "staff drives processing")
    j = world.journey("staff drives processing")
    for prefix in ("/api/process", "/api/processing"):
        path = f"{prefix}/{boss.eid}/{request_id}"
        j.http(attacker, "POST", path, {"status": "approved"}, expect=403, at_gateway=True)
        j.http(attacker, "GET", f"{prefix}/{boss.eid}", expect=403, at_gateway=True)
    j.check("requests approval-processing-service saw", len(world.processing.requests), 0)


def post_notification_from_outside(world: World) -> None:
    """notification-service's send broadcasts to everyone: from outside it must not be reachable at all."""
    attacker = onboard(world, staff(world), "notification from outside")
    boss = onboard(world, manager(world), "notification from outside", role="manager")
    j = world.journey("notification from outside")
    body = {"approvalId": 1, "status": "approved", "message": "Everyone gets a day off"}
    for person in (attacker, boss):
        j.http(person, "POST", "/api/notifications/send", body, expect=(404, 403), at_gateway=True)
        j.http(person, "POST", f"/api/notifications/send/{attacker.eid}", body, expect=(404, 403), at_gateway=True)
    j.check("notifications sent", world.notifications.broadcast + world.notifications.direct, [])


def drain_colleague_leave(world: World) -> None:
    """Staff names a colleague as requester and himself as approver, then approves; or calls deduct-leave."""
    victim = world.record(email=OWNER_EMAIL)
    attacker = onboard(world, staff(world), "drain a colleague's leave")
    j = world.journey("drain a colleague's leave")
    balance = attacker.call(j, "GET", f"/api/employees/{victim['id']}")["annualLeaveBalance"]
    created = j.http(
        attacker,
        "POST",
        "/api/approvals",
        {
            "requesterId": victim["id"],
            "title": "Leave",
            "content": "-",
            "type": "ANNUAL_LEAVE",
            "steps": [{"step": 1, "approverId": attacker.eid}],
            "leaveDays": balance,
        },
        expect=(200, 403),
    )
    if created.status == 200:
        j.http(
            attacker,
            "PUT",
            f"/api/approvals/{created.body['requestId']}/approve",
            {"approverId": attacker.eid},
            expect=403,
            at_gateway=True,
        )
    j.http(attacker, "POST", f"/api/employees/{victim['id']}/deduct-leave", {"days": balance}, expect=403)
    after = attacker.call(j, "GET", f"/api/employees/{victim['id']}")["annualLeaveBalance"]
    j.check("the victim's balance", after, balance)


def manager_self_approval(world: World) -> None:
    """A manager approves nothing of their own: leave, quest progress, balance."""
    boss = onboard(world, manager(world), "manager self-approval", role="manager")
    j = world.journey("manager self-approval")
    leave = boss.call(
        j,
        "POST",
        "/api/leaves",
        {"employeeId": boss.eid, "startDate": "2026-12-24", "endDate": "2026-12-24", "days": 1, "reason": "-"},
    )
    j.http(boss, "PUT", f"/api/leaves/{leave['id']}/approve", expect=403)
    statuses = [x.get("status") for x in boss.call(j, "GET", f"/api/leaves/{boss.eid}")]
    j.check("my leave's status", statuses, ["PENDING"])
    quests = [q for q in boss.call(j, "GET", "/api/quests") if q["department"] == boss.department]
    quest = quests[0]["id"]
    boss.call(j, "POST", f"/api/quests/{quest}/accept", {"employeeId": boss.eid})
    boss.call(j, "POST", f"/api/quests/{quest}/complete", {"employeeId": boss.eid})
    j.http(boss, "PUT", f"/api/quests/{quest}/approve", {"managerId": boss.eid, "employeeId": boss.eid}, expect=403)
    progress = next(q for q in boss.call(j, "GET", "/api/quests") if q["id"] == quest)["progressList"]
    j.check("my progress on it", [p["status"] for p in progress if p["employeeId"] == boss.eid], ["WAITING_APPROVAL"])
    before = boss.call(j, "GET", f"/api/employees/{boss.eid}")["annualLeaveBalance"]
    j.http(boss, "PUT", f"/api/employees/{boss.eid}/leave-balance", {"adjustment": 10}, expect=403)
    j.check("my balance", boss.call(j, "GET", f"/api/employees/{boss.eid}")["annualLeaveBalance"], before)


def second_check_in(world: World) -> None:
    person = onboard(world, staff(world), "second check-in")
    j = world.journey("second check-in")
    first = person.call(j, "POST", f"/api/attendance/check-in/{person.eid}")
    j.http(person, "POST", f"/api/attendance/check-in/{person.eid}", expect=409)
    count = person.call(j, "GET", f"/api/employees/{person.eid}")["attendanceCount"]
    j.check("attendanceCount after the second check-in", count, first["attendanceCount"])


def no_authorization_header(world: World) -> None:
    """The frontend as built sends no Authorization header: every call is 401 at the gateway."""
    person = onboard(world, staff(world), "no Authorization header")
    j = world.journey("no Authorization header")
    for method, path in (("GET", "/api/employees"), ("GET", "/api/approvals"), ("GET", "/api/quests")):
        j.http(person, method, path, expect=401, at_gateway=True, bearer=False)
    j.http(person, "POST", f"/api/attendance/check-in/{person.eid}", expect=401, at_gateway=True, bearer=False)


def id_token_as_bearer(world: World) -> None:
    """An ID token is a valid JWT for the client, but has no scope: every scoped route refuses it."""
    person = onboard(world, kim(world), "ID token as bearer")
    j = world.journey("ID token as bearer")
    for path in ("/api/employees", "/api/approvals", f"/api/employees/{person.eid}"):
        j.http(person, "GET", path, expect=403, at_gateway=True, token=person.tokens.id_token)


ATTACKS: dict[str, Callable[[World], None]] = {
    "outside-domain-sign-up": outside_domain_sign_up,
    "squat-colleague-address": squat_colleague_address,
    "staff-approves-approval": staff_approves_approval,
    "staff-drives-processing": staff_drives_processing,
    "post-notification-from-outside": post_notification_from_outside,
    "drain-colleague-leave": drain_colleague_leave,
    "manager-self-approval": manager_self_approval,
    "second-check-in-same-day": second_check_in,
    "no-authorization-header": no_authorization_header,
    "id-token-as-bearer": id_token_as_bearer,
}

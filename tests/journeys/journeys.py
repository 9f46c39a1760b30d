"""The frontend's journeys (facts sheet section 7), step by step as the frontend makes the calls.

Each journey runs the journeys it builds on first (their steps are named as theirs, "setting up J7").
The cast: a new staff member and a new manager of DEVELOPMENT, and two people of the sample rows
(tests/handlers/conftest.py SEED, read back from the database): the owner of OWNER_EMAIL (Kim Minji, with
leave to take) and the one record without an email (Park Legacy, as the old service left him). Managers get
their role from an administrator (`make user ROLE=manager`: the first of auth.manager_groups), never from the
position they sign up with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.handlers.conftest import OWNER_EMAIL
from tests.journeys.harness import Journey, Person, World

DEVELOPMENT = "DEVELOPMENT"


# --- the cast ---------------------------------------------------------------------------------------------


def _cast(world: World, name: str, email: str, position: str, department: str) -> Person:
    return world.people.get(email) or world.person(name, email, position, department)


def staff(world: World) -> Person:
    return _cast(world, "Han Jisoo", world.address("jisoo.han"), "STAFF", DEVELOPMENT)


def manager(world: World) -> Person:
    return _cast(world, "Choi Boss", world.address("boss.choi"), "MANAGER", DEVELOPMENT)


def kim(world: World) -> Person:
    """The sample row with OWNER_EMAIL, signing up with her own address."""
    row = world.record(email=OWNER_EMAIL)
    return _cast(world, row["name"], OWNER_EMAIL, row["position"], row["department"])


def legacy(world: World) -> Person:
    """The person behind the sample row without an email, signing up with a new address."""
    row = world.record(email=None)
    return _cast(world, row["name"], world.address("park.legacy"), row["position"], row["department"])


# --- identity ---------------------------------------------------------------------------------------------


def j1_sign_up(world: World, person: Person, within: str = "J1", j: Journey | None = None) -> None:
    """Sign up with email, name, position and department; then the person follows the link in the mail."""
    j = j or world.journey("J1", within)
    person.sign_up(j)
    person.click_mail_link(j)


def admin_grants_manager(world: World, person: Person, within: str) -> None:
    """`make user ENV=<env> EMAIL=<address> ROLE=manager`: the administrator adds the account to the group."""
    j = world.journey("make user ROLE=manager", within)
    j.cognito(
        f"AdminAddUserToGroup {person.email} {world.manager_group}",
        lambda: world.pool.admin_add_user_to_group(person.email, world.manager_group),
    )


def admin_links(world: World, person: Person, employee_id: int, within: str) -> None:
    """`make user ... LINK=<id>`: custom:employeeId ties the account to a record that has no email."""
    j = world.journey(f"make user LINK={employee_id}", within)
    j.cognito(
        f"AdminUpdateUserAttributes {person.email} custom:employeeId={employee_id}",
        lambda: world.pool.admin_update_user_attributes(person.email, {"custom:employeeId": str(employee_id)}),
    )


def j2_sign_in_and_link(world: World, person: Person, within: str = "J2", j: Journey | None = None) -> int:
    """SRP sign-in, then GET /api/employees and claim (PUT) or create (POST) the person's record."""
    j = j or world.journey("J2", within)
    person.sign_in(j)
    return person.link_employee(j)


def onboard(world: World, person: Person, within: str, *, role: str | None = None) -> Person:
    """J1 + (an administrator's role grant) + J2: the person is signed in and knows their employee id."""
    j1_sign_up(world, person, within)
    if role == "manager":
        admin_grants_manager(world, person, within)
    j2_sign_in_and_link(world, person, within)
    return person


# --- the journeys -----------------------------------------------------------------------------------------


def journey_j1(world: World) -> None:
    person = staff(world)
    j = world.journey("J1")
    j1_sign_up(world, person, j=j)
    user = world.pool.users[world.pool._key(person.email)]
    j.check("the account after the link: status", user.status, "CONFIRMED")
    j.check("the account after the link: email_verified", user.attributes.get("email_verified"), "true")


def journey_j2(world: World) -> None:
    """A new person gets a new record (POST); Kim, whose record carries her address, is found by it."""
    newcomer, owner = staff(world), kim(world)
    j1_sign_up(world, newcomer, "J2")
    j1_sign_up(world, owner, "J2")
    j = world.journey("J2")
    eid = j2_sign_in_and_link(world, newcomer, j=j)
    record = newcomer.call(j, "GET", f"/api/employees/{eid}")
    j.check("the new record's email", record.get("email"), newcomer.email)
    owner_id = j2_sign_in_and_link(world, owner, j=j)
    j.check(f"{owner.name}'s employee id", owner_id, world.record(email=OWNER_EMAIL)["id"])


def journey_j3(world: World) -> None:
    person = onboard(world, staff(world), "J3")
    j = world.journey("J3")
    progress = person.call(j, "GET", f"/api/attendance/progress/{person.eid}")
    me = person.call(j, "GET", f"/api/employees/{person.eid}")
    checked_in = person.call(j, "POST", f"/api/attendance/check-in/{person.eid}")
    j.check(
        "attendanceCount after the check-in", checked_in.get("attendanceCount"), (me.get("attendanceCount") or 0) + 1
    )
    j.check_that("progress read before the check-in", "progress" in progress, progress)


def create_quest(j: Journey, boss: Person, title: str) -> dict:
    """J5's POST /api/quests: a quest of the manager's department, created by him."""
    body = {
        "title": title,
        "description": "journey quest",
        "rewardDays": 1.5,
        "department": boss.department,
        "createdBy": boss.eid,
    }
    return {**body, "id": boss.call(j, "POST", "/api/quests", body)["id"]}


def journey_j4(world: World) -> None:
    person = onboard(world, staff(world), "J4")
    boss = onboard(world, manager(world), "J4", role="manager")
    create_quest(world.journey("J5", "J4"), boss, "Fix the login bug")
    j = world.journey("J4")
    quests = person.call(j, "GET", "/api/quests")
    mine = [
        q
        for q in quests
        if q["department"] == person.department and person.eid not in [p["employeeId"] for p in q["progressList"]]
    ]
    j.check_that("a quest of my department to accept", bool(mine), quests)
    quest = mine[-1]
    before = person.call(j, "GET", f"/api/employees/{person.eid}")["annualLeaveBalance"] or 0
    person.call(j, "POST", f"/api/quests/{quest['id']}/accept", {"employeeId": person.eid})
    person.call(j, "POST", f"/api/quests/{quest['id']}/complete", {"employeeId": person.eid})
    boss.call(j, "PUT", f"/api/quests/{quest['id']}/approve", {"managerId": boss.eid, "employeeId": person.eid})
    claimed = person.call(j, "POST", f"/api/quests/{quest['id']}/claim", {"employeeId": person.eid})
    j.check("newLeaveBalance after the claim", claimed.get("newLeaveBalance"), before + quest["rewardDays"])


def journey_j5(world: World) -> None:
    boss = onboard(world, manager(world), "J5", role="manager")
    person = onboard(world, staff(world), "J5")
    j = world.journey("J5")
    boss.call(j, "GET", "/api/quests")
    ids = [create_quest(j, boss, title)["id"] for title in ("Write the runbook", "Review the backlog")]
    for quest_id in ids:
        person.call(j, "POST", f"/api/quests/{quest_id}/accept", {"employeeId": person.eid})
        person.call(j, "POST", f"/api/quests/{quest_id}/complete", {"employeeId": person.eid})
    decision = {"managerId": boss.eid, "employeeId": person.eid}
    boss.call(j, "PUT", f"/api/quests/{ids[0]}/approve", decision)
    boss.call(j, "PUT", f"/api/quests/{ids[1]}/reject", {**decision, "reason": "not this sprint"})
    boss.call(j, "DELETE", f"/api/quests/{ids[1]}")
    created = [q["id"] for q in boss.call(j, "GET", "/api/quests") if q.get("createdBy") == boss.eid]
    j.check("my quests after the delete", created, [ids[0]])


@dataclass
class LeaveRequest:
    requester: Person
    approver: Person
    request_id: int
    days: float
    balance: float  # the requester's, when asking


def request_leave(world: World, within: str, days: float = 2.0) -> LeaveRequest:
    """J6 by Kim (who has leave to take) naming the new manager as approver."""
    requester = onboard(world, kim(world), within)
    boss = onboard(world, manager(world), within, role="manager")
    j = world.journey("J6", within)
    employees = requester.call(j, "GET", "/api/employees")
    approvers = {(e["name"], e["department"]): e for e in employees if e.get("position") == "MANAGER"}
    approver = approvers.get((boss.name, boss.department))
    j.check_that("the new manager among the approvers", approver is not None, sorted(approvers))
    balance = requester.call(j, "GET", f"/api/employees/{requester.eid}")["annualLeaveBalance"]
    j.check_that(f"{days} days of leave to take", (balance or 0) >= days, balance)
    created = requester.call(
        j,
        "POST",
        "/api/approvals",
        {
            "requesterId": requester.eid,
            "title": "Family trip",
            "content": "Two days off",
            "type": "ANNUAL_LEAVE",
            "steps": [{"step": 1, "approverId": approver["id"]}],
            "leaveDays": days,
        },
    )
    return LeaveRequest(requester, boss, created["requestId"], days, balance)


def journey_j6(world: World) -> None:
    leave = request_leave(world, "J6")
    j = world.journey("J6")
    doc = world.approvals.docs.get(leave.request_id, {})
    j.check("the request's approver", [s["approverId"] for s in doc.get("steps", [])], [leave.approver.eid])


def journey_j7(world: World) -> None:
    leave = request_leave(world, "J7")
    requester, boss = leave.requester, leave.approver
    j = world.journey("J7")
    pending = boss.call(j, "GET", f"/api/approvals/pending/{boss.eid}")
    j.check("the pending request", [p["requestId"] for p in pending], [leave.request_id])
    boss.call(j, "PUT", f"/api/approvals/{leave.request_id}/approve", {"approverId": boss.eid})
    after = requester.call(j, "GET", f"/api/employees/{requester.eid}")["annualLeaveBalance"]
    j.check("the requester's balance after the final approval", after, leave.balance - leave.days)
    j.check(
        "notification-service told (POST /notifications/send)",
        [n.get("employeeId") for n in world.notifications.broadcast],
        [requester.eid],
    )


def journey_j8(world: World) -> None:
    leave = request_leave(world, "J8")
    j = world.journey("J8")
    for person in (leave.requester, leave.approver):
        listed = person.call(j, "GET", "/api/approvals")
        row = next((a for a in listed if a.get("requestId") == leave.request_id), {})
        j.check(
            f"the request as {person.name} lists it",
            {k: row.get(k) for k in ("type", "requesterId", "leaveDays", "finalStatus")},
            {
                "type": "ANNUAL_LEAVE",
                "requesterId": leave.requester.eid,
                "leaveDays": leave.days,
                "finalStatus": "in_progress",
            },
        )


def journey_j9(world: World) -> None:
    boss = onboard(world, manager(world), "J9", role="manager")
    person = onboard(world, staff(world), "J9")
    j = world.journey("J9")
    employees = boss.call(j, "GET", "/api/employees")
    team = [e["id"] for e in employees if e.get("department") == boss.department and e.get("position") == "STAFF"]
    j.check_that("the new staff member in the team list", person.eid in team, team)


def journey_legacy(world: World) -> None:
    """Park's record predates the platform (no email). An administrator links his account to it; his J2
    finds it by name, position and department and claims it with his address (PUT)."""
    person, record_id = legacy(world), world.record(email=None)["id"]
    j1_sign_up(world, person, "legacy")
    admin_links(world, person, record_id, "legacy")
    j = world.journey("legacy J2")
    eid = j2_sign_in_and_link(world, person, j=j)
    j.check("the employee id J2 settles on", eid, record_id)
    record = person.call(j, "GET", f"/api/employees/{record_id}")
    j.check("the legacy record's email after the claim", record.get("email"), person.email)


JOURNEYS: dict[str, Callable[[World], None]] = {
    "J1": journey_j1,
    "J2": journey_j2,
    "J3": journey_j3,
    "J4": journey_j4,
    "J5": journey_j5,
    "J6": journey_j6,
    "J7": journey_j7,
    "J8": journey_j8,
    "J9": journey_j9,
    "legacy": journey_legacy,
}

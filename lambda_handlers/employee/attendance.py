"""Attendance: one check-in per employee per calendar day, and the every-30th-day reward.

The Java service counted every call, so repeated clicks earned the 30th-day leave day early.
Here the DATABASE refuses a second check-in: migration 0003 added attendance.check_in_date and
the unique key (employee_id, check_in_date). A check-in inserts today's date and a duplicate-key
error becomes 409, rolling back the whole transaction (count and balance untouched). No
read-then-write: two concurrent check-ins cannot both see "not yet today".

"Today" is the calendar day in BUSINESS_TIMEZONE (default Asia/Seoul; the CDK passes the same
value to the migration function, which backfilled old rows with it). check_in_time stays UTC.
"""

import os
from datetime import UTC, date
from http import HTTPStatus
from zoneinfo import ZoneInfo

import pymysql
import repository
from repository import not_found, transaction
from validation import ApiError

REWARD_EVERY = 30  # every 30th check-in adds a leave day
# An unknown zone fails the import (the cold start), never a request later.
BUSINESS_TIMEZONE = ZoneInfo(os.environ.get("BUSINESS_TIMEZONE") or "Asia/Seoul")
# The key migration 0003_one_check_in_per_day creates (db_migrate is a separate bundle: kept in step by hand).
ONE_PER_DAY_KEY = "uq_attendance_employee_day"


class AlreadyCheckedIn(ApiError):
    def __init__(self):
        super().__init__(HTTPStatus.CONFLICT, "Already checked in today")


def business_day(moment_utc) -> date:
    """The calendar day in BUSINESS_TIMEZONE of a naive UTC datetime (as DATETIME(6) columns hold them)."""
    return moment_utc.replace(tzinfo=UTC).astimezone(BUSINESS_TIMEZONE).date()


def check_in(conn, employee_id: int) -> dict:
    with transaction(conn) as cur:
        # The row lock serializes check-ins of one employee, so the count below is exact; the
        # unique key, not this lock, is what refuses the second check-in of the day.
        row = repository.locked_employee(cur, employee_id)
        now = repository.now()
        try:
            cur.execute(
                "INSERT INTO attendance (employee_id, check_in_time, check_in_date, status, created_at)"
                " VALUES (%s, %s, %s, 'COMPLETED', %s)",
                (employee_id, now, business_day(now), now),
            )
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] == 1062 and ONE_PER_DAY_KEY in str(exc.args[1]):  # ER_DUP_ENTRY on that key
                raise AlreadyCheckedIn from None
            raise
        count = int(row["attendance"]) + 1
        reward = count % REWARD_EVERY == 0
        balance = float(row["balance"]) + (1.0 if reward else 0.0)
        cur.execute(
            "UPDATE employees SET attendance_count = %s, annual_leave_balance = %s WHERE id = %s",
            (count, balance, employee_id),
        )
    return {
        "attendanceCount": count,
        "questProgress": (count % REWARD_EVERY) * 100 // REWARD_EVERY,
        "rewardEarned": reward,
        "currentLeaveBalance": balance,
    }


def progress(conn, employee_id: int) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(attendance_count, 0) AS n FROM employees WHERE id = %s", (employee_id,))
        row = cur.fetchone()
    if row is None:
        raise not_found("Employee", employee_id)
    current = int(row["n"]) % REWARD_EVERY
    return {
        "attendanceCount": current,
        "targetCount": REWARD_EVERY,
        "progress": current * 100 // REWARD_EVERY,
        "nextRewardAt": REWARD_EVERY - current,
    }


def history(conn, employee_id: int) -> list:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, employee_id, check_in_time, check_out_time, work_hours, status, created_at FROM attendance"
            " WHERE employee_id = %s ORDER BY check_in_time DESC, id DESC",
            (employee_id,),
        )
        return [
            {
                "id": r["id"],
                "employeeId": r["employee_id"],
                "checkInTime": repository.iso(r["check_in_time"]),
                "checkOutTime": repository.iso(r["check_out_time"]),
                "workHours": r["work_hours"],
                "status": r["status"],
                "createdAt": repository.iso(r["created_at"]),
            }
            for r in cur.fetchall()
        ]

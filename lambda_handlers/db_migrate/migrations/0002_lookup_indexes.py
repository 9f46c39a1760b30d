"""Indexes for the lookups the handler makes (Hibernate created none): per employee, per quest.

Additive only (no column or type changes), so the old service could still run on the result.
Each index is created only if missing: MySQL DDL is not transactional, and a run that died
half-way must be able to finish on the next deploy.
"""

from yoyo import step

__depends__ = {"0001_baseline"}

INDEXES = [
    ("attendance", "ix_attendance_employee", "employee_id, check_in_time"),
    ("leaves", "ix_leaves_employee", "employee_id, created_at"),
    ("quest_progress", "ix_quest_progress_quest", "quest_id, status"),
    ("quest_progress", "ix_quest_progress_employee", "employee_id, quest_id"),
    ("quests", "ix_quests_department", "department, status"),
    ("quests", "ix_quests_created_by", "created_by"),
    ("employees", "ix_employees_department", "department, position"),
]


def apply(conn):
    cur = conn.cursor()
    for table, name, columns in INDEXES:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.statistics"
            " WHERE table_schema = DATABASE() AND table_name = %s AND index_name = %s",
            (table, name),
        )
        if cur.fetchone()[0] == 0:
            cur.execute(f"CREATE INDEX {name} ON {table} ({columns})")


def rollback(conn):
    cur = conn.cursor()
    for table, name, _ in INDEXES:
        cur.execute(f"DROP INDEX {name} ON {table}")


steps = [step(apply, rollback)]

"""`make bench-handler`: latency of the employee Lambda handler against a local MariaDB, and its cold import time.

A benchmark, not a test: it prints figures and asserts nothing about them. What it measures:

- cold import: a fresh Python process importing the function's app module as Lambda would
  (tracer on, as deployed), median of several runs;
- per route, p50/p95 of a handler call (event in, response out, SQL on a real server) at a few
  concurrency levels. Each concurrent worker is its own "container" (own module copy, own MySQL
  session), as Lambda runs one request per container; the threads share one CPython GIL and the
  machine, so higher levels mostly show database contention (row locks on one employee), not
  Lambda's scaling. The database is the migrated old schema with a few thousand rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROUTES = [
    ("GET /api/employees", "GET", "/api/employees", {}),
    ("GET /api/employees/{id}", "GET", "/api/employees/1", {"role": "internal"}),
    ("GET /api/employees/team", "GET", "/api/employees/team", {"query": {"department": "DEVELOPMENT"}}),
    ("GET /api/quests", "GET", "/api/quests", {}),
    ("GET /api/leaves/balance/{id}", "GET", "/api/leaves/balance/1", {}),
    # One check-in per day: after the warm-up every call is the refused second one (lock, unique key, 409).
    ("POST /api/attendance/check-in/{id} (409)", "POST", "/api/attendance/check-in/1", {"role": "owner"}),
    ("POST /api/employees/{id}/deduct-leave", "POST", "/api/employees/1/deduct-leave",
     {"role": "internal", "json_body": {"days": 0.001}}),
]  # fmt: skip


def cold_import_ms(runs: int) -> float:
    code = (
        "import sys, time; t = time.perf_counter(); "
        f"sys.path.insert(0, {str(REPO / 'lambda_handlers' / 'employee')!r}); import app; "
        "print((time.perf_counter() - t) * 1000)"
    )
    env = (
        os.environ
        | {
            "DB_SECRET_ARN": "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:erp/bench/mysql/employee_app",  # pragma: allowlist secret
            "AWS_DEFAULT_REGION": "ap-northeast-2",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",  # tracer on, as deployed
            "POWERTOOLS_SERVICE_NAME": "employee-service",
        }
    )
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def seed_more(server, employees: int = 500, quests: int = 60, attendance: int = 3000) -> None:
    with server.admin_connection(database=server.database) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO employees (name, email, department, position, annual_leave_balance, attendance_count,"
            " created_at) VALUES (%s, %s, %s, 'STAFF', 15.0, 3, NOW(6))",
            [(f"Bench {i}", f"bench{i}@example.com", ("DEVELOPMENT", "SALES", "HR")[i % 3]) for i in range(employees)],
        )
        cur.executemany(
            "INSERT INTO quests (title, description, reward_days, department, created_by, status, created_at)"
            " VALUES (%s, 'bench', 1.0, 'DEVELOPMENT', 2, 'AVAILABLE', NOW(6))",
            [(f"Quest {i}",) for i in range(quests)],
        )
        cur.executemany(
            "INSERT INTO quest_progress (quest_id, employee_id, status) VALUES (%s, %s, 'IN_PROGRESS')",
            [(3 + i % quests, 4 + i) for i in range(quests * 3)],
        )
        cur.executemany(
            "INSERT INTO attendance (employee_id, check_in_time, status, created_at)"
            " VALUES (%s, NOW(6), 'COMPLETED', NOW(6))",
            [(4 + i % employees,) for i in range(attendance)],
        )
        cur.execute("UPDATE employees SET annual_leave_balance = 1000000 WHERE id = 1")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_route(containers, call, method, path, options, concurrency: int, requests: int) -> list[float]:
    workers = containers[:concurrency]
    per_worker = max(1, requests // concurrency)
    barrier = threading.Barrier(concurrency)

    def work(app_module) -> list[float]:
        app_module.db.connection()
        call(app_module, method, path, **options)  # warm: this container's session and caches
        barrier.wait()
        timings = []
        for _ in range(per_worker):
            start = time.perf_counter()
            response = call(app_module, method, path, **options)
            timings.append((time.perf_counter() - start) * 1000)
            if response.status >= 400 and not (response.status == 409 and "check-in" in path):
                raise RuntimeError(f"{method} {path}: {response.status} {response.body}")
        return timings

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return [t for chunk in pool.map(work, workers) for t in chunk]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,4,16", help="concurrency levels (comma-separated)")
    parser.add_argument("--requests", type=int, default=160, help="requests per route and level")
    parser.add_argument("--import-runs", type=int, default=5)
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]

    print(
        f"cold import of the handler module: {cold_import_ms(args.import_runs):.0f} ms (median of {args.import_runs})"
    )

    import contextlib
    import io
    import logging
    import warnings

    from tests.handlers import conftest as fx
    from tests.support.mariadb import start_mariadb

    logging.disable(logging.INFO)  # the handler's INFO audit lines would flood the terminal
    warnings.simplefilter("ignore")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # no EMF lines on stdout
    server = start_mariadb()
    try:
        import secrets as pysecrets

        server.master_password = pysecrets.token_urlsafe(24)
        server.app_password = pysecrets.token_urlsafe(24)
        with server.admin_connection() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{fx.MASTER_USER}'@'%%' IDENTIFIED BY %s", (server.master_password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{fx.MASTER_USER}'@'%' WITH GRANT OPTION")
        environment = fx.aws_environment(server)
        environment.__enter__()
        fx.reset_old_database(server)
        seed_more(server)
        with contextlib.redirect_stdout(io.StringIO()):
            fx.load_function(fx.MIGRATE_DIR).app.handler({}, None)
        employee = fx.load_function(fx.EMPLOYEE_DIR)
        containers = [fx.load_app_copy(employee, f"bench{i}") for i in range(max(levels))]
        print(f"\n{'route':40} " + " ".join(f"{'c=' + str(c) + ' p50/p95 ms':>20}" for c in levels))
        results = {}
        for name, method, path, options in ROUTES:
            cells = []
            for level in levels:
                timings = run_route(containers, fx.call, method, path, options, level, args.requests)
                results[(name, level)] = (percentile(timings, 50), percentile(timings, 95))
                cells.append(f"{results[(name, level)][0]:9.1f} /{results[(name, level)][1]:7.1f}")
            print(f"{name:40} " + " ".join(f"{c:>20}" for c in cells))
        environment.__exit__(None, None, None)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

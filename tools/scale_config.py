"""A config directory whose dev environment runs N services (svc-01 ... svc-NN), derived from config/dev.yaml.

The Elice seed runs twelve services; this is how the tests and `make bench` check that the platform
synthesizes at that size without committing a twelfth-service config. Container Insights is switched
on so the restart alarm (off in dev) is built too. Synthesize it with
`python -m tools.synth -c env=dev -c config_dir=DIR`.
"""

from __future__ import annotations

import argparse
import shutil
import string
import sys
from pathlib import Path

import yaml

from config import CONFIG_DIR
from config.base import EMPLOYEES_PATH
from config.sections import EmployeeFunctionConfig

FIRST_PORT = 8101


def scaled_services(count: int) -> list[dict]:
    """Distinct names, ports and routes (routes allow only letters and dashes: /api/svc-a, /api/svc-b, ...)."""
    if not 1 <= count <= len(string.ascii_lowercase):
        raise ValueError(f"1 to {len(string.ascii_lowercase)} services, not {count}")
    return [
        {
            "name": f"svc-{n:02d}",
            "port": FIRST_PORT + n - 1,
            "routes": [{"path": f"/api/svc-{string.ascii_lowercase[n - 1]}"}],
            "image": {"repository": f"erp/svc-{n:02d}", "tag": "1.0.0"},
            "replicas": 1,
            "min_replicas": 1,
            "max_replicas": 2,
        }
        for n in range(1, count + 1)
    ]


def write_config_dir(target: Path, count: int, source: Path = CONFIG_DIR) -> Path:
    """`target` with every committed config file, dev.yaml replaced by its `count`-service variant."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.yaml"):
        shutil.copyfile(path, target / path.name)
    dev = yaml.safe_load((source / "dev.yaml").read_text(encoding="utf-8"))
    dev["services"] = scaled_services(count)
    # The ERP's own restricted routes name its approval service; the scaled API keeps the employee ones.
    dev["api"] = {
        **dev.get("api", {}),
        "restricted_routes": [{"method": "DELETE", "path": f"{EMPLOYEES_PATH}/{{proxy+}}", "groups": ["admin"]}],
    }
    dev["observability"] = {
        **dev.get("observability", {}),
        "container_insights": True,
        # Every gateway route in exactly one SLO objective (config refuses otherwise; at most 5 objectives).
        "slo": {
            "objectives": [
                {"name": "services", "paths": [s["routes"][0]["path"] for s in dev["services"]]},
                {"name": "employees", "paths": [r.path for r in EmployeeFunctionConfig.model_fields["routes"].default]},
            ]
        },
    }
    # The nodes grow with the services, or synth's capacity check refuses the stage (config/capacity.py): a t3.medium
    # holds about two services at their maximum beside the system pods (`make capacity`).
    for group in dev["cluster"]["node_groups"]:
        group["max_size"] = max(group["max_size"], -(-count // 2))
    (target / "dev.yaml").write_text(yaml.safe_dump(dev, sort_keys=False), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    parser.add_argument("--services", type=int, default=12)
    args = parser.parse_args(argv)
    print(write_config_dir(args.target, args.services))
    return 0


if __name__ == "__main__":
    sys.exit(main())

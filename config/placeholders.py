"""Example values that must be replaced before anything is deployed (README: First deploy into fresh accounts).

The committed config synthesizes for review and tests, but its account ids, ARNs, address ranges and
domains are examples. They are recognised by rule, not by a list of today's values, so a new example in the
same style is caught too:
- an AWS account id of one repeated digit (111111111111), alone or inside an ARN;
- an address range inside the documentation ranges of RFC 5737 (192.0.2.0/24, 198.51.100.0/24,
  203.0.113.0/24);
- a mail address, URL, domain or GitHub owner under RFC 2606's reserved names (example.com/.net/.org, the
  .example and .test top-level domains, example-org);
- an id of zeros only (the connection's UUID, the NAT instance's AMI in cdk.context.json).

A synth that is going to deploy (`make deploy`, `make diff`, the pipeline, a raw `cdk deploy`) refuses the
first one with one line naming the file, the field and the rule; `make synth` for review says how many
there are and deploys nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

# The context key that decides: "refuse" (the default: whatever deploys) or "warn" (review synth, tests).
CONTEXT_KEY = "erp:placeholders"
DOCUMENTATION_RANGES = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = (".example", ".test", ".invalid")
EXAMPLE_OWNERS = ("example-org", "example")
REPEATED_ACCOUNT = re.compile(r"^(\d)\1{11}$")
ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):")
ZERO_ID = re.compile(r"(^|[/:-])0{8}-0{4}-0{4}-0{4}-0{12}$|^ami-0{8,17}$")
DOMAIN = re.compile(r"^([a-z0-9-]+\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class Placeholder:
    file: str  # e.g. config/dev.yaml
    field: str  # dotted path, list items by index (cluster.endpoint_public_cidrs.0)
    value: str
    rule: str

    @property
    def leaf(self) -> str:
        """The field without list indexes: the name the README's first-deploy steps use."""
        return ".".join(part for part in self.field.split(".") if not part.isdigit())

    def line(self) -> str:
        return (
            f"{self.file}: {self.field}: {self.value!r} is a placeholder ({self.rule}): replace it before deploying "
            "(README: First deploy into fresh accounts)"
        )


def _reserved_domain(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in RESERVED_DOMAINS) or host.endswith(RESERVED_TLDS)


def rule_for(field: str, value: str) -> str | None:
    """Why `value` is a placeholder, or None."""
    leaf = field.split(".")[-1] if not field.split(".")[-1].isdigit() else field.split(".")[-2]
    if REPEATED_ACCOUNT.match(value):
        return "an account id of one repeated digit"
    arn = ARN_ACCOUNT.match(value)
    if arn and REPEATED_ACCOUNT.match(arn.group(1)):
        return "an ARN in an account id of one repeated digit"
    if ZERO_ID.search(value):
        return "an id of zeros only"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        network = None
    if network is not None:
        documentation = any(
            network.version == r.version and network.subnet_of(r) for r in DOCUMENTATION_RANGES
        )  # fmt: skip
        return "an RFC 5737 documentation address range" if documentation else None
    if "@" in value:
        return "a mail address at an RFC 2606 example domain" if _reserved_domain(value.rpartition("@")[2]) else None
    if "://" in value:
        host = urlsplit(value).hostname or ""
        return "a URL of an RFC 2606 example domain" if _reserved_domain(host) else None
    if leaf == "repository" and value.split("/")[0].lower() in EXAMPLE_OWNERS:
        return "an example GitHub owner"
    if DOMAIN.match(value.lower()) and _reserved_domain(value):
        return "an RFC 2606 example domain"
    return None


def _walk(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}.{index}")
    elif isinstance(node, str | int) and not isinstance(node, bool):
        yield path, str(node)


def find_placeholders(
    config_dir: Path, context: dict | None = None, names: list[str] | None = None
) -> list[Placeholder]:
    """Every placeholder in the config files (all of them, or `names` and the toolchain) and in the lookups."""
    files = sorted(config_dir.glob("*.yaml"))
    if names is not None:
        files = [f for f in files if f.stem in {*names, "toolchain"}]
    found = []
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        shown = f"{config_dir.name}/{path.name}"
        found += [Placeholder(shown, f, v, r) for f, v in _walk(data) if (r := rule_for(f, v))]
    for key, value in (context or {}).items():
        if key.startswith("ami:") and isinstance(value, str) and (rule := rule_for(key, value)):
            found.append(Placeholder("cdk.context.json", key, value, f"{rule}: the lookup was never refreshed"))
    return found

"""What an estimate is made of: template resources, priced lines, unpriced and free items, the totals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from config.models import EnvironmentConfig
from tools.cost.prices import HOURS_PER_MONTH, Price, PriceBook

ENV_WIDE = "(env-wide)"


@dataclass(eq=False)  # identity: rank() finds a resource among equal-looking ones
class Resource:
    stack: str
    logical_id: str  # resources of nested stacks read "Parent/Child"
    type: str
    props: dict
    template: dict  # its own template, to follow Refs to siblings

    @property
    def local_id(self) -> str:
        return self.logical_id.rsplit("/", 1)[-1]

    def siblings(self, rtype: str) -> Iterator[dict]:
        return (r for r in self.template.get("Resources", {}).values() if r.get("Type") == rtype)

    def unpriced(self, reason: str) -> Unpriced:
        return Unpriced(self.stack, self.logical_id, self.type, reason)


@dataclass
class Line:
    stack: str
    logical_id: str
    type: str
    item: str
    quantity: float
    quantity_unit: str
    price: Price
    hours: float | None
    usd: float

    def formula(self) -> str:
        qty = f"{_num(self.quantity)} {self.quantity_unit}".rstrip()
        text = f"{qty} × ${_rate(self.price.usd)}/{self.price.unit}"
        if self.hours is not None:
            text += f" × {_num(self.hours)}" + (" h" if _hourly(self.price) else f"/{HOURS_PER_MONTH:g} h")
        return text


@dataclass
class Unpriced:
    stack: str
    logical_id: str
    type: str
    reason: str


@dataclass
class Free:
    why: str


@dataclass
class Estimate:
    env: str
    region: str
    currency: str
    prices_as_of: str
    stacks: list[str]
    lines: list[Line] = field(default_factory=list)
    unpriced: list[Unpriced] = field(default_factory=list)
    free: Counter = field(default_factory=Counter)
    assumptions: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def subtotals(self) -> dict[str, float]:
        totals = dict.fromkeys(self.stacks, 0.0)
        for line in self.lines:
            totals[line.stack] = totals.get(line.stack, 0.0) + line.usd
        return totals

    @property
    def approximate(self) -> bool:
        return any(line.price.approximate for line in self.lines)


@dataclass
class Context:
    env: EnvironmentConfig
    book: PriceBook
    resources: list[Resource]
    node_hours: float
    db_hours: float
    api_functions: int

    def count(self, rtype: str) -> int:
        return sum(1 for r in self.resources if r.type == rtype)

    def rank(self, resource: Resource) -> int:
        """Position among resources of its type: free tiers go to the first ones."""
        return [r for r in self.resources if r.type == resource.type].index(resource)


Result = Line | Unpriced | Free


def _hourly(price: Price) -> bool:
    return price.unit.endswith("hour")


def _num(value: float, places: int = 4) -> str:
    return f"{value:,.{places}f}".rstrip("0").rstrip(".")


def _rate(usd: float) -> str:
    """A unit price: all its digits, but at least cents."""
    text = f"{usd:.10f}".rstrip("0")
    return text + "0" * max(0, 2 - len(text.split(".")[1]))

"""The price sheet: tools/cost/prices-ap-northeast-2.yaml read into typed prices, each with its source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PRICE_FILE = Path(__file__).with_name("prices-ap-northeast-2.yaml")
HOURS_PER_MONTH = 730.0


class Unpriceable(Exception):
    """This resource (or part of it) cannot be priced; the message says why."""


@dataclass(frozen=True)
class Price:
    usd: float | None
    unit: str
    source: str
    as_of: str

    @property
    def level(self) -> str:
        return self.source.split(":", 1)[0].strip()

    @property
    def approximate(self) -> bool:
        return self.level == "C"


class PriceBook:
    def __init__(self, path: Path = PRICE_FILE) -> None:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data["hours_per_month"] != HOURS_PER_MONTH:
            raise ValueError(f"{path.name}: monthly prices must assume {HOURS_PER_MONTH:g} hours per month")
        self.as_of = str(data["as_of"])
        self.currency = data["currency"]
        self.region = data["region"]
        self._prices = {
            (service, item): Price(p["usd"], p["unit"], p["source"], str(p["as_of"]))
            for service, items in data["prices"].items()
            for item, p in items.items()
        }

    def get(self, service: str, item: str) -> Price:
        price = self._prices.get((service, item))
        if price is None:
            raise Unpriceable(f"no {service} price for {item!r} in {PRICE_FILE.name}")
        if price.usd is None:
            raise Unpriceable(f"{service} {item}: {price.source}")
        return price

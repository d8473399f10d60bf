"""Scrape a running server's ``/metrics`` as Prometheus would, and read samples from it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample by (name, labels), and the metric families' types."""

    samples: Mapping[SampleKey, float]
    types: Mapping[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the scrape has none (a counter not yet counted)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]


async def scrape(session: aiohttp.ClientSession, base: str) -> Scrape:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: dict[SampleKey, float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, types)


async def scrape_until(
    session: aiohttp.ClientSession,
    base: str,
    condition: Callable[[Scrape], bool],
    give_up_after: float = 20.0,
) -> Scrape:
    """Scrape until ``condition`` holds (a count another task updates); fail if it never
    does. Nothing is asserted about time: the limit only keeps a broken test from hanging."""
    for _ in range(int(give_up_after / 0.05)):
        found = await scrape(session, base)
        if condition(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"the scrape never satisfied {condition}")

"""The counts of workers that died, kept by the parent (``passage.workers.retired``)."""

from __future__ import annotations

from passage.live import TurnCounters
from passage.workers.retired import Family, RetiredCounts

RELAYED: Family = (
    "passage_turn_relayed_bytes", "Bytes relayed.", "counter",
    (("passage_turn_relayed_bytes_total", (("direction", "to_peer"),), 160.0),),
)  # fmt: skip
LIVE: Family = (
    "passage_turn_allocations", "Allocations now.", "gauge",
    (("passage_turn_allocations", (("transport", "udp"),), 2.0),),
)  # fmt: skip
LATENCY: Family = (
    "passage_usage_flush_seconds", "Flush latency.", "histogram",
    (("passage_usage_flush_seconds_bucket", (("le", "+Inf"),), 3.0),
     ("passage_usage_flush_seconds_count", (), 3.0),
     ("passage_usage_flush_seconds_sum", (), 0.5),
     ("passage_usage_flush_seconds_created", (), 1.7e9)),
)  # fmt: skip


def counters(started: int, drops: dict[str, int]) -> TurnCounters:
    return TurnCounters({"udp": 1}, started, started - 1, {401: started}, drops, {})


def test_two_deaths_add_up_and_gauges_are_not_kept() -> None:
    retired = RetiredCounts()
    retired.fold((RELAYED, LIVE, LATENCY), counters(3, {"no_permission": 2}))
    retired.fold((RELAYED,), counters(5, {"no_permission": 1, "malformed": 4}))
    families = {name: (kind, samples) for name, _, kind, samples in retired.families()}
    assert set(families) == {"passage_turn_relayed_bytes", "passage_usage_flush_seconds"}
    assert families["passage_turn_relayed_bytes"][1] == (
        ("passage_turn_relayed_bytes_total", (("direction", "to_peer"),), 320.0),
    )
    kind, samples = families["passage_usage_flush_seconds"]
    assert kind == "histogram"
    assert [name for name, _, _ in samples] == [
        "passage_usage_flush_seconds_bucket",
        "passage_usage_flush_seconds_count",
        "passage_usage_flush_seconds_sum",
    ]
    kept = retired.counters()
    assert (kept.allocations_started, kept.allocations_ended) == (8, 6)
    assert kept.live_by_transport == {}
    assert kept.errors == {401: 8}
    assert kept.drops == {"no_permission": 3, "malformed": 4}


def test_a_worker_that_never_reported_adds_nothing() -> None:
    retired = RetiredCounts()
    retired.fold((), None)
    assert retired.families() == ()
    assert retired.counters() == TurnCounters({}, 0, 0, {}, {}, {})

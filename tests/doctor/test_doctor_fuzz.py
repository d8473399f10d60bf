"""Property tests of what the doctor parses: returning probes never raise.

(ICE URLs are parsed by :mod:`passage.ice_uris`, property-tested in tests/test_ice_uris.py.)
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from passage.doctor.stats import LoopMeter


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_any_bytes_back_are_a_probe_or_ignored(datagrams: list[bytes]) -> None:
    meter = LoopMeter(b"session!", duration=0.1, interval=0.02)
    meter.start(0.0)
    meter.handle_timer(0.05)
    for data in datagrams:
        meter.received(data, 0.06)
    stats = meter.stats()
    assert 0 <= stats.received <= stats.sent == 3

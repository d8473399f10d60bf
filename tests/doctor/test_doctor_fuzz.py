"""Property tests of what the doctor parses: ICE URLs and returning probes never raise."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from passage.addresses import Transport
from passage.doctor.stats import LoopMeter
from passage.doctor.targets import parse_ice_url

HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_a_url_or_none(text: str) -> None:
    found = parse_ice_url(text)
    assert found is None or 0 < found.port < 65536


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["stun", "turn", "turns"]),
    HOSTS,
    st.integers(1, 65535),
    st.sampled_from([None, "udp", "tcp"]),
)
def test_well_formed_urls_parse_to_their_parts(
    scheme: str, host: str, port: int, transport: str | None
) -> None:
    url = f"{scheme}:{host}:{port}" + (f"?transport={transport}" if transport else "")
    found = parse_ice_url(url)
    if scheme == "turns" and transport == "udp":
        assert found is None  # TURN over DTLS: not probed
        return
    assert found is not None and (found.scheme, found.host, found.port) == (scheme, host, port)
    expected = Transport.TLS if scheme == "turns" else Transport(transport or "udp")
    assert found.transport is expected


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

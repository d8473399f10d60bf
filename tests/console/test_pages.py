"""Pages drawn from the API's answers: what they show, escaped, and charts with their figures."""

from __future__ import annotations

import re

from passage.console.charts import Series, bar_chart, line_chart
from passage.console.html import bytes_text, duration_text, page, signin_page
from passage.console.pages import nodes_fragment, relays_rows, settings_page, throughput_fragment

HOSTILE = '<script>alert("x")</script>'


def allocation(**changes: object) -> dict[str, object]:
    return {
        "id": "abc", "username": "alice", "identity": "alice", "transport": "udp",
        "clientAddress": "127.0.0.1:5000", "relayedAddresses": ["127.0.0.1:40000"],
        "peers": ["127.0.0.1"], "channels": 1, "bytesToPeer": 2500, "bytesFromPeer": 10,
        "packetsToPeer": 3, "packetsFromPeer": 1, "startedAt": "2026-12-07T10:00:00Z",
        "ageSeconds": 75, "expiresAt": "2026-12-07T10:10:00Z", **changes,
    }  # fmt: skip


def test_a_relay_row_shows_transport_addresses_bytes_and_age() -> None:
    html = relays_rows({"value": [allocation()]})
    assert "UDP" in html and "127.0.0.1:5000" in html and "127.0.0.1:40000" in html
    assert "2.5 KB" in html and "1m 15s" in html
    assert 'data-sort="2500"' in html  # sorted by the number, not its text
    assert 'data-method="DELETE" data-path="/live/allocations/abc"' in html
    assert "No allocation is live" in relays_rows({"value": []})


def test_what_clients_chose_is_escaped() -> None:
    html = relays_rows({"value": [allocation(identity=HOSTILE, id=f'"{HOSTILE}')]})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    setting = {"name": "n", "flag": "--n", "value": HOSTILE, "secret": False}
    assert "<script>" not in settings_page({"value": [setting]})
    assert "<script>alert" not in signin_page(HOSTILE, link_token=HOSTILE)
    framed = page("overview", HOSTILE, f'"{HOSTILE}', "<p>body</p>")
    assert framed.count("<script") == 1  # the console's own, by src


def test_numbers_read_as_operators_expect() -> None:
    assert bytes_text(999) == "999 B"
    assert bytes_text(1500) == "1.5 KB"
    assert bytes_text(2_000_000_000) == "2.0 GB"
    assert duration_text(3725) == "1h 2m"
    assert duration_text(42) == "42s"


def test_the_throughput_chart_has_a_point_per_step_and_its_figures() -> None:
    points = [{"start": "t", "bytesToPeer": 0, "bytesFromPeer": 0} for _ in range(360)]
    points[-1] = {"start": "t", "bytesToPeer": 4000, "bytesFromPeer": 1000}
    html = throughput_fragment({"value": points})
    assert 'data-total-bytes="5000"' in html and 'data-points="1"' in html
    lines = re.findall(r'<polyline class="line s(\d)" points="([^"]+)"', html)
    assert [index for index, _ in lines] == ["0", "1"]
    assert all(len(coordinates.split()) == 360 for _, coordinates in lines)
    assert "solid" in html and "dashed" in html  # the legend says which line is which


def test_charts_without_data_still_draw() -> None:
    assert 'data-points="0"' in line_chart("c", "empty", [], [Series("a", [])])
    bars = bar_chart("d", "two days", ["x", "y"], [Series("a", [0, 5000]), Series("b", [1000, 0])])
    assert bars.count("<rect") == 4
    assert 'fill="url(#d-hatch)"' in bars  # the second series is hatched, not only coloured


def test_the_node_list_shows_only_for_several_nodes() -> None:
    node = {"name": "a", "region": "eu", "turnHost": "192.0.2.1", "turnPort": 3478,
            "allocations": 3, "draining": False, "thisNode": True}  # fmt: skip
    assert nodes_fragment({"value": []}) == ""
    assert nodes_fragment({"value": [node]}) == ""
    html = nodes_fragment({"value": [node, node | {"name": "b", "draining": True,
                                                   "thisNode": False}]})  # fmt: skip
    assert "a (this node)" in html and "draining" in html and "serving" in html
    assert "192.0.2.1:3478" in html

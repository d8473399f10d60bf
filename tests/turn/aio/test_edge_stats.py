"""The once-a-minute stats line: written when something changed, silent otherwise."""

from __future__ import annotations

import logging
import random

import pytest

from passage.endpoint import RelayAddresses
from passage.turn.aio.edge import TurnEdge
from passage.turn.auth import StaticUsers
from passage.turn.config import TurnConfig
from passage.turn.server import TurnServer


def make_edge() -> TurnEdge:
    core = TurnServer(TurnConfig(), StaticUsers({}), nonce_key=b"k" * 32, rng=random.Random(7))
    relays = RelayAddresses(bind={1: "127.0.0.1"}, advertised={1: "127.0.0.1"},
                            port_range=(50000, 50010))  # fmt: skip
    return TurnEdge(core, relays)


def test_stats_line_names_drops_and_errors_and_is_not_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    edge = make_edge()
    caplog.set_level(logging.INFO, logger="passage.turn")
    edge._log_stats()
    assert caplog.records == []  # nothing happened yet
    edge.core.metrics.drops["no_permission"] += 3
    edge.core.metrics.errors[403] += 1
    edge._log_stats()
    (record,) = caplog.records
    message = record.getMessage()
    assert "0 allocations live" in message
    assert "403=1" in message and "no_permission=3" in message
    edge._log_stats()
    assert len(caplog.records) == 1  # unchanged: no second line

"""Fixtures for the TURN core tests: a virtual clock, a server, a client."""

from __future__ import annotations

import pytest
from turn_harness import Client, Clock, make_server, new_client

from passage.turn.server import TurnServer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server() -> TurnServer:
    return make_server()


@pytest.fixture
def client(server: TurnServer, clock: Clock) -> Client:
    return new_client(server, clock)

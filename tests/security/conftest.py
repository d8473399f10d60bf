"""Event loops for the security tests: the front door's run under asyncio's and uvloop's.

``passage serve`` runs on uvloop when it is installed, and uvloop's transports
differ from asyncio's where the front door reaches in (when reading starts,
what a transport is): the tests of the HTTP limits run on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

BOTH_LOOPS = ("test_security_http_connections.py", "test_security_http_timeouts.py")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name in BOTH_LOOPS:
        try:
            import uvloop
        except ImportError:
            return factories
        factories["uvloop"] = uvloop.new_event_loop
    return factories

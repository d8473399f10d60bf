"""passage.mounts: what the API port serves, and the names it keeps from hybrid connections."""

from __future__ import annotations

from pathlib import Path

from api_harness import api_server
from passage.api.openapi import template_of
from passage.api.routes import ROUTES
from passage.mounts import CLAIMS, RESERVED_NAMES


def test_reserved_names_are_lower_case_first_segments() -> None:
    assert all(name == name.lower() and "/" not in name for name in RESERVED_NAMES)


def test_every_api_path_signal_hc_and_the_console_are_reserved() -> None:
    """A hybrid connection under one of them would never see its HTTP senders."""
    firsts = {template_of(route.path).split("/")[1].lower() for route in ROUTES}
    assert firsts | {"signal", "$hc", "console"} == set(RESERVED_NAMES)
    assert RESERVED_NAMES["signal"] == "signaling"
    assert RESERVED_NAMES["console"] == "the console"
    assert RESERVED_NAMES["usage"] == "the Passage API"


def test_claims_are_asked_signal_first() -> None:
    """``/signal/`` before anything, so no hybrid connection can shadow it."""
    assert [claim.owner for claim in CLAIMS][0] == "signaling"


async def test_the_running_front_door_reserves_exactly_the_claims(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        assert dict(api.running.front_door.reserved_names) == RESERVED_NAMES

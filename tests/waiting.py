"""Waiting for something another task or process makes true, without timing it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(
    condition: Callable[[], bool], give_up_after: float = 20.0, step: float = 0.02
) -> None:
    """Return once ``condition()`` holds; fail the test if it does not within ``give_up_after`` s.

    The limit only keeps a broken test from hanging: nothing is asserted about time.
    """
    for _ in range(max(1, int(give_up_after / step))):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"still not true after {give_up_after} s: {condition}")

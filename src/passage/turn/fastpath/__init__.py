"""The TURN hot path in C, when it was built: ``passage serve --fast-path`` (docs/architecture.md).

``_router.c`` is a CPython extension that setup.py builds when a C compiler is
there, and skips (with a warning) when not: :data:`Router` is None then, and
the pure-Python relay runs. Nothing but :mod:`passage.turn.aio.fast_path`
imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from passage.turn.fastpath._router import Router as Router
else:
    try:
        from passage.turn.fastpath._router import Router
    except ImportError:  # built without a compiler: the pure-Python relay
        Router = None

__all__ = ["Router", "available"]


def available() -> bool:
    """Whether the extension was built and imports."""
    return Router is not None

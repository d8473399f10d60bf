"""Signaling's aiohttp adapter: ``/signal/{room}`` WebSockets over :mod:`passage.signal`."""

from passage.signal.aio.server import SIGNAL_PATHS, SignalingServer

__all__ = ["SIGNAL_PATHS", "SignalingServer"]

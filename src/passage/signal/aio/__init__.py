"""Signaling's aiohttp adapter: ``/signal/{room}`` WebSockets over :mod:`passage.signal`."""

from passage.signal.aio.server import SIGNAL_PREFIX, SignalingServer, is_signal_path

__all__ = ["SIGNAL_PREFIX", "SignalingServer", "is_signal_path"]

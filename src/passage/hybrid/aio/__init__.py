"""The Hybrid Connections relay: the aiohttp adapter over the pure core in :mod:`passage.hybrid`.

:mod:`.relay` (``HybridRelay``) serves listeners' control channels, WebSocket
and HTTP senders and the rendezvous between them; :mod:`.channel` holds what
the relay keeps per listener and per waiting sender.
"""

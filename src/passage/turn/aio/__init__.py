"""The TURN server's asyncio adapter: sockets in, the core in :mod:`passage.turn` fed, bytes out.

:mod:`.edge` (``TurnEdge``) carries out the core's actions, re-arms its timer
and flushes usage; :mod:`.listeners` holds the client-facing UDP, TCP and TLS
sockets and the client → peer hot path; :mod:`.relay_sockets` binds relay
sockets and carries peer data back to clients.
"""

"""The front door: one HTTP(S) server per listener, and the registry of who answers which path.

Every product served over HTTP (the management API, the Hybrid Connections
relay, signaling) registers what it answers, and none of them knows the
others: :class:`~passage.frontdoor.routes.Router` picks the product for each
request, :class:`~passage.frontdoor.server.FrontDoor` runs the aiohttp server
on every listener and answers a product's failure with a JSON 500. The
names that prefixes and exact paths claim are reserved
(:func:`~passage.frontdoor.routes.reserved_names`): a hybrid connection may
not take one. ``passage.mounts`` is the list of what the API port serves.

Every connection is held to the door's
:class:`~passage.http_limits.HttpLimits` (:mod:`~passage.frontdoor.guard`):
caps in total and per client address, a reserve of file descriptors for the
other listeners, the TLS handshake, request-head, idle, body-progress and
stalled-response timeouts, and the sizes of a request head. Every answered
request is counted by route and status, timed, and with ``--access-log``
logged (:mod:`~passage.frontdoor.access`); the operators' listener
(``passage.telemetry``) is a front door of its own.
"""

from passage.frontdoor.answers import error_response
from passage.frontdoor.routes import (
    Handler,
    Paths,
    Prefix,
    Resolver,
    Router,
    reserved_names,
)
from passage.frontdoor.server import FrontDoor, IncompleteBody, read_body

__all__ = [
    "FrontDoor",
    "Handler",
    "IncompleteBody",
    "Paths",
    "Prefix",
    "Resolver",
    "Router",
    "error_response",
    "read_body",
    "reserved_names",
]

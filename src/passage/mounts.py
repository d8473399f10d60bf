"""What the API port serves, product by product, in the order the front door asks.

1. ``/signal/...``: signaling, before anything else, so no hybrid connection
   can shadow it;
2. ``/$hc/...``: the Hybrid Connections relay's WebSockets (listeners,
   senders, rendezvous);
3. the management API's routes, which win over a hybrid connection of the
   same name;
4. a path under a registered hybrid connection: the relay's HTTP senders;
5. anything else: the management API's 404.

``/console/...`` (the web console) is an exact-path claim beside the API's.

:data:`CLAIMS` is the one list of what is served by prefix or exact path, so
:data:`RESERVED_NAMES`, the first path segments no hybrid connection may
take, is the same for ``passage serve`` and ``passage hc``. Assembly: it
names every HTTP product; the products know only the front door.
"""

from __future__ import annotations

from passage.api.routes import API_PATHS
from passage.api.server import ApiServer
from passage.console.aio import CONSOLE_PATHS, Console
from passage.frontdoor import FrontDoor, Paths, Prefix, reserved_names
from passage.frontdoor.guard import Descriptors
from passage.http_limits import HttpLimits
from passage.hybrid.aio.relay import HYBRID_CONNECTION_PATHS, WEBSOCKET_PATHS, HybridRelay
from passage.signal.aio import SIGNAL_PATHS, SignalingServer

__all__ = ["CLAIMS", "RESERVED_NAMES", "front_door"]

CLAIMS: tuple[Prefix | Paths, ...] = (SIGNAL_PATHS, WEBSOCKET_PATHS, API_PATHS, CONSOLE_PATHS)
"""Every prefix and exact path the API port serves, in the order they are asked."""

RESERVED_NAMES = reserved_names(CLAIMS)
"""First path segment → who serves it: names a hybrid connection may not take."""


def front_door(
    api: ApiServer,
    relay: HybridRelay,
    signaling: SignalingServer,
    console: Console | None = None,
    *,
    limits: HttpLimits | None = None,
    descriptors: Descriptors | None = None,
    access_log: bool = False,
) -> FrontDoor:
    """The API port's front door with every product on it (listeners are added by the app);
    ``access_log``: one line per answered request."""
    door = FrontDoor(limits=limits, descriptors=descriptors, access_log=access_log)
    door.add(SIGNAL_PATHS, signaling.websocket)
    door.add(WEBSOCKET_PATHS, relay.websocket)
    door.add(API_PATHS, api.handle)
    door.add(CONSOLE_PATHS, (console or Console(api)).handle)
    door.add_resolver(HYBRID_CONNECTION_PATHS, relay.handler_for)
    door.set_fallback(API_PATHS.owner, api.handle)
    return door

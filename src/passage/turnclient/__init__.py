"""A TURN client (RFC 8656): a sans-IO core, and its asyncio adapter :mod:`passage.turnclient.aio`.

The core (:mod:`.client`, :mod:`.transactions`) imports the codec and nothing
else, and does no I/O: it reads no clock and draws no randomness (the caller
passes ``now`` and a source of transaction IDs). ``passage doctor`` and the
test suite drive it through the adapter.
"""

from .client import (
    UDP,
    Answered,
    Credentials,
    Dropped,
    Event,
    Failed,
    FailureReason,
    Relayed,
    RequestId,
    TryAlternate,
    TurnClientCore,
    error_code,
    relayed_addresses,
    try_alternate,
)
from .transactions import RTO, ClientTransactions

__all__ = [
    "RTO",
    "UDP",
    "Answered",
    "ClientTransactions",
    "Credentials",
    "Dropped",
    "Event",
    "Failed",
    "FailureReason",
    "Relayed",
    "RequestId",
    "TryAlternate",
    "TurnClientCore",
    "error_code",
    "relayed_addresses",
    "try_alternate",
]

"""The web console's pure side: who is signed in, and what proves it.

:mod:`.signin` checks an access key as an operator pastes it (the key, or the
whole connection string) against the node's keys in constant time;
:mod:`.links` makes and redeems the one-time sign-in links ``passage
console-link`` prints; :mod:`.sessions` keeps the sessions (idle and absolute
expiry, a bound on how many, the CSRF token of each). Time and random bytes
are passed in; :mod:`passage.console.aio` serves the pages over them.
"""

from passage.console.links import LINK_LIFETIME, LinkBook, mint_link
from passage.console.sessions import Session, SessionLimits, Sessions
from passage.console.signin import key_named_by, pasted_key

__all__ = [
    "LINK_LIFETIME",
    "LinkBook",
    "Session",
    "SessionLimits",
    "Sessions",
    "key_named_by",
    "mint_link",
    "pasted_key",
]

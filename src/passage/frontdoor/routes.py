"""Who answers which path: what products claim, and the router that asks them in order.

A product claims paths in one of three ways:

- :class:`Prefix`: every path under it (``/signal/``, ``/$hc/``), asked first,
  in the order registered, so nothing registered later can shadow one;
- :class:`Paths`: exact paths (the management API's route table), asked next,
  so they win over any resolver;
- :class:`Resolver`: paths decided per request (a registered hybrid
  connection's), asked last, in the order registered.

What nobody claims goes to the fallback (the API's 404). The first path
segment of every prefix and every exact path is reserved
(:func:`reserved_names`): a hybrid connection named after one would never
see its senders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["Handler", "Paths", "Prefix", "Resolver", "Router", "reserved_names"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""What answers a request: a product's aiohttp handler."""


@dataclass(frozen=True, slots=True)
class Prefix:
    """Every path under ``path`` (``/signal/``): its first segment is reserved."""

    path: str
    owner: str
    """Who answers, in words for logs and errors: ``signaling``, ``the relay``..."""
    ignore_case: bool = True

    def claims(self, path: str) -> bool:
        head = path[: len(self.path)]
        return (head.lower() == self.path.lower()) if self.ignore_case else head == self.path

    @property
    def names(self) -> frozenset[str]:
        return frozenset({self.path.strip("/").split("/", 1)[0].lower()})


@dataclass(frozen=True, slots=True)
class Paths:
    """Exact paths, as ``matches`` decides them; ``names`` are their first segments."""

    names: frozenset[str]
    matches: Callable[[str], bool] = field(compare=False)
    owner: str

    def claims(self, path: str) -> bool:
        return self.matches(path)


@dataclass(frozen=True, slots=True)
class Resolver:
    """Paths decided per request, by the function registered with it."""

    owner: str


def reserved_names(claims: Iterable[Prefix | Paths]) -> dict[str, str]:
    """First path segment (lower case) → who answers it, for every prefix and exact path."""
    return {name: claim.owner for claim in claims for name in sorted(claim.names)}


class Router:
    """The registry: products add their claims and handlers; :meth:`route` picks one."""

    def __init__(self) -> None:
        self._claims: list[tuple[Prefix | Paths, Handler]] = []
        self._resolvers: list[tuple[Resolver, Callable[[str], Handler | None]]] = []
        self._fallback: tuple[str, Handler] | None = None

    def add(self, claim: Prefix | Paths, handler: Handler) -> None:
        """Answer what ``claim`` claims with ``handler``; a name already reserved is refused."""
        taken = set(claim.names) & set(self.reserved_names)
        if taken:
            raise ValueError(f"{claim.owner} claims /{min(taken)}, which is already served")
        self._claims.append((claim, handler))
        self._claims.sort(key=lambda entry: not isinstance(entry[0], Prefix))

    def add_resolver(self, claim: Resolver, resolve: Callable[[str], Handler | None]) -> None:
        """Ask ``resolve(path)`` for paths no prefix or exact path claims."""
        self._resolvers.append((claim, resolve))

    def set_fallback(self, owner: str, handler: Handler) -> None:
        """What answers a path nobody claims."""
        self._fallback = (owner, handler)

    @property
    def reserved_names(self) -> Mapping[str, str]:
        return reserved_names(claim for claim, _ in self._claims)

    def route(self, path: str) -> tuple[str, Handler]:
        """(who answers ``path``, the handler); LookupError without a fallback."""
        for claim, handler in self._claims:
            if claim.claims(path):
                return claim.owner, handler
        for resolver, resolve in self._resolvers:
            found = resolve(path)
            if found is not None:
                return resolver.owner, found
        if self._fallback is None:
            raise LookupError(f"nothing answers {path}")
        return self._fallback

"""Administering the namespace: hybrid connections, authorization rules, SAS tokens.

:class:`HybridAdmin` is the one place that decides what may be created,
replaced or deleted (reference §2.1 for names, §3 for rules and rights, §5 for
limits); the API routes and ``passage hc`` call it and render its
:class:`AdminError`. It reaches the store through :class:`AdminStore`
(:class:`passage.store.hybrid.HybridStore` is the real one), and takes the
clock and the key generator from its caller, so this module does no I/O of
its own.

The relay reads :meth:`HybridAdmin.namespace`, an immutable snapshot replaced
after every change this admin makes and on every :meth:`HybridAdmin.refresh`
that finds the store changed (another node, or ``passage hc`` on the store);
``on_change`` is called with each new snapshot.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from passage.addresses import bracketed
from passage.http_errors import HttpError
from passage.hybrid.entities import (
    MAX_RULES,
    ROOT_RULE,
    HybridConnection,
    HybridConnectionPath,
    Namespace,
    validate_name,
    validate_rule_name,
)
from passage.hybrid.sas import Rights, SasRule, make_sas_token

__all__ = [
    "ALL_RIGHTS",
    "KEY_PATTERN",
    "NAME_PATTERN",
    "RIGHT_NAMES",
    "RULE_NAME_PATTERN",
    "AdminError",
    "AdminStore",
    "HybridAdmin",
    "WrittenRule",
    "parse_rights",
    "resource_uri",
    "rights_names",
    "sas_token",
]

logger = logging.getLogger("passage.hybrid")

NAMESPACE = ""
"""The store's ``entity`` for a namespace-level rule."""

RIGHT_NAMES: dict[str, Rights] = {
    "Listen": Rights.LISTEN,
    "Send": Rights.SEND,
    "Manage": Rights.MANAGE,
}
"""Azure's names for the rights, in the order they are listed."""

ALL_RIGHTS = Rights.LISTEN | Rights.SEND | Rights.MANAGE

_SEGMENT = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
NAME_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
"""Hybrid connection names this server accepts (and at most 260 characters).

Stricter than Azure's rule for the whole name: every ``/``-separated segment
starts and ends with a letter or digit, so no ``.`` or ``..`` segment that
clients would normalize away before the relay saw it."""

RULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$"
KEY_PATTERN = r"^[!-~]{16,256}$"
"""A key given by the caller: 16 to 256 printable ASCII characters, no spaces.
Generated keys are 32 random bytes in base64 (44 characters), as Azure's."""

_NAME = re.compile(NAME_PATTERN)
_KEY = re.compile(KEY_PATTERN)


class AdminError(HttpError):
    """A refused administration request; ``status`` is the HTTP answer (400, 404 or 409)."""


def _invalid(message: str, target: str) -> AdminError:
    return AdminError(400, "ValidationError", message, target)


# --- what the admin needs from the store ----------------------------------------------


class ConnectionRow(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def requires_client_authorization(self) -> bool: ...


class RuleRow(Protocol):
    @property
    def entity(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def rights(self) -> int: ...
    @property
    def primary_key(self) -> str: ...
    @property
    def secondary_key(self) -> str: ...


class NamespaceRows(Protocol):
    @property
    def connections(self) -> Sequence[ConnectionRow]: ...
    @property
    def rules(self) -> Sequence[RuleRow]: ...


class AdminStore(Protocol):
    """The store operations the admin uses; see :class:`passage.store.hybrid.HybridStore`."""

    async def ensure_rule(
        self, entity: str, name: str, rights: int, primary: str, secondary: str, now: float
    ) -> bool: ...

    async def create_connection(
        self, path: str, name: str, requires_client_authorization: bool, now: float
    ) -> bool: ...

    async def delete_connection(self, path: str) -> bool: ...

    async def put_rule(
        self,
        entity: str,
        name: str,
        rights: int,
        primary: str,
        secondary: str,
        now: float,
        *,
        max_rules: int,
    ) -> Literal["created", "replaced", "full", "unknown entity"]: ...

    async def delete_rule(self, entity: str, name: str) -> bool: ...

    async def load_namespace(self) -> NamespaceRows: ...


# --- rights, keys, tokens -------------------------------------------------------------


def parse_rights(names: Iterable[str]) -> Rights:
    """Rights named case-insensitively (``listen``, ``Send``, ``MANAGE``); 400 if unknown or none.

    Manage brings Listen and Send, as Azure requires them with it (reference §3).
    """
    by_lower = {name.lower(): right for name, right in RIGHT_NAMES.items()}
    rights = Rights(0)
    for name in names:
        right = by_lower.get(name.strip().lower())
        if right is None:
            raise _invalid(f"unknown right {name!r}: use Listen, Send or Manage", "rights")
        rights |= right
    if not rights:
        raise _invalid("a rule needs at least one right: Listen, Send or Manage", "rights")
    return _complete(rights)


def _complete(rights: Rights) -> Rights:
    return rights | Rights.LISTEN | Rights.SEND if Rights.MANAGE in rights else rights


def rights_names(rights: Rights) -> list[str]:
    """``["Listen", "Send"]``: the rights granted, Manage counting as all three."""
    granted = _complete(rights)
    return [name for name, right in RIGHT_NAMES.items() if right in granted]


def resource_uri(base_url: str, name: str) -> str:
    """``http://HOST[:PORT]/{name}``: what a token for ``name`` on ``base_url`` covers.

    The scheme is always ``http`` and the port kept as given, as hyco's
    ``createRelayToken`` writes it; the relay ignores both (reference §3).
    """
    parsed = urllib.parse.urlsplit(base_url.strip())
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if (
        parsed.scheme.lower() not in {"http", "https", "ws", "wss", "sb"}
        or not parsed.hostname
        or parsed.username is not None
        or parsed.path.strip("/")
        or parsed.query
        or port == -1
    ):
        raise _invalid(f"base URL {base_url!r}: expected http://HOST[:PORT]", "baseUrl")
    host = bracketed(parsed.hostname)
    return f"http://{host}{f':{port}' if port is not None else ''}/{name}"


def sas_token(base_url: str, name: str, rule: SasRule, expiry: int) -> str:
    """A ``SharedAccessSignature`` for hybrid connection ``name``, signed with the primary key."""
    return make_sas_token(resource_uri(base_url, name), rule.name, rule.primary_key, expiry)


def _key(value: str | None, target: str) -> str | None:
    if value is not None and not _KEY.fullmatch(value):
        raise _invalid(f"{target}: 16 to 256 printable ASCII characters without spaces", target)
    return value


# --- the snapshot ---------------------------------------------------------------------


def _snapshot(rows: NamespaceRows) -> Namespace:
    rules: dict[str, dict[str, SasRule]] = {}
    for row in rows.rules:
        rule = SasRule(row.name, Rights(row.rights), row.primary_key, row.secondary_key)
        rules.setdefault(row.entity, {})[row.name] = rule
    connections = {
        HybridConnectionPath(row.path): HybridConnection(
            HybridConnectionPath(row.path),
            row.name,
            row.requires_client_authorization,
            rules.get(row.path, {}),
        )
        for row in rows.connections
    }
    return Namespace(connections, rules.get(NAMESPACE, {}))


@dataclass(frozen=True, slots=True)
class WrittenRule:
    """A rule just stored by :meth:`HybridAdmin.put_rule`."""

    entity: HybridConnectionPath | None
    """Its hybrid connection, or None on the namespace."""
    rule: SasRule
    created: bool
    """False when it replaced a rule of the same name."""


class HybridAdmin:
    """Creates, lists and deletes hybrid connections and rules; issues SAS tokens.

    Every method raises :class:`AdminError` for what the caller should be told
    and re-reads the store (:meth:`refresh`), so it answers with what every
    node sees. Call :meth:`ensure_root_rule` once before serving.
    """

    def __init__(
        self,
        store: AdminStore,
        *,
        clock: Callable[[], float],
        new_key: Callable[[], str],
        reserved_names: Mapping[str, str],
        on_change: Callable[[Namespace], None] | None = None,
        on_commit: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.reserved_names = reserved_names
        """First path segment (lower case) → what serves it on the relay's port
        (``passage.mounts.RESERVED_NAMES``): a hybrid connection named under one would
        never see its HTTP senders."""
        self.clock = clock
        """Unix seconds."""
        self.new_key = new_key
        """A fresh random key as text (``passage.api.service.new_key_text``)."""
        self.on_change = on_change
        """Called with each new snapshot, after the store has committed; must not raise."""
        self.on_commit = on_commit
        """Awaited with the entity path (``""``: the namespace) after a change made here
        committed, to tell other nodes at once; must not raise."""
        self._namespace = Namespace()
        self._loads_started = 0
        self._load_applied = 0

    def namespace(self) -> Namespace:
        """The latest snapshot (empty until the first :meth:`refresh`); no I/O, for each request."""
        return self._namespace

    async def refresh(self) -> Namespace:
        """Re-read the store; a changed namespace replaces the snapshot and goes to ``on_change``.

        Call it periodically to see changes made elsewhere. Of two overlapping
        refreshes, the one started last wins.
        """
        self._loads_started += 1
        ticket = self._loads_started
        loaded = _snapshot(await self.store.load_namespace())
        if ticket < self._load_applied:
            return self._namespace
        self._load_applied = ticket
        if loaded != self._namespace:
            self._namespace = loaded
            if self.on_change is not None:
                self.on_change(loaded)
        return self._namespace

    async def _committed(self, path: str) -> None:
        """After a change made here: the new snapshot, then tell ``on_commit``."""
        await self.refresh()
        if self.on_commit is not None:
            await self.on_commit(path)

    async def ensure_root_rule(self) -> Namespace:
        """Create ``RootManageSharedAccessKey`` (all rights, fresh keys) unless it exists; load.

        Safe when several nodes start at once: every node keeps the first one's keys.
        """
        keys = (self.new_key(), self.new_key())
        if await self.store.ensure_rule(NAMESPACE, ROOT_RULE, int(ALL_RIGHTS), *keys, self.clock()):
            logger.info("created the %s authorization rule", ROOT_RULE)
        return await self.refresh()

    # --- hybrid connections -----------------------------------------------------------

    async def create_connection(
        self, name: str, *, requires_client_authorization: bool = True
    ) -> HybridConnection:
        """Create a hybrid connection; 409 if it exists or its first segment is reserved."""
        path = _connection_path(name)
        first = path.split("/", 1)[0]
        owner = self.reserved_names.get(first)
        if owner is not None:
            raise AdminError(
                409,
                "NameReserved",
                f"hybrid connection name {name!r}: /{first} is served by {owner}, "
                "so senders would never reach it",
                "name",
            )
        if not await self.store.create_connection(
            path, name, requires_client_authorization, self.clock()
        ):
            raise AdminError(409, "Conflict", f"hybrid connection {name!r} already exists", "name")
        logger.info("created hybrid connection %s", path)
        await self._committed(path)
        return HybridConnection(path, name, requires_client_authorization)

    async def get_connection(self, name: str) -> HybridConnection:
        return _connection(await self.refresh(), _connection_path(name), name)

    async def list_connections(self) -> list[HybridConnection]:
        """Every hybrid connection, by canonical name."""
        namespace = await self.refresh()
        return [namespace.connections[path] for path in sorted(namespace.connections)]

    async def delete_connection(self, name: str) -> None:
        """Delete a hybrid connection and its rules; 404 if there is none."""
        path = _connection_path(name)
        if not await self.store.delete_connection(path):
            raise _connection_not_found(name)
        logger.info("deleted hybrid connection %s", path)
        await self._committed(path)

    # --- authorization rules ----------------------------------------------------------

    async def put_rule(
        self,
        entity: str | None,
        name: str,
        rights: Rights,
        *,
        primary_key: str | None = None,
        secondary_key: str | None = None,
    ) -> WrittenRule:
        """Create or replace rule ``name`` on hybrid connection ``entity`` (None: the namespace).

        Keys not given are kept from the rule being replaced, or generated.
        400 for a bad name, right or key; 404 for an unknown ``entity``; 409 past
        :data:`MAX_RULES` rules, or for a root rule without Manage.
        """
        path = _entity_path(entity)
        rule_name = _rule_name(name)
        rights = _complete(rights)
        if not rights:
            raise _invalid("a rule needs at least one right: Listen, Send or Manage", "rights")
        if path is None and rule_name == ROOT_RULE and Rights.MANAGE not in rights:
            raise _root_protected(f"{ROOT_RULE} keeps the Manage right")
        primary, secondary = _key(primary_key, "primaryKey"), _key(secondary_key, "secondaryKey")
        current = _rules_of(await self.refresh(), path, entity).get(rule_name)
        if primary is None:
            primary = current.primary_key if current is not None else self.new_key()
        if secondary is None:
            secondary = current.secondary_key if current is not None else self.new_key()
        outcome = await self.store.put_rule(
            path or NAMESPACE,
            rule_name,
            int(rights),
            primary,
            secondary,
            self.clock(),
            max_rules=MAX_RULES,
        )
        if outcome == "unknown entity":
            raise _connection_not_found(entity or "")
        if outcome == "full":
            raise AdminError(
                409,
                "QuotaExceeded",
                f"{_where(entity)} already has {MAX_RULES} authorization rules, the most allowed",
                "name",
            )
        logger.info("%s rule %s on %s", outcome, rule_name, _where(entity))
        await self._committed(path or "")
        rule = SasRule(rule_name, rights, primary, secondary)
        return WrittenRule(path, rule, outcome == "created")

    async def get_rule(self, entity: str | None, name: str) -> SasRule:
        """Rule ``name`` on ``entity`` itself (None: the namespace), with its keys; 404 if none."""
        path = _entity_path(entity)
        rule = _rules_of(await self.refresh(), path, entity).get(name)
        if rule is None:
            raise _rule_not_found(name, entity)
        return rule

    async def list_rules(self, entity: str | None) -> list[SasRule]:
        """The rules on ``entity`` itself (None: the namespace), by name."""
        path = _entity_path(entity)
        rules = _rules_of(await self.refresh(), path, entity)
        return [rules[name] for name in sorted(rules)]

    async def delete_rule(self, entity: str | None, name: str) -> None:
        """Delete a rule; 404 if there is none, 409 for the namespace's root rule."""
        path = _entity_path(entity)
        if path is None and name == ROOT_RULE:
            raise _root_protected(
                f"{ROOT_RULE} cannot be deleted: `passage hc token` signs with it"
            )
        if not await self.store.delete_rule(path or NAMESPACE, name):
            _rules_of(await self.refresh(), path, entity)  # 404 for the connection first
            raise _rule_not_found(name, entity)
        logger.info("deleted rule %s on %s", name, _where(entity))
        await self._committed(path or "")

    # --- tokens -----------------------------------------------------------------------

    async def token(self, name: str, rule: str = ROOT_RULE, *, ttl: int, base_url: str) -> str:
        """A SAS token for hybrid connection ``name``, valid ``ttl`` seconds from now.

        ``rule`` is looked up on the connection, then on the namespace, as the
        relay looks up a token's ``skn``; its primary key signs. ``base_url``
        (``http://HOST[:PORT]``) names the host listeners and senders dial.
        """
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise _invalid(f"ttl {ttl!r}: a whole number of seconds, at least 1", "ttl")
        namespace = await self.refresh()
        connection = _connection(namespace, _connection_path(name), name)
        signing = namespace.rules_for(connection).get(rule)
        if signing is None:
            raise _rule_not_found(rule, name, inherited=True)
        return sas_token(base_url, connection.name, signing, int(self.clock()) + ttl)


# --- names and look-ups ---------------------------------------------------------------


def _connection_path(name: str) -> HybridConnectionPath:
    try:
        path = validate_name(name)
    except ValueError as exc:
        raise _invalid(str(exc), "name") from None
    if not _NAME.fullmatch(name):
        raise _invalid(
            f"hybrid connection name {name!r}: each '/'-separated segment must start and end "
            "with a letter or digit",
            "name",
        )
    return path


def _entity_path(entity: str | None) -> HybridConnectionPath | None:
    if entity is None:
        return None
    try:
        return _connection_path(entity)
    except AdminError as error:
        raise _invalid(error.message, "entity") from None


def _rule_name(name: str) -> str:
    try:
        return validate_rule_name(name)
    except ValueError as exc:
        raise _invalid(str(exc), "name") from None


def _connection(namespace: Namespace, path: HybridConnectionPath, name: str) -> HybridConnection:
    connection = namespace.connections.get(path)
    if connection is None:
        raise _connection_not_found(name)
    return connection


def _rules_of(
    namespace: Namespace, path: HybridConnectionPath | None, entity: str | None
) -> dict[str, SasRule]:
    if path is None:
        return dict(namespace.rules)
    return dict(_connection(namespace, path, entity or "").rules)


def _where(entity: str | None) -> str:
    return "the namespace" if entity is None else f"hybrid connection {entity!r}"


def _connection_not_found(name: str) -> AdminError:
    return AdminError(
        404, "HybridConnectionNotFound", f"no hybrid connection named {name!r}", "name"
    )


def _rule_not_found(name: str, entity: str | None, *, inherited: bool = False) -> AdminError:
    where = f"{_where(entity)} or the namespace" if inherited else _where(entity)
    return AdminError(
        404, "AuthorizationRuleNotFound", f"no authorization rule {name!r} on {where}", "rule"
    )


def _root_protected(message: str) -> AdminError:
    return AdminError(409, "RootRuleProtected", message, "name")

"""The TLS contexts the listeners present, and a new certificate for them without a restart.

Every TLS listener (TURN over TLS, the HTTPS API) gets its context from one
:class:`ServerContexts`. :meth:`ServerContexts.reload` builds complete new
contexts from the new certificate and key first, and only then makes them
current: a pair that does not load changes nothing. The listeners' own
contexts stay in place; their SNI callback, which OpenSSL runs at the start of
every handshake (with or without a server name), moves each new connection onto
the current context. A connection already up keeps the certificate it was
given.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from pathlib import Path

from passage.tlsmaterial import server_ssl_context

__all__ = ["ServerContexts"]


class ServerContexts:
    """One certificate and key, presented by every TLS listener, replaceable at run time."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self._current: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._given: dict[tuple[str, ...], ssl.SSLContext] = {}

    def context(self, alpn_protocols: Iterable[str] = ()) -> ssl.SSLContext:
        """The context a listener offering ``alpn_protocols`` binds with (one per set).

        Raises :class:`passage.tlsmaterial.TlsMaterialError` if the pair does not load."""
        alpn = tuple(alpn_protocols)
        given = self._given.get(alpn)
        if given is None:
            given = server_ssl_context(self.cert, self.key, alpn)
            given.sni_callback = self._switch
            self._given[alpn] = given
            self._current[alpn] = given
        return given

    def reload(self, cert: Path, key: Path) -> None:
        """Present ``cert`` and ``key`` from the next handshake on, on every listener.

        Raises :class:`passage.tlsmaterial.TlsMaterialError` (and keeps the old pair)
        when they cannot be read or do not belong together.
        """
        fresh = {alpn: server_ssl_context(cert, key, alpn) for alpn in self._given}
        if not fresh:
            server_ssl_context(cert, key)
        self._current.update(fresh)
        self.cert, self.key = cert, key

    def _switch(
        self, connection: ssl.SSLSocket | ssl.SSLObject, _name: str | None, given: ssl.SSLContext
    ) -> None:
        """SNI callback: hand the handshake to the current context of its listener's kind."""
        for alpn, context in self._given.items():
            if context is given:
                current = self._current[alpn]
                if current is not given:
                    connection.context = current
                return

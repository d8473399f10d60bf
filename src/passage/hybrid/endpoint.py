"""Where a relay is reached, the URLs of each gesture, and Azure-style connection strings.

Azure Relay hands out ``Endpoint=sb://NS/;SharedAccessKeyName=R;SharedAccessKey=K
[;EntityPath=NAME]``; the .NET client dials ``wss://`` on the endpoint's host
and keeps its port. Passage takes the same string (``sb://`` means ``wss://``,
and ``https://``/``http://``/``ws://`` are accepted too) so existing
configuration carries over with only the host changed. The URLs follow
reference §2.1: ``/$hc/{name}`` with ``sb-hc-action`` for WebSockets, plain
``/{name}`` for HTTP senders.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

from passage.addresses import format_address

__all__ = ["ConnectionStringError", "RelayConnectionString", "RelayEndpoint"]

_SCHEMES = {"sb": "wss", "wss": "wss", "https": "wss", "ws": "ws", "http": "ws"}
_DEFAULT_PORTS = {"wss": 443, "ws": 80}


class ConnectionStringError(ValueError):
    """An endpoint or connection string we cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class RelayEndpoint:
    """A relay's base address: ``ws://`` or ``wss://`` HOST and PORT."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> RelayEndpoint:
        """``sb|wss|https|ws|http://HOST[:PORT][/]``; :class:`ConnectionStringError` if not."""
        try:
            parsed = urllib.parse.urlsplit(url.strip())
            hostname = parsed.hostname
        except ValueError:  # "wss://[::1"
            raise ConnectionStringError(f"{url!r}: the host is not a name or an address") from None
        scheme = _SCHEMES.get(parsed.scheme.lower())
        try:
            port = parsed.port
        except ValueError:
            raise ConnectionStringError(f"{url!r}: the port is not a number") from None
        if scheme is None or not hostname:
            raise ConnectionStringError(f"{url!r}: expected wss://HOST[:PORT] (or sb://, https://)")
        if parsed.path.strip("/") or parsed.query or parsed.username is not None:
            raise ConnectionStringError(f"{url!r}: the endpoint has no path, query or user")
        return cls(scheme, hostname, port or _DEFAULT_PORTS[scheme])

    @property
    def netloc(self) -> str:
        return format_address((self.host, self.port))

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def http_base_url(self) -> str:
        return f"{'https' if self.scheme == 'wss' else 'http'}://{self.netloc}"

    def resource_uri(self, name: str) -> str:
        """What a SAS token for ``name`` names (``sr``), as hyco's ``createRelayToken`` does."""
        return f"http://{self.netloc}/{name.strip('/')}"

    def listen_url(self, name: str, tracking_id: str) -> str:
        return self._websocket_url(name, "", [], "listen", tracking_id)

    def connect_url(
        self, name: str, tracking_id: str, suffix: str = "", query: Iterable[tuple[str, str]] = ()
    ) -> str:
        """A WebSocket sender's URL; ``suffix`` and ``query`` reach the listener untouched."""
        return self._websocket_url(name, suffix, list(query), "connect", tracking_id)

    def http_url(self, name: str, suffix: str = "", query: Iterable[tuple[str, str]] = ()) -> str:
        """An HTTP sender's URL: ``/{name}{suffix}``, no ``$hc`` (reference §2.1)."""
        path = _path(name, suffix)
        encoded = urllib.parse.urlencode(list(query))
        return f"{self.http_base_url}/{path}" + (f"?{encoded}" if encoded else "")

    def _websocket_url(
        self,
        name: str,
        suffix: str,
        query: list[tuple[str, str]],
        action: str,
        tracking_id: str,
    ) -> str:
        relay_query = [*query, ("sb-hc-action", action), ("sb-hc-id", tracking_id)]
        return f"{self.base_url}/$hc/{_path(name, suffix)}?{urllib.parse.urlencode(relay_query)}"


def _path(name: str, suffix: str) -> str:
    quoted = urllib.parse.quote(name.strip("/"), safe="/")
    return quoted + (urllib.parse.quote("/" + suffix.lstrip("/"), safe="/") if suffix else "")


@dataclass(frozen=True, slots=True)
class RelayConnectionString:
    """``Endpoint=...;SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=...]``.

    Instead of a key name and key it may carry a ready token
    (``SharedAccessSignature=SharedAccessSignature sr=...``), which cannot be
    renewed. Field names compare case-insensitively, in any order.
    """

    endpoint: RelayEndpoint
    key_name: str | None = None
    key: str | None = field(default=None, repr=False)
    signature: str | None = field(default=None, repr=False)
    entity_path: str | None = None

    @classmethod
    def parse(cls, text: str) -> RelayConnectionString:
        fields: dict[str, str] = {}
        for item in text.strip().split(";"):
            name, equals, value = item.partition("=")
            if item.strip() and not equals:
                raise ConnectionStringError(f"connection string part {name.strip()!r} has no '='")
            if equals:
                fields[name.strip().lower()] = value.strip()
        if "endpoint" not in fields:
            raise ConnectionStringError("the connection string has no Endpoint")
        key_name, key = fields.get("sharedaccesskeyname"), fields.get("sharedaccesskey")
        signature = fields.get("sharedaccesssignature") or None  # empty is absent
        if signature is None and not (key_name and key):
            raise ConnectionStringError(
                "the connection string needs SharedAccessKeyName and SharedAccessKey "
                "(or SharedAccessSignature)"
            )
        return cls(
            endpoint=RelayEndpoint.parse(fields["endpoint"]),
            key_name=key_name or None,
            key=key or None,
            signature=signature or None,
            entity_path=fields.get("entitypath") or None,
        )

    def __str__(self) -> str:
        scheme = "sb" if self.endpoint.scheme == "wss" else "ws"
        parts = [f"Endpoint={scheme}://{self.endpoint.netloc}/"]
        if self.key_name and self.key:
            parts += [f"SharedAccessKeyName={self.key_name}", f"SharedAccessKey={self.key}"]
        if self.signature:
            parts.append(f"SharedAccessSignature={self.signature}")
        if self.entity_path:
            parts.append(f"EntityPath={self.entity_path}")
        return ";".join(parts)

"""Ephemeral TURN credentials from a shared secret, as coturn's ``use-auth-secret``.

draft-uberti-behave-turn-rest-00 §2.2
(https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00): a web
service that shares a secret with the TURN server hands a client

* username ``<expiry>:<user>`` (``<expiry>`` in unix seconds, ``:<user>`` optional);
* password ``base64(HMAC-SHA1(secret, username))``, standard base64 with padding.

The TURN server needs no user database: it recomputes the password from the
username (:meth:`RestSecrets.passwords`), derives the long-term key from each
candidate (RFC 8489 §9.2.2), accepts the request if any MESSAGE-INTEGRITY
matches, and answers 401 when :func:`rest_username_expiry` is missing or below
``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

DEFAULT_SEPARATOR = ":"
"""The draft's separator between expiry and user; always accepted."""

_MAX_EXPIRY_DIGITS = 12
"""Unix seconds stay within 12 digits until the year 33658; more is not a time."""

_DIGITS = frozenset("0123456789")


def rest_password(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))`` over the UTF-8 bytes, as coturn."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def _check_separator(separator: str) -> None:
    if len(separator) != 1 or separator in _DIGITS:
        raise ValueError(f"REST separator must be one non-digit character, not {separator!r}")


def make_rest_credentials(
    secret: str, user: str | None, ttl: int, now: float, separator: str = DEFAULT_SEPARATOR
) -> tuple[str, str]:
    """A ``(username, password)`` pair valid for ``ttl`` seconds from ``now``.

    The username is ``<int(now) + ttl>`` followed by ``<separator><user>`` when a
    user is given (an empty user counts as none). Raises :class:`ValueError` for
    a non-positive ``ttl`` or a separator that is not one non-digit character.
    """
    if ttl <= 0:
        raise ValueError(f"REST credential ttl must be positive, not {ttl}")
    _check_separator(separator)
    username = str(int(now) + ttl)
    if user:
        username = f"{username}{separator}{user}"
    return username, rest_password(secret, username)


def rest_username_expiry(username: str, separator: str = DEFAULT_SEPARATOR) -> int | None:
    """The unix expiry a REST username carries, or ``None`` if it is no REST username.

    A REST username is ASCII digits, then either nothing or a separator and the
    user. ``":"`` is always a separator, and so is ``separator`` when configured
    otherwise (coturn's ``--rest-api-separator``): coturn 4.6.1 reads the expiry
    with ``strtoul`` and so accepted ``<expiry>_<user>`` under ``:``, and
    clients configured for either form keep working. Any other character after
    the digits, a leading sign or space, non-ASCII digits and more than 12 digits
    are refused. The ``<user>:<expiry>`` order some gateways accept is not.
    """
    _check_separator(separator)
    end = 0
    while end < len(username) and username[end] in _DIGITS:
        end += 1
    if end == 0 or end > _MAX_EXPIRY_DIGITS:
        return None
    if end < len(username) and username[end] not in (DEFAULT_SEPARATOR, separator):
        return None
    return int(username[:end])


@dataclass(frozen=True)
class RestSecrets:
    """The shared secrets in use: several at once while one is being rotated out.

    The first secret mints new credentials; every secret is tried on the way in.
    Secrets never appear in ``repr`` and so never reach a log line.
    """

    secrets: tuple[str, ...] = field(repr=False)
    """Shared secrets, newest first; at least one, none empty."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", tuple(self.secrets))
        if not self.secrets or not all(self.secrets):
            raise ValueError("REST secrets: at least one, and none may be empty")

    def passwords(self, username: str) -> list[str]:
        """One candidate password per secret, in the order of :attr:`secrets`."""
        return [rest_password(secret, username) for secret in self.secrets]

    def mint(
        self, user: str | None, ttl: int, now: float, separator: str = DEFAULT_SEPARATOR
    ) -> tuple[str, str]:
        """:func:`make_rest_credentials` with the newest secret."""
        return make_rest_credentials(self.secrets[0], user, ttl, now, separator)

"""Shared Access Signature tokens, as Azure Relay and the hyco-ws/hyco-https clients use them.

``SharedAccessSignature sr=<url-encoded resource URI>&sig=<url-encoded base64 HMAC>&se=<unix
expiry>&skn=<rule name>`` (fields in any order, names case-insensitive). The
signature is HMAC-SHA256 keyed with the UTF-8 bytes of the key *string* (the
base64 text is not decoded) over ``sr`` exactly as written in the token, a
newline, and ``se``. Clients disagree on how they encode ``sr`` (upper- or
lower-case hex, with or without port or trailing slash), so it is verified as
written and only decoded to decide what it covers (reference §3).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from passage.http_errors import HttpError

__all__ = [
    "CLOCK_SKEW",
    "Rights",
    "SasError",
    "SasRule",
    "SasToken",
    "audience_covers",
    "make_sas_token",
    "verify_sas_token",
]

PREFIX = "SharedAccessSignature "
MAX_TOKEN_LENGTH = 4096

CLOCK_SKEW = 300
"""Seconds a token stays valid past ``se``: hyco clients renew exactly when it expires."""
MAX_EXPIRY = 2**53
"""Largest ``se`` (Unix seconds) read as a time: beyond it a float, and any clock, is lost."""


class Rights(enum.IntFlag):
    LISTEN = 1
    SEND = 2
    MANAGE = 4
    """Management; Azure requires Listen and Send with it, so it implies both here."""

    def allows(self, needed: Rights) -> bool:
        granted = self | (Rights.LISTEN | Rights.SEND) if Rights.MANAGE in self else self
        return needed in granted


class SasError(HttpError):
    """A token that does not authorize the request; ``status`` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "TokenMissingOrInvalid", message)


@dataclass(frozen=True, slots=True)
class SasRule:
    """An authorization rule: a name, its rights, and two keys (either signs)."""

    name: str
    rights: Rights
    primary_key: str = field(repr=False)
    secondary_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SasToken:
    resource: str
    """``sr`` as written in the token: still URL-encoded, and what was signed."""
    signature: bytes = field(repr=False)
    expiry: int
    key_name: str

    @classmethod
    def parse(cls, text: str) -> SasToken:
        """The fields of a token; :class:`SasError` (401) if it is not one."""
        text = text.strip()
        if len(text) > MAX_TOKEN_LENGTH or not text.lower().startswith(PREFIX.lower()):
            raise SasError(401, "expected a SharedAccessSignature token")
        fields: dict[str, str] = {}
        for item in text[len(PREFIX) :].split("&"):
            name, equals, value = item.partition("=")
            if equals:
                fields[name.strip().lower()] = value.strip()
        if not {"sr", "sig", "se", "skn"} <= fields.keys():
            raise SasError(401, "the token needs sr, sig, se and skn")
        try:
            signature = base64.b64decode(urllib.parse.unquote(fields["sig"]), validate=True)
            expiry = int(urllib.parse.unquote(fields["se"]))
        except (binascii.Error, ValueError):
            raise SasError(401, "the token's sig or se is malformed") from None
        if not -MAX_EXPIRY <= expiry <= MAX_EXPIRY:
            raise SasError(401, "the token's se is not a time")
        return cls(fields["sr"], signature, expiry, urllib.parse.unquote(fields["skn"]))


def _signature(key: str, resource: str, expiry: int) -> bytes:
    message = f"{resource}\n{expiry}".encode("utf-8", "surrogatepass")
    return hmac.new(key.encode("utf-8", "surrogatepass"), message, hashlib.sha256).digest()


def make_sas_token(resource_uri: str, rule_name: str, key: str, expiry: int) -> str:
    """A token for ``resource_uri`` until ``expiry``, encoded like hyco's ``createRelayToken``."""
    resource = urllib.parse.quote(resource_uri, safe="")
    signature = base64.b64encode(_signature(key, resource, expiry)).decode("ascii")
    return (
        f"{PREFIX}sr={resource}&sig={urllib.parse.quote(signature, safe='')}"
        f"&se={expiry}&skn={urllib.parse.quote(rule_name, safe='')}"
    )


def audience_covers(resource: str, hosts: Iterable[str], entity: str) -> bool:
    """Whether a token's ``sr`` covers ``entity`` on one of ``hosts`` (reference §3).

    The scheme and port are ignored, the host is compared case-insensitively,
    ``$hc/`` is optional, and the path must be empty (the whole namespace), the
    entity itself, or a whole-segment prefix of it, compared case-insensitively.
    """
    try:
        parsed = urllib.parse.urlsplit(urllib.parse.unquote(resource))
        host = (parsed.hostname or "").lower()
    except ValueError:  # "http://[::1": whoever signed it, it names no host of ours
        return False
    if host not in {known.lower() for known in hosts}:
        return False
    path = parsed.path.strip("/").lower().removeprefix("$hc/").removeprefix("$hc")
    path = path.strip("/")
    target = entity.strip("/").lower()
    return not path or target == path or target.startswith(path + "/")


def verify_sas_token(
    text: str,
    rules: Mapping[str, SasRule],
    *,
    hosts: Iterable[str],
    entity: str,
    needed: Rights,
    now: float,
    max_lifetime: float | None = None,
) -> SasRule:
    """The rule that signed ``text``, if the token authorizes ``needed`` on ``entity``.

    Raises :class:`SasError`: 401 for a malformed, expired, foreign or forged
    token (unknown rule, bad signature, another host or entity), or one whose
    expiry is more than ``max_lifetime`` seconds away (None: no bound); 403
    when the token is genuine but its rule lacks the right.
    """
    token = SasToken.parse(text)
    if token.expiry + CLOCK_SKEW < now:
        raise SasError(401, "the token has expired")
    if max_lifetime is not None and token.expiry - now > max_lifetime + CLOCK_SKEW:
        raise SasError(
            401,
            f"the token expires more than {int(max_lifetime)} s from now (se); this relay "
            "accepts tokens valid at most that long (--hc-max-token-lifetime)",
        )
    rule = rules.get(token.key_name)
    if rule is None:
        raise SasError(401, f"no authorization rule named {token.key_name!r}")
    expected = [_signature(key, token.resource, token.expiry) for key in rule_keys(rule)]
    if not any(hmac.compare_digest(candidate, token.signature) for candidate in expected):
        raise SasError(401, "the token signature does not match the rule's keys")
    if not audience_covers(token.resource, hosts, entity):
        raise SasError(401, "the token is for another namespace or hybrid connection")
    if not rule.rights.allows(needed):
        raise SasError(403, f"rule {rule.name!r} lacks the {needed.name} right")
    return rule


def rule_keys(rule: SasRule) -> tuple[str, str]:
    return (rule.primary_key, rule.secondary_key)

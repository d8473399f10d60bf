"""The long-term credential mechanism (RFC 8489 §9.2) and where credentials come from.

A *credential source* maps a username to the passwords that may have keyed its
MESSAGE-INTEGRITY: a static user has one; a TURN REST username has one per
configured secret, so secrets rotate without a flag day. The *authenticator*
runs the RFC 8489 §9.2.4 checks in order and either returns who the request
is from, with the key to sign the answer with, or raises the error to send.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from passage.stun import (
    AttributeType,
    ErrorCode,
    Message,
    PasswordAlgorithm,
    PasswordAlgorithmValue,
    long_term_key,
    verify_integrity,
)
from passage.turn.credentials import RestSecrets, rest_username_expiry
from passage.turn.errors import TurnError
from passage.turn.nonce import NonceIssuer

SUPPORTED_PASSWORD_ALGORITHMS: tuple[PasswordAlgorithmValue, ...] = (
    PasswordAlgorithmValue(PasswordAlgorithm.MD5),
    PasswordAlgorithmValue(PasswordAlgorithm.SHA256),
)
"""What a 401 offers in PASSWORD-ALGORITHMS, MD5 first as RFC 8489 §9.2.1 asks."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A username we know, who it bills to, and the passwords it may use."""

    username: str
    subject: str
    passwords: tuple[str, ...] = field(repr=False)
    quota: str | None = None
    """Who the per-user allocation quota counts against; None: the ``subject``.

    A source sets it when one subject stands for many unrelated holders (the
    ``anonymous`` subject of relay configurations requested without an id), so
    that one holder at its quota does not lock out the others.
    """

    from_store: bool = False
    """Its standing depends on what the store says (revocations): cluster mode refuses new
    allocations for it once the store has been unreachable too long."""

    @property
    def quota_key(self) -> str:
        """The key of ``max_allocations_per_user``: ``quota``, else ``subject``."""
        return self.quota if self.quota is not None else self.subject


class Refusal(enum.StrEnum):
    """Why a username gets 401 before its MESSAGE-INTEGRITY is even checked."""

    UNKNOWN_USER = "unknown user"
    EXPIRED = "credential expired"
    REVOKED = "credential revoked"
    KEY_ROTATED = "credential minted with a rotated access key"


class CredentialSource(Protocol):
    """Looks a username up at ``now`` (unix seconds)."""

    def lookup(self, username: str, now: float) -> Credential | Refusal: ...


@dataclass(frozen=True, slots=True)
class StaticUsers:
    """Users from the configuration: name → password."""

    users: Mapping[str, str] = field(repr=False)

    def lookup(self, username: str, now: float) -> Credential | Refusal:
        password = self.users.get(username)
        if password is None:
            return Refusal.UNKNOWN_USER
        return Credential(username, username, (password,))


@dataclass(frozen=True, slots=True)
class RestSecretUsers:
    """coturn ``use-auth-secret`` credentials: ``<unix-expiry>[:<user>]``."""

    secrets: RestSecrets

    def lookup(self, username: str, now: float) -> Credential | Refusal:
        expiry = rest_username_expiry(username)
        if expiry is None:
            return Refusal.UNKNOWN_USER
        if expiry < now:
            return Refusal.EXPIRED
        _, _, user = username.partition(":")
        return Credential(username, user or username, tuple(self.secrets.passwords(username)))


@dataclass(frozen=True, slots=True)
class CredentialChain:
    """Asks each source in turn; the first that knows the username answers.

    A source knows a username when it returns a credential or a refusal other
    than ``UNKNOWN_USER``: an expired or revoked credential is refused by the
    source that recognised it, not retried against secrets it was never signed with.
    """

    sources: Sequence[CredentialSource]

    def lookup(self, username: str, now: float) -> Credential | Refusal:
        for source in self.sources:
            found = source.lookup(username, now)
            if found is not Refusal.UNKNOWN_USER:
                return found
        return Refusal.UNKNOWN_USER


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Who sent a request, and how to sign the answer (RFC 8489 §9.2.4)."""

    credential: Credential
    key: bytes = field(repr=False)
    sha256: bool
    """True if the request carried MESSAGE-INTEGRITY-SHA256: answer in kind."""


class AuthenticationFailed(TurnError):
    """401 or 438 to send back with REALM and a fresh NONCE.

    ``counts_as_failure`` is False for the ordinary first challenge (a request
    without MESSAGE-INTEGRITY), True for wrong or unknown credentials, which
    the per-source failure limiter counts.
    """

    def __init__(self, code: ErrorCode, *, counts_as_failure: bool, why: str) -> None:
        super().__init__(code)
        self.counts_as_failure = counts_as_failure
        self.why = why


class Authenticator:
    """Runs the RFC 8489 §9.2.4 checks for one realm."""

    def __init__(self, realm: str, source: CredentialSource, nonces: NonceIssuer) -> None:
        self.realm = realm
        self.source = source
        self.nonces = nonces

    def authenticate(self, request: Message, client_ip: str, now: float) -> Authenticated:
        """Return the verified sender of ``request``, or raise the error to answer.

        Raises ``AuthenticationFailed`` (401/438) or ``TurnError`` (400).
        """
        has_sha256 = request.has(AttributeType.MESSAGE_INTEGRITY_SHA256)
        if not has_sha256 and not request.has(AttributeType.MESSAGE_INTEGRITY):
            raise AuthenticationFailed(
                ErrorCode.UNAUTHORIZED, counts_as_failure=False, why="challenge"
            )
        username = request.get(AttributeType.USERNAME, str)
        realm = request.get(AttributeType.REALM, str)
        nonce = request.get(AttributeType.NONCE, str)
        if username is None or realm is None or nonce is None:
            raise TurnError(ErrorCode.BAD_REQUEST, "Missing USERNAME, REALM or NONCE")
        if not self.nonces.is_fresh(nonce, client_ip, now):
            raise AuthenticationFailed(
                ErrorCode.STALE_NONCE, counts_as_failure=False, why="stale nonce"
            )
        algorithm = _password_algorithm(request, nonce)
        found = self.source.lookup(username, now)
        if isinstance(found, Refusal):
            raise AuthenticationFailed(
                ErrorCode.UNAUTHORIZED, counts_as_failure=True, why=found.value
            )
        if realm != self.realm:
            raise AuthenticationFailed(
                ErrorCode.UNAUTHORIZED, counts_as_failure=True, why="wrong realm"
            )
        for password in found.passwords:
            key = long_term_key(username, self.realm, password, algorithm)
            if verify_integrity(request, key):
                return Authenticated(found, key, has_sha256)
        raise AuthenticationFailed(
            ErrorCode.UNAUTHORIZED, counts_as_failure=True, why="bad message integrity"
        )


def _password_algorithm(request: Message, nonce: str) -> PasswordAlgorithm:
    """The key algorithm a request chose (RFC 8489 §9.2.4, the PASSWORD-ALGORITHMS rules).

    A request that names an algorithm must echo the list we offered, and pick
    one from it; otherwise 400. Without either attribute, MD5 (RFC 5389).
    """
    offered = request.get(AttributeType.PASSWORD_ALGORITHMS, tuple)
    chosen = request.get(AttributeType.PASSWORD_ALGORITHM, PasswordAlgorithmValue)
    if offered is None and chosen is None:
        return PasswordAlgorithm.MD5
    if (
        offered is None
        or chosen is None
        or not NonceIssuer.advertises_password_algorithms(nonce)
        or tuple(offered) != SUPPORTED_PASSWORD_ALGORITHMS
        or chosen not in SUPPORTED_PASSWORD_ALGORITHMS
    ):
        raise TurnError(ErrorCode.BAD_REQUEST, "Bad PASSWORD-ALGORITHM")
    return PasswordAlgorithm(chosen.algorithm)

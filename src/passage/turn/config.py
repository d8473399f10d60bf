"""What the TURN core needs to know, and nothing about sockets or files."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """Policy of one TURN server core. Every duration is in seconds."""

    realm: str = "passage"
    """REALM sent in 401 challenges (RFC 8489 §9.2); part of every long-term key."""

    software: str = "passage"
    """SOFTWARE attribute sent in answers to authenticated requests; empty to omit it.
    Answers to unauthenticated requests (Binding, challenges) never carry it."""

    default_lifetime: int = 600
    """Allocation lifetime when the client asks for none (RFC 8656 §3.2)."""

    max_lifetime: int = 3600
    """Longest allocation lifetime granted; longer requests are cut to this."""

    permission_lifetime: int = 300
    """How long a permission lives without a refresh (RFC 8656 §9)."""

    channel_lifetime: int = 600
    """How long a channel binding lives without a refresh (RFC 8656 §12)."""

    nonce_lifetime: int = 600
    """Age after which a nonce is stale and answered with 438 (RFC 8489 §9.2.4)."""

    reservation_lifetime: int = 30
    """How long a port reserved by EVEN-PORT(R) waits for its RESERVATION-TOKEN."""

    max_allocations_per_user: int = 100
    """Allocations one user (``Credential.quota_key``) may hold at once, ports kept by
    EVEN-PORT(R) included; more get 486."""

    max_allocations_total: int = 10_000
    """Allocations the whole server holds at once, kept ports included; more get 486."""

    max_permissions_per_allocation: int = 256
    """Distinct peer IPs one allocation may hold permissions for; more get 508."""

    max_channels_per_allocation: int = 256
    """Channel bindings one allocation may hold; more get 508. One permission covers
    every port of a peer IP, so without this one allocation could bind 16,384 channels."""

    max_bytes_per_second: int = 0
    """Relayed bytes per second per allocation, both directions; 0 means no cap."""

    auth_failures_per_minute: int = 30
    """Failed authentications a source IP may make per minute; further failures
    in that minute are dropped unanswered (correct credentials still pass)."""

    unauthenticated_answers_per_second: int = 20
    """Answers (401, 438, 400, 420) a UDP source may get per second before it has
    authenticated, after its burst; more requests are dropped unanswered, counted.
    Per IPv4 address or IPv6 /64; 0 means no limit. TCP and TLS are not limited."""

    unauthenticated_answer_burst: int = 40
    """Unauthenticated answers a UDP source may get at once, before the rate applies."""

    strict_channel_range: bool = False
    """Accept only RFC 8656's channel numbers 0x4000-0x4FFF. Off by default: RFC 5766
    clients, coturn's ``turnutils_uclient`` among them, pick from 0x4000-0x7FFF."""

    allow_loopback_peers: bool = False
    """Relay to 127.0.0.0/8 and ::1 (tests only: never on a public server)."""

    allowed_peer_ranges: tuple[str, ...] = field(default=())
    """CIDR ranges relayed to even though the default deny list covers them."""

    denied_peer_ranges: tuple[str, ...] = field(default=())
    """CIDR ranges refused in addition to the default deny list."""

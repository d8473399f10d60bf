"""The verdict of ``passage doctor``: the media path to expect, and the exit status.

The best transport that reached the relay decides, in the order media
prefers (UDP, TCP, TLS). Over UDP, the NAT's behaviour (RFC 5780, in RFC 4787
terms) says whether peers can meet directly:

- **direct likely**: no NAT, or one that maps endpoint-independently (one
  mapping per socket, whatever it talks to, RFC 4787 §4.1), or filters
  endpoint-independently (anyone may send to the mapping, §5). The address
  the relay saw is the one every peer sees: ICE connects directly with any
  peer whose NAT behaves as well, and hole punching works through
  address- and port-dependent filtering because both ends send.
- **direct possible**: UDP gets through, but the mapping could not be
  measured (the server has no second address, or its answers were lost).
- **relay over UDP**: the mapping depends on the destination (a "symmetric"
  NAT): each peer sees another port than the relay did. A direct path needs
  a peer whose NAT maps endpoint-independently and does not filter by port;
  expect the relay.
- **relay over TCP**, **relay over TLS**, **relay over TLS on 443**: UDP
  does not reach the relay; the first stream transport that does carries
  the media.
- **nothing gets through**: no transport reached the relay.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from passage.addresses import Transport
from passage.stun.discovery import FilteringBehavior, MappingBehavior

from .report import NatReport, Outcome, TransportResult

__all__ = ["HTTPS_PORT", "ExitStatus", "MediaPath", "exit_status", "judge", "no_allocation"]

HTTPS_PORT = 443


class MediaPath(enum.StrEnum):
    """The media path to expect; the value is what ``--json`` says."""

    DIRECT_LIKELY = "direct_likely"
    DIRECT_POSSIBLE = "direct_possible"
    RELAY_UDP = "relay_udp"
    RELAY_TCP = "relay_tcp"
    RELAY_TLS = "relay_tls"
    RELAY_TLS_443 = "relay_tls_443"
    NOTHING = "nothing"

    @property
    def headline(self) -> str:
        """The verdict in a few words."""
        return _HEADLINES[self]


_HEADLINES = {
    MediaPath.DIRECT_LIKELY: "direct likely",
    MediaPath.DIRECT_POSSIBLE: "direct possible",
    MediaPath.RELAY_UDP: "relay over UDP",
    MediaPath.RELAY_TCP: "relay over TCP",
    MediaPath.RELAY_TLS: "relay over TLS",
    MediaPath.RELAY_TLS_443: "relay over TLS on 443",
    MediaPath.NOTHING: "nothing gets through",
}


class ExitStatus(enum.IntEnum):
    """What ``passage doctor`` exits with."""

    OK = 0
    """A media path exists (any verdict but nothing gets through)."""
    NOTHING_GETS_THROUGH = 1
    """No transport reached the relay."""
    USAGE = 2
    """A bad command line or configuration (as every ``passage`` command)."""
    NO_ALLOCATION = 3
    """The relay is reachable but granted no allocation: the credentials were
    refused, could not be had, or the relay is at a limit."""


_DIRECT_MAPPING = {MappingBehavior.ENDPOINT_INDEPENDENT}
_SYMMETRIC_MAPPING = {
    MappingBehavior.ADDRESS_DEPENDENT,
    MappingBehavior.ADDRESS_AND_PORT_DEPENDENT,
}

_STREAM_PATHS = {Transport.TCP: MediaPath.RELAY_TCP, Transport.TLS: MediaPath.RELAY_TLS}


def judge(transports: Sequence[TransportResult], nat: NatReport) -> tuple[MediaPath, str]:
    """The media path to expect and a sentence that says why."""
    reached = sorted((r for r in transports if r.reached), key=lambda r: r.target.preference)
    if not reached:
        return MediaPath.NOTHING, (
            "No transport reached the relay: check that the host and ports are right, "
            "that passage serve is running, and what the firewall lets out."
        )
    best = reached[0].target
    if best.transport is Transport.UDP:
        return _over_udp(nat, best.label)
    path = _STREAM_PATHS[best.transport]
    why = ""
    if path is MediaPath.RELAY_TLS and best.port == HTTPS_PORT:
        path, why = MediaPath.RELAY_TLS_443, " (a firewall that lets little but HTTPS out)"
    return path, (
        f"UDP does not reach the relay; {best.label} does{why}: expect media through the "
        f"relay over TURN/{best.transport.value.upper()} on port {best.port}, with more "
        "latency under loss than over UDP."
    )


def _over_udp(nat: NatReport, label: str) -> tuple[MediaPath, str]:
    if nat.behind_nat is False:
        return MediaPath.DIRECT_LIKELY, (
            "No NAT: the relay saw this host's own address. Peers can reach it "
            f"directly; the relay over {label} is there for peers that cannot."
        )
    if nat.mapping in _DIRECT_MAPPING or nat.filtering is FilteringBehavior.ENDPOINT_INDEPENDENT:
        kind = "maps" if nat.mapping in _DIRECT_MAPPING else "filters"
        return MediaPath.DIRECT_LIKELY, (
            f"The NAT {kind} endpoint-independently (RFC 4787): peers see the address "
            f"the relay saw, so ICE should connect directly; the relay over {label} is the "
            "fallback."
        )
    if nat.mapping in _SYMMETRIC_MAPPING:
        return MediaPath.RELAY_UDP, (
            "The NAT maps each destination to its own port (symmetric, RFC 4787 §4.1): "
            "direct only with a peer whose NAT maps endpoint-independently and does not "
            f"filter by port. Expect media through the relay over {label}."
        )
    why = nat.note or "the NAT's mapping could not be measured"
    return MediaPath.DIRECT_POSSIBLE, (
        f"UDP reaches the relay over {label}, but {why}: a direct path depends on both "
        "NATs; the relay over UDP is the fallback."
    )


def exit_status(
    path: MediaPath, transports: Sequence[TransportResult], *, credentials_expected: bool
) -> ExitStatus:
    """:class:`ExitStatus` for this verdict.

    ``credentials_expected``: the user gave a way to get TURN credentials
    (whether or not it worked), so an allocation was the goal.
    """
    if path is MediaPath.NOTHING:
        return ExitStatus.NOTHING_GETS_THROUGH
    allocated = any(result.outcome is Outcome.ALLOCATED for result in transports)
    if credentials_expected and not allocated:
        return ExitStatus.NO_ALLOCATION
    return ExitStatus.OK


def no_allocation(transports: Sequence[TransportResult], credentials_error: str | None) -> str:
    """Why the relay granted no allocation, in a sentence (for :attr:`ExitStatus.NO_ALLOCATION`)."""
    if credentials_error is not None:
        return (
            f"But no TURN credentials could be had ({credentials_error}), so only STUN "
            "Binding was tried: fix that before testing media."
        )
    refused = next((r for r in transports if r.outcome is Outcome.REFUSED), None)
    answer = refused.detail if refused is not None else "no answer"
    return (
        f"But the relay granted no allocation ({answer}): check the credentials "
        "(401: wrong or expired) and the relay's limits (486: allocation quota)."
    )

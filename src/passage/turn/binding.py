"""The Binding request (RFC 8489 §6.3.1) with RFC 5780 NAT behaviour discovery (§6, §7).

A server with a second IP address listens on four UDP (and TCP) transport
addresses: (A1, P1), (A1, P2), (A2, P1) and (A2, P2). :class:`AlternateAddresses`
says which they are. Every Binding response names the address it is sent from
(RESPONSE-ORIGIN) and, when the server has the other three, the one across
(OTHER-ADDRESS). CHANGE-REQUEST asks for the answer to leave from the other IP
and/or port (RFC 5780 §6.1, Table 1). The core cannot send from another
socket, so :func:`answer_binding` returns the 5-tuple to answer on: for UDP its
``server`` is the local address to send from, and the adapter looks that
listener up (``TurnEdge._send_to_client``).

Refusals, in the order they are checked:

- PADDING or RESPONSE-PORT over TCP or TLS → 400: both are about datagrams
  (RFC 5780 §3.5, §7.5; coturn ``handle_turn_binding`` answers the same);
- PADDING with RESPONSE-PORT → 400 (RFC 5780 §6.1, §7.5; it would be an
  amplifier aimed at another port);
- RESPONSE-PORT 0 → 400: nothing can be sent to port 0;
- a change flag where this transport address has no alternate (no
  ``--alt-ip``, or TLS, or a listener outside the four) → 420 with
  UNKNOWN-ATTRIBUTES naming CHANGE-REQUEST (RFC 5780 §6: "MUST respond with
  a 420 (Unknown Attribute)"; RFC 8489 §6.3.1.1 puts UNKNOWN-ATTRIBUTES in
  every 420);
- a change flag over TCP → 400: a connection's answer cannot leave from
  another address. RFC 5780 §3.2 defines filtering tests for UDP only; coturn
  answers 400 "applicable only to UDP protocol".

PADDING in the answer is as long as the request's. RFC 5780 §6.1 says it
SHOULD be the MTU of the outgoing interface, which a sans-IO core does not
know; a client probing fragmentation sends an MTU-sized request (RFC 5780 §5),
and an answer no bigger than its request is no amplifier for a spoofed source.

A CHANGE-REQUEST with neither flag set asks for nothing to change and is
answered like a plain Binding request, even without an alternate. RFC 5780
§6.1 reads as if any CHANGE-REQUEST needs the alternate, but clients send an
empty one to be understood by RFC 3489 servers (Stuntman's client does; coturn
answers it for that reason, see its ``handle_turn_binding``), and refusing a
request we can honour exactly helps nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from passage.addresses import Address, Transport
from passage.stun import AttributeType, AttributeValue, ChangeRequestValue, ErrorCode, Message
from passage.turn.errors import TurnError
from passage.turn.events import FiveTuple

_UNSPECIFIED = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class AlternateAddresses:
    """The two IPs and two ports of RFC 5780 §6, and the transports that listen on all four.

    ``ips[0]`` and ``ports[0]`` are the primary ones (A1, P1), ``ips[1]`` and
    ``ports[1]`` the alternate ones (A2, P2). Both IPs are of one family and
    specific (never a wildcard): the answer must leave from a known address.
    """

    ips: tuple[str, str]
    ports: tuple[int, int]
    transports: frozenset[Transport] = frozenset({Transport.UDP, Transport.TCP})

    def other(self, transport: Transport, local: Address) -> Address | None:
        """(Ca, Cp) for a request received on ``local``: the IP and port across from it.

        None when ``local`` is not one of the four addresses of ``transport``.
        """
        if transport not in self.transports:
            return None
        ip, port = local
        if ip not in self.ips or port not in self.ports:
            return None
        return (self.ips[ip == self.ips[0]], self.ports[port == self.ports[0]])

    def listeners(self) -> tuple[Address, ...]:
        """The four transport addresses, primary first."""
        return tuple((ip, port) for ip in self.ips for port in self.ports)


@dataclass(frozen=True, slots=True)
class BindingAnswer:
    """What to answer a Binding request with, and on which 5-tuple to send it."""

    attributes: list[tuple[int, AttributeValue]]
    five_tuple: FiveTuple
    """The request's own 5-tuple, or for UDP one with another local address and/or client port."""


def answer_binding(
    message: Message, five_tuple: FiveTuple, alternates: AlternateAddresses | None
) -> BindingAnswer:
    """The success answer to a Binding request (RFC 8489 §6.3.1, RFC 5780 §6.1).

    Raises :class:`TurnError` (400, or 420 with UNKNOWN-ATTRIBUTES) for what
    cannot be honoured; see the module docstring for the order.
    """
    change = message.get(AttributeType.CHANGE_REQUEST, ChangeRequestValue)
    padding = message.get(AttributeType.PADDING, bytes)
    response_port = message.get(AttributeType.RESPONSE_PORT, int)
    _check_datagram_attributes(five_tuple.transport, padding, response_port)
    local, client = five_tuple.server, five_tuple.client
    other = alternates.other(five_tuple.transport, local) if alternates is not None else None
    source = local
    if change is not None and (change.change_ip or change.change_port):
        if other is None:
            raise TurnError(
                ErrorCode.UNKNOWN_ATTRIBUTE,
                "CHANGE-REQUEST needs an alternate address, and this server has none here",
                ((AttributeType.UNKNOWN_ATTRIBUTES, (int(AttributeType.CHANGE_REQUEST),)),),
            )
        if five_tuple.transport is not Transport.UDP:
            raise TurnError(ErrorCode.BAD_REQUEST, "CHANGE-REQUEST applies to UDP only")
        # RFC 5780 §6.1 Table 1: change IP → Ca, change port → Cp.
        source = (
            other[0] if change.change_ip else local[0],
            other[1] if change.change_port else local[1],
        )
    attributes: list[tuple[int, AttributeValue]] = [
        (AttributeType.XOR_MAPPED_ADDRESS, client),
        (AttributeType.MAPPED_ADDRESS, client),  # RFC 5780 §6.1; an ALG rewrites only this one
    ]
    if source[0] not in _UNSPECIFIED:  # a wildcard listener does not know its source IP
        attributes.append((AttributeType.RESPONSE_ORIGIN, source))
    if other is not None:
        attributes.append((AttributeType.OTHER_ADDRESS, other))
    if padding is not None:
        attributes.append((AttributeType.PADDING, bytes(len(padding) + (-len(padding) & 3))))
    destination = (client[0], response_port) if response_port is not None else client
    if (source, destination) == (local, client):
        return BindingAnswer(attributes, five_tuple)
    return BindingAnswer(attributes, FiveTuple(five_tuple.transport, destination, source))


def _check_datagram_attributes(
    transport: Transport, padding: bytes | None, response_port: int | None
) -> None:
    """PADDING and RESPONSE-PORT: UDP only, never together, no port 0 (RFC 5780 §6.1, §7.5)."""
    if padding is None and response_port is None:
        return
    if transport is not Transport.UDP:
        raise TurnError(ErrorCode.BAD_REQUEST, "PADDING and RESPONSE-PORT apply to UDP only")
    if padding is not None and response_port is not None:
        raise TurnError(ErrorCode.BAD_REQUEST, "PADDING and RESPONSE-PORT together")
    if response_port == 0:
        raise TurnError(ErrorCode.BAD_REQUEST, "RESPONSE-PORT 0")

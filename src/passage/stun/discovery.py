"""RFC 5780 NAT behaviour discovery, client side: the probes to send and what answers say.

Sans-IO like the rest of the codec. :func:`binding_request` gives the bytes of
one probe; :func:`read_binding_response` reads what came back;
:func:`mapping_behavior` and :func:`filtering_behavior` turn the results of
the tests of RFC 5780 §4.3 and §4.4 into the behaviour they show (RFC 4787
terms). The caller owns the sockets, retransmissions (RFC 8489 §6.2.1) and
timeouts, and must note where each answer came from: a filtering probe only
says something if the answer really left from the other address, which the
caller checks against the datagram's source, not against RESPONSE-ORIGIN.

The tests, for a server whose first answer carried OTHER-ADDRESS (Ca, Cp):

- mapping (§4.3): test I to the primary address; test II to (Ca, primary
  port); test III to (Ca, Cp) only if II mapped differently from I;
- filtering (§4.4): test I; test II with change IP and change port; test III
  with change port only, if II got no answer. Use a source port with no
  recent traffic (§4.1).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from passage.addresses import Address

from .attributes import AttributeValue, ChangeRequestValue, ErrorCodeValue
from .constants import AttributeType, MessageClass, Method, StunDecodeError
from .message import Message, TransactionId, decode_message, encode_message

__all__ = [
    "BindingResult",
    "FilteringBehavior",
    "MappingBehavior",
    "binding_request",
    "filtering_behavior",
    "mapping_behavior",
    "read_binding_response",
]


class MappingBehavior(enum.StrEnum):
    """How a NAT maps one internal address and port (RFC 4787 §4.1)."""

    ENDPOINT_INDEPENDENT = "endpoint_independent"
    ADDRESS_DEPENDENT = "address_dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address_and_port_dependent"


class FilteringBehavior(enum.StrEnum):
    """Which outside sources a NAT lets through to a mapping (RFC 4787 §5)."""

    ENDPOINT_INDEPENDENT = "endpoint_independent"
    ADDRESS_DEPENDENT = "address_dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address_and_port_dependent"


@dataclass(frozen=True, slots=True)
class BindingResult:
    """What a Binding response says (RFC 8489 §14.1-§14.2, RFC 5780 §7.3-§7.4)."""

    mapped: Address | None
    """The reflexive address: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS (RFC 3489 servers)."""

    plain_mapped: Address | None
    """MAPPED-ADDRESS as sent; it differs from ``mapped`` when an ALG rewrote it (§3.6)."""

    response_origin: Address | None
    """RESPONSE-ORIGIN: where the server says it sent the answer from."""

    other_address: Address | None
    """OTHER-ADDRESS (Ca, Cp); None when the server cannot do CHANGE-REQUEST."""

    error: ErrorCodeValue | None
    """ERROR-CODE of an error response (420: the server has no alternate address)."""

    @property
    def alg_detected(self) -> bool:
        """MAPPED-ADDRESS and XOR-MAPPED-ADDRESS disagree: something rewrote the payload."""
        return self.plain_mapped is not None and self.plain_mapped != self.mapped


def binding_request(
    transaction_id: bytes,
    *,
    change_ip: bool = False,
    change_port: bool = False,
    response_port: int | None = None,
    padding: int = 0,
    fingerprint: bool = True,
) -> bytes:
    """A Binding request, with CHANGE-REQUEST when a flag is set (RFC 5780 §7.2).

    ``response_port`` asks for the answer on another port of this host
    (§7.5); ``padding`` adds that many bytes of PADDING (§7.6), and may not be
    combined with it. FINGERPRINT is added unless told not to (RFC 5780 §5).
    Raises ValueError for a transaction ID that is not 12 bytes, a port out of
    range, or PADDING with RESPONSE-PORT.
    """
    if padding and response_port is not None:
        raise ValueError("PADDING and RESPONSE-PORT cannot be combined (RFC 5780 §7.5)")
    attributes: list[tuple[int, AttributeValue]] = []
    if change_ip or change_port:
        attributes.append(
            (AttributeType.CHANGE_REQUEST, ChangeRequestValue(change_ip, change_port))
        )
    if response_port is not None:
        attributes.append((AttributeType.RESPONSE_PORT, response_port))
    if padding:
        attributes.append((AttributeType.PADDING, bytes(padding)))
    message = Message(
        Method.BINDING, MessageClass.REQUEST, TransactionId(transaction_id), tuple(attributes)
    )
    return encode_message(message, fingerprint=fingerprint)


def read_binding_response(data: bytes, transaction_id: bytes) -> BindingResult | None:
    """Read ``data`` as the answer to the Binding request ``transaction_id``.

    None when it is not one (not STUN, malformed, another transaction, not a
    Binding response): the caller keeps waiting for the real answer.
    """
    try:
        message = decode_message(data)
    except StunDecodeError:
        return None
    if (
        message.method != Method.BINDING
        or message.message_class not in (MessageClass.SUCCESS, MessageClass.ERROR)
        or message.transaction_id != transaction_id
    ):
        return None
    plain = message.get(AttributeType.MAPPED_ADDRESS, tuple)
    xor = message.get(AttributeType.XOR_MAPPED_ADDRESS, tuple)
    return BindingResult(
        mapped=xor if xor is not None else plain,
        plain_mapped=plain,
        response_origin=message.get(AttributeType.RESPONSE_ORIGIN, tuple),
        other_address=message.get(AttributeType.OTHER_ADDRESS, tuple),
        error=message.get(AttributeType.ERROR_CODE, ErrorCodeValue),
    )


def mapping_behavior(
    test1: Address, test2: Address, test3: Address | None = None
) -> MappingBehavior:
    """RFC 5780 §4.3 from the mapped addresses of tests I, II and (when needed) III.

    Test III is needed only when II mapped differently from I; without it
    that raises ValueError. A ``test1`` equal to the client's own local
    address means no NAT at all, which maps endpoint-independently too.
    """
    if test2 == test1:
        return MappingBehavior.ENDPOINT_INDEPENDENT
    if test3 is None:
        raise ValueError("test II mapped differently from test I: run test III")
    if test3 == test2:
        return MappingBehavior.ADDRESS_DEPENDENT
    return MappingBehavior.ADDRESS_AND_PORT_DEPENDENT


def filtering_behavior(
    test2_answered: bool, test3_answered: bool | None = None
) -> FilteringBehavior:
    """RFC 5780 §4.4 from whether tests II (change IP and port) and III (change port) got answers.

    Test III is needed only when II got none; without it that raises ValueError.
    """
    if test2_answered:
        return FilteringBehavior.ENDPOINT_INDEPENDENT
    if test3_answered is None:
        raise ValueError("test II got no answer: run test III")
    if test3_answered:
        return FilteringBehavior.ADDRESS_DEPENDENT
    return FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT

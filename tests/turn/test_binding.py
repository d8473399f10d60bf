"""Binding requests in the core: RFC 8489 §6.3.1 and RFC 5780 §6.1 NAT behaviour discovery."""

from __future__ import annotations

import pytest
from turn_harness import REALM, SERVER, Clock, error_code, make_server, new_client

from passage.addresses import Address, Transport
from passage.stun import (
    AttributeType,
    ChangeRequestValue,
    Message,
    MessageClass,
    Method,
    decode_message,
    encode_message,
)
from passage.stun.discovery import binding_request
from passage.turn.binding import AlternateAddresses
from passage.turn.config import TurnConfig
from passage.turn.events import Action, FiveTuple, SendToClient
from passage.turn.server import TurnServer

A1, A2 = SERVER[0], "192.0.2.11"
P1, P2 = SERVER[1], SERVER[1] + 1
ALTERNATES = AlternateAddresses((A1, A2), (P1, P2))
CLIENT = ("198.51.100.7", 40000)
TID = bytes(range(12))


def reply(actions: list[Action]) -> tuple[Message, FiveTuple]:
    """The one response the core sent, and the 5-tuple it goes out on."""
    sent = [action for action in actions if isinstance(action, SendToClient)]
    assert len(sent) == 1, actions
    return decode_message(sent[0].data), sent[0].five_tuple


def probe(
    server: TurnServer,
    local: Address = SERVER,
    transport: Transport = Transport.UDP,
    **request: object,
) -> tuple[Message, FiveTuple]:
    data = binding_request(TID, **request)  # type: ignore[arg-type]
    return reply(server.receive(data, FiveTuple(transport, CLIENT, local), Clock().now))


def plain_server() -> TurnServer:
    return make_server(TurnConfig(realm=REALM))


def discovery_server() -> TurnServer:
    return make_server(TurnConfig(realm=REALM), alternates=ALTERNATES)


# -- every Binding answer ------------------------------------------------------------


def test_answer_carries_both_mapped_addresses_and_where_it_came_from() -> None:
    # RFC 5780 §6.1: MAPPED-ADDRESS and XOR-MAPPED-ADDRESS both; RESPONSE-ORIGIN always.
    response, five_tuple = probe(plain_server())
    assert response.message_class is MessageClass.SUCCESS
    assert response.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == CLIENT
    assert response.get(AttributeType.MAPPED_ADDRESS, tuple) == CLIENT
    assert response.get(AttributeType.RESPONSE_ORIGIN, tuple) == SERVER
    assert five_tuple == FiveTuple(Transport.UDP, CLIENT, SERVER)


def test_without_an_alternate_address_there_is_no_other_address() -> None:
    # RFC 5780 §6: "MUST NOT include an OTHER-ADDRESS attribute in any Response".
    response, _ = probe(plain_server())
    assert not response.has(AttributeType.OTHER_ADDRESS)


def test_a_wildcard_listener_names_no_response_origin() -> None:
    response, _ = probe(plain_server(), local=("0.0.0.0", 3478))
    assert response.message_class is MessageClass.SUCCESS
    assert not response.has(AttributeType.RESPONSE_ORIGIN)


def test_fingerprint_follows_the_request_and_software_is_never_sent() -> None:
    """A Binding answer is unauthenticated: it names no software (issue 10, reflection)."""
    response, _ = probe(plain_server(), fingerprint=True)
    assert response.has(AttributeType.FINGERPRINT)
    assert not response.has(AttributeType.SOFTWARE)
    response, _ = probe(plain_server(), fingerprint=False)
    assert not response.has(AttributeType.FINGERPRINT)


# -- CHANGE-REQUEST without an alternate address (RFC 5780 §6, §6.1) -----------------


@pytest.mark.parametrize(("change_ip", "change_port"), [(True, False), (False, True), (True, True)])
def test_change_request_without_an_alternate_is_420_naming_the_attribute(
    change_ip: bool, change_port: bool
) -> None:
    server = plain_server()
    response, five_tuple = probe(server, change_ip=change_ip, change_port=change_port)
    assert error_code(response) == 420
    assert response.get(AttributeType.UNKNOWN_ATTRIBUTES, tuple) == (AttributeType.CHANGE_REQUEST,)
    assert five_tuple.server == SERVER  # an error never leaves from elsewhere
    assert server.metrics.errors[420] == 1


def test_empty_change_request_is_answered_as_a_plain_binding() -> None:
    # Neither flag: nothing to change. Clients send this to RFC 3489 servers (coturn answers it).
    message = Message(
        Method.BINDING,
        MessageClass.REQUEST,
        TID,
        ((AttributeType.CHANGE_REQUEST, ChangeRequestValue()),),
    )
    actions = plain_server().receive(
        encode_message(message), FiveTuple(Transport.UDP, CLIENT, SERVER), 0.0
    )
    response, five_tuple = reply(actions)
    assert response.message_class is MessageClass.SUCCESS
    assert five_tuple.server == SERVER


# -- CHANGE-REQUEST with an alternate address: RFC 5780 §6.1 Table 1 ------------------

LOCALS = [(A1, P1), (A1, P2), (A2, P1), (A2, P2)]
OTHER = {(A1, P1): (A2, P2), (A1, P2): (A2, P1), (A2, P1): (A1, P2), (A2, P2): (A1, P1)}


@pytest.mark.parametrize("local", LOCALS)
@pytest.mark.parametrize(
    ("change_ip", "change_port"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_table_1_source_address_and_other_address(
    local: Address, change_ip: bool, change_port: bool
) -> None:
    other = OTHER[local]
    response, five_tuple = probe(
        discovery_server(), local, change_ip=change_ip, change_port=change_port
    )
    source = (other[0] if change_ip else local[0], other[1] if change_port else local[1])
    assert response.message_class is MessageClass.SUCCESS
    assert five_tuple == FiveTuple(Transport.UDP, CLIENT, source)
    assert response.get(AttributeType.RESPONSE_ORIGIN, tuple) == source
    assert response.get(AttributeType.OTHER_ADDRESS, tuple) == other  # Ca:Cp whatever the flags
    assert response.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == CLIENT


def test_a_listener_outside_the_four_has_no_alternate() -> None:
    server = discovery_server()
    elsewhere = ("2001:db8::10", P1)
    response, _ = probe(server, elsewhere)
    assert response.message_class is MessageClass.SUCCESS
    assert not response.has(AttributeType.OTHER_ADDRESS)
    response, _ = probe(server, elsewhere, change_ip=True)
    assert error_code(response) == 420


# -- streams ------------------------------------------------------------------------


def test_tcp_gets_other_address_but_change_requests_are_400() -> None:
    # TCP listens on all four too (RFC 5780 §6), so mapping tests work; a connection's
    # answer cannot leave from another address, so filtering tests do not (§3.2).
    server = discovery_server()
    response, five_tuple = probe(server, transport=Transport.TCP)
    assert response.get(AttributeType.OTHER_ADDRESS, tuple) == (A2, P2)
    assert five_tuple == FiveTuple(Transport.TCP, CLIENT, SERVER)
    response, five_tuple = probe(server, transport=Transport.TCP, change_port=True)
    assert error_code(response) == 400
    assert five_tuple == FiveTuple(Transport.TCP, CLIENT, SERVER)


def test_tls_has_no_alternate_listeners_so_change_requests_are_420() -> None:
    server = discovery_server()
    response, _ = probe(server, transport=Transport.TLS)
    assert response.message_class is MessageClass.SUCCESS
    assert not response.has(AttributeType.OTHER_ADDRESS)
    response, _ = probe(server, transport=Transport.TLS, change_ip=True)
    assert error_code(response) == 420


@pytest.mark.parametrize("transport", [Transport.TCP, Transport.TLS])
@pytest.mark.parametrize("request_", [{"padding": 8}, {"response_port": 5000}])
def test_padding_and_response_port_over_a_stream_are_400(
    transport: Transport, request_: dict[str, int]
) -> None:
    response, _ = probe(discovery_server(), transport=transport, **request_)
    assert error_code(response) == 400


# -- RESPONSE-PORT and PADDING (RFC 5780 §6.1, §7.5, §7.6) ---------------------------


def test_response_port_sends_the_answer_to_another_port_of_the_client() -> None:
    response, five_tuple = probe(plain_server(), response_port=41000)
    assert response.message_class is MessageClass.SUCCESS
    assert five_tuple == FiveTuple(Transport.UDP, (CLIENT[0], 41000), SERVER)
    assert response.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == CLIENT  # still the request's


def test_response_port_combines_with_change_request() -> None:
    _, five_tuple = probe(discovery_server(), response_port=41000, change_ip=True)
    assert five_tuple == FiveTuple(Transport.UDP, (CLIENT[0], 41000), (A2, P1))


def test_response_port_zero_is_400() -> None:
    response, _ = probe(plain_server(), response_port=0)
    assert error_code(response) == 400


def test_padding_with_response_port_is_400() -> None:
    # binding_request refuses to build this, as it should; build it by hand.
    attributes = ((AttributeType.RESPONSE_PORT, 41000), (AttributeType.PADDING, bytes(8)))
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, attributes)
    actions = plain_server().receive(
        encode_message(message), FiveTuple(Transport.UDP, CLIENT, SERVER), 0.0
    )
    response, five_tuple = reply(actions)
    assert error_code(response) == 400
    assert five_tuple.client == CLIENT  # the refusal goes to the request's own port


@pytest.mark.parametrize(("sent", "returned"), [(1500, 1500), (1, 4), (0, 0), (7, 8)])
def test_padding_is_as_long_as_the_requests_rounded_to_four(sent: int, returned: int) -> None:
    attributes = ((AttributeType.PADDING, bytes(sent)),)
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, attributes)
    actions = plain_server().receive(
        encode_message(message), FiveTuple(Transport.UDP, CLIENT, SERVER), 0.0
    )
    response, _ = reply(actions)
    padding = response.get(AttributeType.PADDING, bytes)
    assert padding is not None and len(padding) == returned


# -- the alternate addresses are TURN listeners too ---------------------------------


def test_allocate_on_an_alternate_address_works_like_on_the_primary() -> None:
    clock = Clock()
    server = discovery_server()
    client = new_client(server, clock)
    client.five_tuple = FiveTuple(Transport.UDP, CLIENT, (A2, P2))
    response = client.allocate()
    assert response.message_class is MessageClass.SUCCESS
    assert client.five_tuple in server.allocations


def test_alternate_addresses_name_the_four_listeners_primary_first() -> None:
    assert ALTERNATES.listeners() == ((A1, P1), (A1, P2), (A2, P1), (A2, P2))
    assert ALTERNATES.other(Transport.TLS, (A1, P1)) is None
    assert ALTERNATES.other(Transport.UDP, (A1, 5349)) is None


def test_an_ipv6_pair_works_the_same() -> None:
    alternates = AlternateAddresses(("2001:db8::10", "2001:db8::11"), (P1, P2))
    server = make_server(TurnConfig(realm=REALM), alternates=alternates)
    response, five_tuple = probe(server, ("2001:db8::11", P1), change_port=True)
    assert five_tuple.server == ("2001:db8::11", P2)
    assert response.get(AttributeType.RESPONSE_ORIGIN, tuple) == ("2001:db8::11", P2)
    assert response.get(AttributeType.OTHER_ADDRESS, tuple) == ("2001:db8::10", P2)
    response, _ = probe(server, ("::", P1))
    assert not response.has(AttributeType.RESPONSE_ORIGIN)

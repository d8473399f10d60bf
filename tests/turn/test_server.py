"""The TURN core, driven in memory with a virtual clock (RFC 8656)."""

from __future__ import annotations

import pytest
from turn_harness import (
    REALM,
    Client,
    Clock,
    FakeRelay,
    answer,
    error_code,
    make_server,
    new_client,
    transaction_id,
)

from passage.addresses import Transport
from passage.stun import (
    AddressErrorCodeValue,
    AttributeType,
    Message,
    MessageClass,
    Method,
    PasswordAlgorithm,
    PasswordAlgorithmValue,
    decode_message,
    encode_message,
    long_term_key,
    verify_integrity,
)
from passage.turn.config import TurnConfig
from passage.turn.credentials import make_rest_credentials
from passage.turn.events import (
    AllocationEnded,
    AllocationStarted,
    BindRelay,
    ReleaseRelay,
    SendToPeer,
)
from passage.turn.server import TurnServer

UDP = ((AttributeType.REQUESTED_TRANSPORT, 17),)
PUBLIC_PEER = ("203.0.113.50", 5000)


def open_peers_server(**overrides: object) -> TurnServer:
    """A server that relays to documentation addresses, as the NAT lab does."""
    config = TurnConfig(realm=REALM, allowed_peer_ranges=("203.0.113.0/24",), **overrides)  # type: ignore[arg-type]
    return make_server(config)


# -- STUN Binding (RFC 8489 §6.3.1) ------------------------------------------------


def test_binding_request_answers_reflexive_address_without_auth(client: Client) -> None:
    response, _ = client.request(Method.BINDING, sign=False)
    assert response is not None and response.message_class is MessageClass.SUCCESS
    assert response.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == ("198.51.100.7", 40000)


def test_unknown_comprehension_required_attribute_gets_420(client: Client) -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, transaction_id(), ((0x7F01, b"xx"),))
    response = answer(client.send(encode_message(message)))
    assert response is not None and error_code(response) == 420
    assert response.get(AttributeType.UNKNOWN_ATTRIBUTES, tuple) == (0x7F01,)


def test_unknown_optional_attribute_is_ignored(client: Client) -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, transaction_id(), ((0xC001, b"xx"),))
    response = answer(client.send(encode_message(message)))
    assert response is not None and response.message_class is MessageClass.SUCCESS


def test_malformed_packet_is_dropped_and_counted(client: Client, server: TurnServer) -> None:
    assert client.send(b"\x00\x01\x00\x04garbage-not-stun") == []
    assert server.metrics.drops["malformed"] == 1


# -- Long-term credentials (RFC 8489 §9.2) -----------------------------------------


def test_unsigned_allocate_is_challenged_with_realm_nonce_and_algorithms(client: Client) -> None:
    response, _ = client.request(Method.ALLOCATE, UDP, sign=False)
    assert response is not None and error_code(response) == 401
    assert response.get(AttributeType.REALM, str) == REALM
    assert response.get(AttributeType.NONCE, str)
    assert response.has(AttributeType.PASSWORD_ALGORITHMS)


def test_wrong_password_gets_401(server: TurnServer, clock: Clock) -> None:
    client = new_client(server, clock, password="nope")
    response = client.allocate()
    assert error_code(response) == 401
    assert server.metrics.auth_failures["bad message integrity"] == 1


def test_unknown_user_gets_401(server: TurnServer, clock: Clock) -> None:
    response = new_client(server, clock, username="mallory").allocate()
    assert error_code(response) == 401


def test_repeated_auth_failures_from_one_ip_are_dropped(clock: Clock) -> None:
    server = make_server(TurnConfig(realm=REALM, auth_failures_per_minute=3))
    client = new_client(server, clock, password="nope")
    for _ in range(3):
        assert error_code(client.allocate()) == 401
    assert client.send(client.build(Method.ALLOCATE, UDP)) == []
    assert server.metrics.drops["auth_rate_limited"] == 1
    clock.advance(61)
    server.handle_timer(clock.now)
    response, _ = client.request(Method.ALLOCATE, UDP)
    assert response is not None and error_code(response) == 401


def test_rate_limited_ip_still_gets_challenges_and_correct_credentials_pass(clock: Clock) -> None:
    """One bad client behind a shared NAT address must not lock out its neighbours."""
    server = make_server(TurnConfig(realm=REALM, auth_failures_per_minute=2))
    bad = new_client(server, clock, port=1, password="nope")
    for _ in range(2):
        bad.allocate()
    assert bad.send(bad.build(Method.ALLOCATE, UDP)) == []
    neighbour = new_client(server, clock, port=2)
    challenge, _ = neighbour.request(Method.ALLOCATE, UDP, sign=False)
    assert challenge is not None and error_code(challenge) == 401
    assert neighbour.allocate().message_class is MessageClass.SUCCESS


def test_stale_nonce_gets_438_then_succeeds_with_the_new_one(client: Client, clock: Clock) -> None:
    assert client.allocate().message_class is MessageClass.SUCCESS
    clock.advance(601)
    old_nonce = client.nonce
    stale = answer(client.send(client.build(Method.REFRESH)))
    assert stale is not None and error_code(stale) == 438
    assert stale.get(AttributeType.NONCE, str) != old_nonce
    response, _ = client.request(Method.REFRESH)
    assert response is not None and response.message_class is MessageClass.SUCCESS


def test_nonce_from_another_ip_is_stale(server: TurnServer, clock: Clock) -> None:
    first = new_client(server, clock)
    first.request(Method.ALLOCATE, UDP, sign=False)
    first.allocate()
    other = new_client(server, clock)
    other.five_tuple = other.five_tuple._replace(client=("198.51.100.99", 1))
    other.nonce = first.nonce
    response = answer(other.send(other.build(Method.ALLOCATE, UDP)))
    assert response is not None and error_code(response) == 438


def test_missing_realm_with_integrity_gets_400(client: Client) -> None:
    client.request(Method.ALLOCATE, UDP, sign=False)
    message = Message(
        Method.ALLOCATE,
        MessageClass.REQUEST,
        transaction_id(),
        ((AttributeType.USERNAME, "alice"),),
    )
    response = answer(client.send(encode_message(message, integrity_key=client.key)))
    assert response is not None and error_code(response) == 400


def test_sha256_password_algorithm_and_integrity(server: TurnServer, clock: Clock) -> None:
    client = new_client(server, clock, algorithm=PasswordAlgorithm.SHA256)
    response = client.allocate()
    assert response.message_class is MessageClass.SUCCESS
    assert response.has(AttributeType.MESSAGE_INTEGRITY_SHA256)
    assert verify_integrity(response, client.key)


def test_wrong_realm_gets_401(client: Client, server: TurnServer) -> None:
    challenge, _ = client.request(Method.ALLOCATE, UDP, sign=False)
    assert challenge is not None
    client.nonce = challenge.get(AttributeType.NONCE, str)
    assert client.nonce is not None
    message = Message(Method.ALLOCATE, MessageClass.REQUEST, transaction_id(), (
        *UDP, (AttributeType.USERNAME, "alice"), (AttributeType.REALM, "other.realm"),
        (AttributeType.NONCE, client.nonce),
    ))  # fmt: skip
    key = long_term_key("alice", "other.realm", "wonderland")
    response = answer(client.send(encode_message(message, integrity_key=key)))
    assert response is not None and error_code(response) == 401
    assert server.metrics.auth_failures["wrong realm"] == 1


def test_password_algorithms_not_echoed_as_offered_gets_400(client: Client) -> None:
    """RFC 8489 §9.2.4: PASSWORD-ALGORITHMS must match what the server sent."""
    challenge, _ = client.request(Method.ALLOCATE, UDP, sign=False)
    assert challenge is not None
    client.nonce = challenge.get(AttributeType.NONCE, str)
    assert client.nonce is not None
    message = Message(Method.ALLOCATE, MessageClass.REQUEST, transaction_id(), (
        *UDP, (AttributeType.USERNAME, "alice"), (AttributeType.REALM, REALM),
        (AttributeType.NONCE, client.nonce),
        (AttributeType.PASSWORD_ALGORITHMS, (PasswordAlgorithmValue(PasswordAlgorithm.SHA256),)),
        (AttributeType.PASSWORD_ALGORITHM, PasswordAlgorithmValue(PasswordAlgorithm.SHA256)),
    ))  # fmt: skip
    key = long_term_key("alice", REALM, "wonderland", PasswordAlgorithm.SHA256)
    response = answer(client.send(encode_message(message, integrity_key=key,
                                                 integrity_sha256=True)))  # fmt: skip
    assert response is not None and error_code(response) == 400


def test_rest_credentials_from_either_secret(server: TurnServer, clock: Clock) -> None:
    for port, secret in ((41001, "north"), (41002, "south")):
        username, password = make_rest_credentials(secret, "carol", 3600, clock.now)
        client = new_client(server, clock, port=port, username=username, password=password)
        assert client.allocate().message_class is MessageClass.SUCCESS
    subjects = {a.subject for a in server.allocations.values()}
    assert subjects == {"carol"}


def test_expired_rest_credential_gets_401(server: TurnServer, clock: Clock) -> None:
    username, password = make_rest_credentials("north", "carol", 60, clock.now - 120)
    client = new_client(server, clock, username=username, password=password)
    assert error_code(client.allocate()) == 401
    assert server.metrics.auth_failures["credential expired"] == 1


def test_rest_credential_expiring_during_allocation_fails_refresh(
    server: TurnServer, clock: Clock
) -> None:
    username, password = make_rest_credentials("north", None, 100, clock.now)
    client = new_client(server, clock, username=username, password=password)
    assert client.allocate().message_class is MessageClass.SUCCESS
    clock.advance(200)
    response, _ = client.request(Method.REFRESH)
    assert response is not None and error_code(response) == 401


# -- Allocate (RFC 8656 §7.2) --------------------------------------------------------


def test_allocate_binds_a_relay_and_answers_signed(client: Client, server: TurnServer) -> None:
    response, actions = client.request(Method.ALLOCATE, UDP)
    assert response is None
    (bind,) = actions
    assert isinstance(bind, BindRelay) and bind.families == (1,) and not bind.even_port
    relay = FakeRelay("r")
    done = server.relay_bound(
        client.five_tuple, [(relay, ("192.0.2.10", 50000))], None, client.clock.now
    )
    assert isinstance(done[0], AllocationStarted)
    success = answer(done)
    assert success is not None and success.message_class is MessageClass.SUCCESS
    assert success.get(AttributeType.XOR_RELAYED_ADDRESS, tuple) == ("192.0.2.10", 50000)
    assert success.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == ("198.51.100.7", 40000)
    assert success.get(AttributeType.LIFETIME, int) == 600
    assert verify_integrity(success, client.key)
    assert relay.sent == []


def test_allocate_lifetime_is_clamped_to_default_and_maximum(
    server: TurnServer, clock: Clock
) -> None:
    for port, asked, granted in ((1, 30, 600), (2, 1200, 1200), (3, 99999, 3600)):
        client = new_client(server, clock, port=port)
        response = client.allocate((*UDP, (AttributeType.LIFETIME, asked)))
        assert response.get(AttributeType.LIFETIME, int) == granted


def test_retransmitted_allocate_gets_the_same_answer_other_gets_437(client: Client) -> None:
    client.request(Method.ALLOCATE, UDP, sign=False)
    tid = transaction_id()
    first = client.allocate()
    assert first.message_class is MessageClass.SUCCESS
    data = client.build(Method.ALLOCATE, UDP, tid=first.transaction_id)
    again = answer(client.send(data))
    assert again is not None and again.raw == first.raw
    other = answer(client.send(client.build(Method.ALLOCATE, UDP, tid=tid)))
    assert other is not None and error_code(other) == 437


def test_allocate_retransmitted_while_binding_is_counted_not_answered(
    client: Client, server: TurnServer
) -> None:
    first, actions = client.request(Method.ALLOCATE, UDP)
    assert first is None and isinstance(actions[0], BindRelay)
    assert client.send(client.build(Method.ALLOCATE, UDP)) == []
    assert server.metrics.drops["allocate_retransmitted_while_binding"] == 1


def test_allocate_requires_requested_transport_udp(client: Client) -> None:
    assert error_code(client.allocate(())) == 400
    assert error_code(client.allocate(((AttributeType.REQUESTED_TRANSPORT, 6),))) == 442


def test_ipv6_relay_on_ipv4_only_server_gets_440(client: Client) -> None:
    response = client.allocate((*UDP, (AttributeType.REQUESTED_ADDRESS_FAMILY, 2)))
    assert error_code(response) == 440


def test_dual_allocation_without_ipv6_gives_ipv4_and_address_error(client: Client) -> None:
    response = client.allocate((*UDP, (AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2)))
    assert response.message_class is MessageClass.SUCCESS
    error = response.get(AttributeType.ADDRESS_ERROR_CODE, AddressErrorCodeValue)
    assert error is not None and error.family == 2 and error.code == 440


def test_dual_allocation_binds_both_families(clock: Clock) -> None:
    server = make_server(relay_families=frozenset({1, 2}))
    client = new_client(server, clock)
    response = client.allocate((*UDP, (AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2)))
    relayed = [v for t, v in response.attributes if t == AttributeType.XOR_RELAYED_ADDRESS]
    assert [address[0] for address in relayed] == ["192.0.2.10", "2001:db8::10"]


def test_family_attribute_conflicts_get_400(client: Client) -> None:
    both = (
        *UDP,
        (AttributeType.REQUESTED_ADDRESS_FAMILY, 1),
        (AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2),
    )
    assert error_code(client.allocate(both)) == 400
    ipv4_additional = (*UDP, (AttributeType.ADDITIONAL_ADDRESS_FAMILY, 1))
    assert error_code(client.allocate(ipv4_additional)) == 400
    token_and_even = (
        *UDP,
        (AttributeType.RESERVATION_TOKEN, b"12345678"),
        (AttributeType.EVEN_PORT, False),
    )
    assert error_code(client.allocate(token_and_even)) == 400


def test_even_port_with_reservation_then_allocate_with_token(
    server: TurnServer, clock: Clock
) -> None:
    first = new_client(server, clock, port=1)
    response = first.allocate((*UDP, (AttributeType.EVEN_PORT, True)))
    token = response.get(AttributeType.RESERVATION_TOKEN, bytes)
    assert token is not None and len(token) == 8
    second = new_client(server, clock, port=2)
    with_token = second.allocate((*UDP, (AttributeType.RESERVATION_TOKEN, token)))
    assert with_token.get(AttributeType.XOR_RELAYED_ADDRESS, tuple) == ("192.0.2.10", 40001)
    third = new_client(server, clock, port=3)
    assert error_code(third.allocate((*UDP, (AttributeType.RESERVATION_TOKEN, token)))) == 508


def test_reservation_token_takes_the_reserved_family_on_an_ipv6_only_server(
    clock: Clock,
) -> None:
    """A token excludes REQUESTED-ADDRESS-FAMILY, so the reservation's family applies
    (found with turnutils_uclient -x against a server listening on ::1 only)."""
    server = make_server(relay_families=frozenset({2}))
    first = new_client(server, clock, port=1)
    response = first.allocate(
        (*UDP, (AttributeType.REQUESTED_ADDRESS_FAMILY, 2), (AttributeType.EVEN_PORT, True))
    )
    token = response.get(AttributeType.RESERVATION_TOKEN, bytes)
    assert token is not None
    second = new_client(server, clock, port=2)
    taken = second.allocate((*UDP, (AttributeType.RESERVATION_TOKEN, token)))
    assert taken.message_class is MessageClass.SUCCESS


def test_unused_reservation_is_released_after_30_seconds(server: TurnServer, clock: Clock) -> None:
    new_client(server, clock).allocate((*UDP, (AttributeType.EVEN_PORT, True)))
    clock.advance(31)
    released = [a for a in server.handle_timer(clock.now) if isinstance(a, ReleaseRelay)]
    assert [getattr(a.relay, "name", None) for a in released] == ["reserved"]


def test_even_port_without_reservation_asks_for_even_only(client: Client) -> None:
    _, actions = client.request(Method.ALLOCATE, (*UDP, (AttributeType.EVEN_PORT, False)))
    (bind,) = actions
    assert isinstance(bind, BindRelay) and bind.even_port and not bind.reserve_next


def test_dont_fragment_is_passed_to_the_relay_bind(client: Client) -> None:
    _, actions = client.request(Method.ALLOCATE, (*UDP, (AttributeType.DONT_FRAGMENT, b"")))
    (bind,) = actions
    assert isinstance(bind, BindRelay) and bind.dont_fragment


def test_relay_bind_failure_gets_508(client: Client, server: TurnServer) -> None:
    client.request(Method.ALLOCATE, UDP)
    response = answer(server.relay_bind_failed(client.five_tuple, client.clock.now))
    assert response is not None and error_code(response) == 508
    assert server._per_user == {}  # the failed allocation holds no quota
    assert client.allocate().message_class is MessageClass.SUCCESS


def test_stream_closed_while_binding_frees_quota_and_releases_late_relays(
    server: TurnServer, clock: Clock
) -> None:
    client = new_client(server, clock, transport=Transport.TCP)
    client.request(Method.ALLOCATE, UDP)
    assert server.client_closed(client.five_tuple, clock.now) == []
    assert server._per_user == {}
    relay = FakeRelay("late")
    late = server.relay_bound(client.five_tuple, [(relay, ("192.0.2.10", 5))], None, clock.now)
    assert [a.relay for a in late if isinstance(a, ReleaseRelay)] == [relay]


def test_per_user_quota_gets_486(clock: Clock) -> None:
    server = make_server(TurnConfig(realm=REALM, max_allocations_per_user=2))
    codes = [error_code(new_client(server, clock, port=p).allocate()) for p in (1, 2, 3)]
    assert codes == [None, None, 486]
    assert (
        error_code(new_client(server, clock, port=4, username="bob", password="builder").allocate())
        is None
    )


def test_total_quota_gets_486(clock: Clock) -> None:
    server = make_server(TurnConfig(realm=REALM, max_allocations_total=1))
    assert error_code(new_client(server, clock, port=1).allocate()) is None
    assert (
        error_code(new_client(server, clock, port=2, username="bob", password="builder").allocate())
        == 486
    )


def test_quota_frees_when_an_allocation_ends(clock: Clock) -> None:
    server = make_server(TurnConfig(realm=REALM, max_allocations_per_user=1))
    first = new_client(server, clock, port=1)
    first.allocate()
    first.request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    assert error_code(new_client(server, clock, port=2).allocate()) is None


# -- Refresh (RFC 8656 §7.3) ---------------------------------------------------------


def test_refresh_extends_and_zero_deletes(client: Client, server: TurnServer) -> None:
    client.allocate()
    response, _ = client.request(Method.REFRESH, ((AttributeType.LIFETIME, 1000),))
    assert response is not None and response.get(AttributeType.LIFETIME, int) == 1000
    response, actions = client.request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    assert response is not None and response.get(AttributeType.LIFETIME, int) == 0
    assert verify_integrity(response, client.key)
    ended = [a for a in actions if isinstance(a, AllocationEnded)]
    assert [a.reason for a in ended] == ["refresh_zero"]
    assert any(isinstance(a, ReleaseRelay) for a in actions)
    assert server.allocations == {}


def test_refresh_without_allocation_gets_437(client: Client) -> None:
    response, _ = client.request(Method.REFRESH)
    assert response is not None and error_code(response) == 437


def test_refresh_by_another_user_gets_441(client: Client) -> None:
    client.allocate()
    client.username, client.password = "bob", "builder"
    response, _ = client.request(Method.REFRESH)
    assert response is not None and error_code(response) == 441


def test_allocation_expires_on_the_virtual_clock(
    client: Client, server: TurnServer, clock: Clock
) -> None:
    client.allocate()
    clock.advance(599)
    assert server.handle_timer(clock.now) == []
    clock.advance(2)
    actions = server.handle_timer(clock.now)
    assert [a.reason for a in actions if isinstance(a, AllocationEnded)] == ["expired"]


def test_refresh_of_a_missing_family_gets_443(client: Client) -> None:
    client.allocate()
    response, _ = client.request(Method.REFRESH, ((AttributeType.REQUESTED_ADDRESS_FAMILY, 2),))
    assert response is not None and error_code(response) == 443


def test_refresh_zero_for_one_family_keeps_the_other(clock: Clock) -> None:
    server = make_server(relay_families=frozenset({1, 2}))
    client = new_client(server, clock)
    client.allocate((*UDP, (AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2)))
    response, actions = client.request(
        Method.REFRESH, ((AttributeType.LIFETIME, 0), (AttributeType.REQUESTED_ADDRESS_FAMILY, 2))
    )
    assert response is not None and response.message_class is MessageClass.SUCCESS
    assert [getattr(a.relay, "name", "") for a in actions if isinstance(a, ReleaseRelay)] == [
        "relay2"
    ]
    assert list(server.allocations[client.five_tuple].relays) == [1]


# -- Permissions (RFC 8656 §9) -------------------------------------------------------


def test_create_permission_installs_and_expires(clock: Clock) -> None:
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    response, _ = client.request(
        Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),)
    )
    assert response is not None and response.message_class is MessageClass.SUCCESS
    allocation = server.allocations[client.five_tuple]
    assert "203.0.113.50" in allocation.permissions
    clock.advance(299)
    server.handle_timer(clock.now)
    assert "203.0.113.50" in allocation.permissions
    clock.advance(2)
    server.handle_timer(clock.now)
    assert allocation.permissions == {}


def test_create_permission_to_a_denied_peer_gets_403_and_installs_nothing(clock: Clock) -> None:
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    response, _ = client.request(
        Method.CREATE_PERMISSION,
        (
            (AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),
            (AttributeType.XOR_PEER_ADDRESS, ("127.0.0.1", 9)),
        ),
    )
    assert response is not None and error_code(response) == 403
    assert server.allocations[client.five_tuple].permissions == {}


def test_create_permission_for_other_family_gets_443(client: Client) -> None:
    client.allocate()
    response, _ = client.request(
        Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, ("2001:db8::5", 1)),)
    )
    assert response is not None and error_code(response) == 443


def test_create_permission_without_peer_gets_400(client: Client) -> None:
    client.allocate()
    response, _ = client.request(Method.CREATE_PERMISSION)
    assert response is not None and error_code(response) == 400


def test_permission_quota_gets_508(clock: Clock) -> None:
    server = open_peers_server(max_permissions_per_allocation=2)
    client = new_client(server, clock)
    client.allocate()
    for host, expected in (("203.0.113.1", None), ("203.0.113.2", None), ("203.0.113.3", 508)):
        response, _ = client.request(
            Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, (host, 1)),)
        )
        assert response is not None and error_code(response) == expected


# -- Send and Data indications (RFC 8656 §10) -----------------------------------------


def send_indication(client: Client, peer: tuple[str, int], data: bytes) -> bytes:
    return client.build(
        Method.SEND,
        ((AttributeType.XOR_PEER_ADDRESS, peer), (AttributeType.DATA, data)),
        sign=False,
        message_class=MessageClass.INDICATION,
    )


def test_send_indication_goes_to_a_permitted_peer_only(clock: Clock) -> None:
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    assert client.send(send_indication(client, PUBLIC_PEER, b"early")) == []
    assert server.metrics.drops["no_permission"] == 1
    client.request(Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),))
    (action,) = client.send(send_indication(client, PUBLIC_PEER, b"hello"))
    assert isinstance(action, SendToPeer) and action.data == b"hello"
    assert action.peer == PUBLIC_PEER
    allocation = server.allocations[client.five_tuple]
    assert (allocation.bytes_to_peer, allocation.packets_to_peer) == (5, 1)


def test_send_indication_with_unknown_required_attribute_is_discarded(clock: Clock) -> None:
    """RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute."""
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    client.request(Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),))
    data = client.build(
        Method.SEND,
        ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER), (AttributeType.DATA, b"x"), (0x7F02, b"")),
        sign=False,
        message_class=MessageClass.INDICATION,
    )
    assert client.send(data) == []
    assert server.metrics.drops["unknown_required_attribute"] == 1


def test_responses_from_a_client_are_dropped(client: Client, server: TurnServer) -> None:
    data = client.build(Method.BINDING, sign=False, message_class=MessageClass.SUCCESS)
    assert client.send(data) == []
    assert server.metrics.drops["unexpected_message_class"] == 1


def test_unknown_indication_is_dropped(client: Client, server: TurnServer) -> None:
    data = client.build(Method.DATA, sign=False, message_class=MessageClass.INDICATION)
    assert client.send(data) == []
    assert server.metrics.drops["unknown_indication"] == 1


def test_send_indication_with_optional_extras_takes_the_general_path(clock: Clock) -> None:
    """A Send the fast decoder declines (here: SOFTWARE) is still relayed."""
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    client.request(Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),))
    data = client.build(Method.SEND, (
        (AttributeType.SOFTWARE, "test"), (AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),
        (AttributeType.DATA, b"via decode_message"),
    ), sign=False, message_class=MessageClass.INDICATION)  # fmt: skip
    (action,) = client.send(data)
    assert isinstance(action, SendToPeer) and action.data == b"via decode_message"
    missing_data = client.build(Method.SEND, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),),
                                sign=False, message_class=MessageClass.INDICATION)  # fmt: skip
    assert client.send(missing_data) == []
    assert server.metrics.drops["bad_send_indication"] == 1


def test_send_to_a_released_family_is_dropped(clock: Clock) -> None:
    """Refresh(0) of one family of a dual allocation leaves its permissions unusable."""
    config = TurnConfig(realm=REALM, allowed_peer_ranges=("2001:db8:5::/48",))
    server = make_server(config, relay_families=frozenset({1, 2}))
    client = new_client(server, clock)
    client.allocate((*UDP, (AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2)))
    v6_peer = ("2001:db8:5::1", 7)
    client.request(Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, v6_peer),))
    assert len(client.send(send_indication(client, v6_peer, b"x"))) == 1
    client.request(Method.REFRESH, (
        (AttributeType.LIFETIME, 0), (AttributeType.REQUESTED_ADDRESS_FAMILY, 2)))  # fmt: skip
    assert client.send(send_indication(client, v6_peer, b"x")) == []
    assert server.metrics.drops["peer_family_mismatch"] == 1


def test_send_indication_without_allocation_is_dropped(client: Client, server: TurnServer) -> None:
    assert client.send(send_indication(client, PUBLIC_PEER, b"x")) == []
    assert server.metrics.drops["no_allocation"] == 1


def test_data_indication_carries_peer_and_data(server: TurnServer) -> None:
    message = decode_message(server.data_indication(PUBLIC_PEER, b"payload"))
    assert (message.method, message.message_class) == (Method.DATA, MessageClass.INDICATION)
    assert message.get(AttributeType.XOR_PEER_ADDRESS, tuple) == PUBLIC_PEER
    assert message.get(AttributeType.DATA, bytes) == b"payload"


def test_bandwidth_cap_drops_send_indications_over_budget(clock: Clock) -> None:
    server = open_peers_server(max_bytes_per_second=10)
    client = new_client(server, clock)
    client.allocate()
    client.request(Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),))
    assert len(client.send(send_indication(client, PUBLIC_PEER, b"123456"))) == 1
    assert client.send(send_indication(client, PUBLIC_PEER, b"123456")) == []
    assert server.metrics.drops["bandwidth_exceeded"] == 1
    clock.advance(1.5)
    server.handle_timer(clock.now)
    assert len(client.send(send_indication(client, PUBLIC_PEER, b"123456"))) == 1


# -- Channels (RFC 8656 §11, §12) -------------------------------------------------------


def channel_bind(client: Client, channel: int, peer: tuple[str, int]) -> int | None:
    response, _ = client.request(
        Method.CHANNEL_BIND,
        ((AttributeType.CHANNEL_NUMBER, channel), (AttributeType.XOR_PEER_ADDRESS, peer)),
    )
    assert response is not None
    return error_code(response)


def test_channel_bind_fills_the_hot_path_tables(clock: Clock) -> None:
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    assert channel_bind(client, 0x4001, PUBLIC_PEER) is None
    allocation = server.allocations[client.five_tuple]
    relay, peer = allocation.routes[0x4001]
    assert peer == PUBLIC_PEER and relay is allocation.relays[1][0]
    assert allocation.channel_by_peer[PUBLIC_PEER] == b"\x40\x01"
    assert "203.0.113.50" in allocation.permissions  # ChannelBind installs the permission


@pytest.mark.parametrize(
    ("strict", "highest"),
    [(True, 0x4FFF), (False, 0x7FFF)],
    ids=["rfc8656-strict", "rfc5766-by-default"],
)
def test_channel_number_range(clock: Clock, strict: bool, highest: int) -> None:
    """RFC 8656 §12 binds 0x4000-0x4FFF; RFC 5766 clients use up to 0x7FFF."""
    server = open_peers_server(strict_channel_range=strict)
    client = new_client(server, clock)
    client.allocate()
    assert channel_bind(client, 0x3FFF, PUBLIC_PEER) == 400
    assert channel_bind(client, highest + 1, PUBLIC_PEER) == 400
    assert channel_bind(client, highest, PUBLIC_PEER) is None


def test_rebinding_rules(clock: Clock) -> None:
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate()
    other = ("203.0.113.51", 5000)
    assert channel_bind(client, 0x4000, PUBLIC_PEER) is None
    assert channel_bind(client, 0x4000, PUBLIC_PEER) is None  # refresh: same pair
    assert channel_bind(client, 0x4000, other) == 400  # channel taken by another peer
    assert channel_bind(client, 0x4001, PUBLIC_PEER) == 400  # peer already has a channel


def test_channel_bind_to_denied_peer_gets_403(client: Client) -> None:
    client.allocate()
    assert channel_bind(client, 0x4000, ("10.0.0.1", 1)) == 403
    assert channel_bind(client, 0x4000, ("::ffff:127.0.0.1", 1)) in (403, 443)


def test_channel_expires_after_600_seconds_and_routes_follow_permission(clock: Clock) -> None:
    server = open_peers_server()
    client = new_client(server, clock)
    client.allocate((*UDP, (AttributeType.LIFETIME, 3600)))
    channel_bind(client, 0x4002, PUBLIC_PEER)
    allocation = server.allocations[client.five_tuple]
    clock.advance(301)
    server.handle_timer(clock.now)
    assert allocation.routes == {} and 0x4002 in allocation.bindings  # permission gone first
    client.request(Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, PUBLIC_PEER),))
    assert 0x4002 in allocation.routes
    clock.advance(300)
    server.handle_timer(clock.now)
    assert allocation.bindings == {} and allocation.routes == {}


# -- Transport-level and lifecycle -------------------------------------------------------


def test_stream_client_closing_ends_its_allocation(server: TurnServer, clock: Clock) -> None:
    client = new_client(server, clock, transport=Transport.TCP)
    client.allocate()
    actions = server.client_closed(client.five_tuple, clock.now)
    assert [a.reason for a in actions if isinstance(a, AllocationEnded)] == ["client_closed"]


def test_shutdown_ends_everything(server: TurnServer, clock: Clock) -> None:
    for port in (1, 2):
        new_client(server, clock, port=port).allocate()
    actions = server.shutdown(clock.now)
    assert len([a for a in actions if isinstance(a, AllocationEnded)]) == 2
    assert len([a for a in actions if isinstance(a, ReleaseRelay)]) == 2


def test_usage_records_carry_deltas_and_the_final_flush(
    client: Client, server: TurnServer, clock: Clock
) -> None:
    client.allocate()
    allocation = server.allocations[client.five_tuple]
    allocation.bytes_to_peer, allocation.packets_to_peer = 1000, 10
    clock.advance(1)
    (first,) = server.collect_usage(clock.now)
    assert (first.bytes_to_peer, first.packets_to_peer, first.ended) == (1000, 10, False)
    assert first.subject == "alice" and first.transport == "udp"
    assert server.collect_usage(clock.now) == []  # nothing new, not yet a heartbeat
    allocation.bytes_from_peer, allocation.packets_from_peer = 500, 5
    clock.advance(1)
    client.request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    (last,) = server.collect_usage(clock.now)
    assert (last.bytes_to_peer, last.bytes_from_peer, last.packets_from_peer) == (0, 500, 5)
    assert last.ended and last.end_reason == "refresh_zero"
    assert last.period_start == first.period_end


def test_a_final_record_counts_bytes_added_after_the_end_and_keeps_its_end_time(
    client: Client, server: TurnServer, clock: Clock
) -> None:
    """A kernel fast path reports an ended allocation's last bytes at the next collection:
    the final record is built then, with the end's time and relayed address."""
    client.allocate()
    allocation = server.allocations[client.five_tuple]
    relayed = f"{allocation.relays[next(iter(allocation.relays))][1][0]}"
    clock.advance(1)
    client.request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    ended_at = clock.now
    allocation.bytes_to_peer, allocation.packets_to_peer = 320, 2  # after the end, before flush
    clock.advance(0.5)
    (last,) = server.collect_usage(clock.now)
    assert (last.bytes_to_peer, last.packets_to_peer, last.ended) == (320, 2, True)
    assert last.period_end == ended_at and last.relayed_address.startswith(relayed)


def test_idle_allocation_writes_a_heartbeat_record(
    client: Client, server: TurnServer, clock: Clock
) -> None:
    client.allocate()
    clock.advance(31)
    (record,) = server.collect_usage(clock.now)
    assert record.bytes_to_peer == 0 and record.period_end - record.period_start == 31

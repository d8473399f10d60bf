"""A RESERVATION-TOKEN minted by one worker's core, presented to another's (RFC 8656 §7.2
step 5, ``passage serve --workers N``): the second core asks for the kept port instead of
answering 508, and the first gives it up exactly once."""

from __future__ import annotations

from turn_harness import Clock, FakeRelay, answer, error_code, make_server, new_client

from passage.stun import AttributeType, MessageClass, Method
from passage.turn.events import FindReservation, ReleaseRelay
from passage.turn.server import TurnServer

UDP = ((AttributeType.REQUESTED_TRANSPORT, 17),)
EVEN_PORT_RESERVE = (*UDP, (AttributeType.EVEN_PORT, True))


def worker(index: int) -> TurnServer:
    server = make_server()
    server.reservation_prefix = bytes((0, index))
    return server


def token_of(server: TurnServer, clock: Clock) -> bytes:
    made = new_client(server, clock, port=1).allocate(EVEN_PORT_RESERVE)
    token = made.get(AttributeType.RESERVATION_TOKEN, bytes)
    assert token is not None
    return token


def test_a_worker_s_tokens_start_with_its_prefix() -> None:
    clock = Clock()
    token = token_of(worker(3), clock)
    assert len(token) == 8 and token.startswith(b"\x00\x03")


def test_another_worker_s_token_is_asked_for_then_allocated_on_the_port_handed_over() -> None:
    clock, one, two = Clock(), worker(1), worker(2)
    token = token_of(one, clock)
    assert one.quota_held("alice") == 2  # the maker's allocation and its kept port
    taker = new_client(two, clock, port=2)
    sent, actions = taker.request(
        Method.ALLOCATE, UDP + ((AttributeType.RESERVATION_TOKEN, token),)
    )
    assert sent is None and actions == [FindReservation(taker.five_tuple, token)]
    assert two.quota_held("alice") == 1  # pending, as a bind would be

    reservation = one.hand_over_reservation(token, clock.now)
    assert reservation is not None and one.quota_held("alice") == 1
    assert one.hand_over_reservation(token, clock.now) is None  # handed over once

    done = two.reservation_found(taker.five_tuple, reservation.route, reservation.family, clock.now)
    taken = answer(done)
    assert taken is not None and taken.message_class is MessageClass.SUCCESS
    assert taken.get(AttributeType.XOR_RELAYED_ADDRESS, tuple) == ("192.0.2.10", 40001)
    assert two.allocations[taker.five_tuple].relays == {1: reservation.route}


def test_a_token_no_worker_keeps_gets_508_and_frees_its_quota() -> None:
    clock, two = Clock(), worker(2)
    taker = new_client(two, clock, port=2)
    _, actions = taker.request(
        Method.ALLOCATE, UDP + ((AttributeType.RESERVATION_TOKEN, b"\x00\x01abcdef"),)
    )
    assert isinstance(actions[0], FindReservation)
    refused = answer(two.reservation_missing(taker.five_tuple, clock.now))
    assert refused is not None and error_code(refused) == 508
    assert two.quota_held("alice") == 0


def test_an_unknown_token_with_the_worker_s_own_prefix_gets_508_at_once() -> None:
    clock, two = Clock(), worker(2)
    own = b"\x00\x02abcdef"
    assert (
        error_code(new_client(two, clock).allocate((*UDP, (AttributeType.RESERVATION_TOKEN, own))))
        == 508
    )


def test_an_expired_reservation_is_not_handed_over() -> None:
    clock, one = Clock(), worker(1)
    token = token_of(one, clock)
    clock.advance(31)
    assert one.hand_over_reservation(token, clock.now) is None


def test_a_port_handed_over_after_the_client_left_is_released() -> None:
    clock, two = Clock(), worker(2)
    route = (FakeRelay("kept"), ("192.0.2.10", 40001))
    gone = new_client(two, clock, port=9).five_tuple
    assert two.reservation_found(gone, route, 1, clock.now) == [ReleaseRelay(route[0])]


def test_a_single_process_answers_any_unknown_token_with_508() -> None:
    clock, alone = Clock(), make_server()
    token = b"\x00\x01abcdef"
    assert (
        error_code(
            new_client(alone, clock).allocate((*UDP, (AttributeType.RESERVATION_TOKEN, token)))
        )
        == 508
    )

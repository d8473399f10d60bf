"""What one client can make the core hold is bounded (issue 10, "the same class of mistake").

- A port kept by EVEN-PORT(R) counts against its maker's allocation quota and
  the server's, until its token is used or it expires: without that, Allocate
  (EVEN-PORT R) then Refresh 0, in a loop, held a relay socket per turn for
  30 seconds, past every quota.
- Channel bindings per allocation (``max_channels_per_allocation``): one
  permission covers every port of a peer IP, so without a cap one allocation
  could bind all 16,384 channel numbers, and every bind rebuilt its tables.
"""

from __future__ import annotations

from turn_harness import REALM, Clock, error_code, make_server, new_client

from passage.stun import AttributeType, Method
from passage.turn.config import TurnConfig
from passage.turn.events import ReleaseRelay

UDP = ((AttributeType.REQUESTED_TRANSPORT, 17),)
EVEN_PORT_RESERVE = (*UDP, (AttributeType.EVEN_PORT, True))


def test_reserved_ports_count_against_the_makers_quota() -> None:
    server, clock = make_server(TurnConfig(realm=REALM, max_allocations_per_user=3)), Clock()
    client = new_client(server, clock)
    codes = []
    for _ in range(5):
        codes.append(error_code(client.allocate(EVEN_PORT_RESERVE)))
        client.request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    # Allocation + reservation fit the quota of 3 once; then the kept port still
    # counts, and an allocation that would keep another does not fit.
    assert codes == [None, None, 486, 486, 486]
    assert len(server._reservations) == 2
    # A plain allocation still fits beside the reservations.
    assert error_code(new_client(server, clock, port=2).allocate()) is None
    assert error_code(new_client(server, clock, port=3).allocate()) == 486
    # Expired reservations give their share back.
    clock.advance(31)
    released = [a for a in server.handle_timer(clock.now) if isinstance(a, ReleaseRelay)]
    assert len(released) == 2
    assert error_code(new_client(server, clock, port=4).allocate(EVEN_PORT_RESERVE)) is None


def test_a_reservation_taken_by_its_token_moves_to_the_new_holder() -> None:
    server, clock = make_server(TurnConfig(realm=REALM, max_allocations_per_user=2)), Clock()
    maker = new_client(server, clock, port=1)
    token = maker.allocate(EVEN_PORT_RESERVE).get(AttributeType.RESERVATION_TOKEN, bytes)
    assert token is not None
    assert error_code(new_client(server, clock, port=2).allocate()) == 486  # 1 + 1 reserved
    taker = new_client(server, clock, port=3, username="bob", password="builder")
    assert error_code(taker.allocate((*UDP, (AttributeType.RESERVATION_TOKEN, token)))) is None
    assert error_code(new_client(server, clock, port=4).allocate()) is None  # alice: 1 + 1


def test_reserved_ports_count_against_the_server_total() -> None:
    server, clock = make_server(TurnConfig(realm=REALM, max_allocations_total=2)), Clock()
    assert error_code(new_client(server, clock, port=1).allocate(EVEN_PORT_RESERVE)) is None
    bob = new_client(server, clock, port=2, username="bob", password="builder")
    assert error_code(bob.allocate()) == 486


def test_channel_bindings_per_allocation_are_capped_with_508() -> None:
    server = make_server(
        TurnConfig(realm=REALM, max_channels_per_allocation=3, allowed_peer_ranges=("0.0.0.0/0",))
    )
    client = new_client(server, Clock())
    client.allocate()
    codes = []
    for index in range(4):
        bind = (
            (AttributeType.CHANNEL_NUMBER, 0x4000 + index),
            (AttributeType.XOR_PEER_ADDRESS, ("203.0.113.1", 1000 + index)),
        )
        response, _ = client.request(Method.CHANNEL_BIND, bind)
        assert response is not None
        codes.append(error_code(response))
    assert codes == [None, None, None, 508]
    # Refreshing a channel it holds is no new binding.
    again = (
        (AttributeType.CHANNEL_NUMBER, 0x4000),
        (AttributeType.XOR_PEER_ADDRESS, ("203.0.113.1", 1000)),
    )
    response, _ = client.request(Method.CHANNEL_BIND, again)
    assert response is not None and error_code(response) is None

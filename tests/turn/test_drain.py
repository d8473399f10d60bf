"""A draining core (SIGTERM): new Allocates go elsewhere (300 Try Alternate, RFC 8489 §10,
§14.15, §14.16) or get 403; live allocations keep refreshing, permitting and relaying."""

from __future__ import annotations

from turn_harness import Client, Clock, error_code, new_client

from passage.addresses import Transport
from passage.stun import AttributeType, Method, verify_integrity
from passage.turn.alternate import Alternate, Alternates
from passage.turn.server import TurnServer

ALTERNATES = Alternates(
    plain=(Alternate(("2001:db8::2", 3478)), Alternate(("192.0.2.2", 3478))),
    tls=(Alternate(("192.0.2.3", 5349), "turn2.example.com"),),
)


def test_a_new_allocate_is_sent_to_the_alternate_of_its_family(
    server: TurnServer, clock: Clock
) -> None:
    server.start_draining(ALTERNATES)
    client = new_client(server, clock)
    answer = client.allocate()
    assert error_code(answer) == 300
    assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == ("192.0.2.2", 3478)
    assert not answer.has(AttributeType.ALTERNATE_DOMAIN)  # not over TLS
    # RFC 8489 §10: authenticated first, so the redirect is signed and cannot be forged.
    assert verify_integrity(answer, client.key)
    assert server.allocations == {}


def test_over_tls_the_answer_names_the_domain_to_check(server: TurnServer, clock: Clock) -> None:
    server.start_draining(ALTERNATES)
    answer = new_client(server, clock, transport=Transport.TLS).allocate()
    assert error_code(answer) == 300
    assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == ("192.0.2.3", 5349)
    assert answer.get(AttributeType.ALTERNATE_DOMAIN, str) == "turn2.example.com"


def test_without_an_alternate_of_its_kind_the_answer_is_403(
    server: TurnServer, clock: Clock
) -> None:
    server.start_draining(Alternates(plain=(Alternate(("2001:db8::2", 3478)),)))
    answer = new_client(server, clock).allocate()  # an IPv4 client: no IPv4 alternate
    assert error_code(answer) == 403
    assert not answer.has(AttributeType.ALTERNATE_SERVER)


def test_the_first_allocate_is_still_challenged(server: TurnServer, clock: Clock) -> None:
    """No redirect for a request that proved nothing: it gets its 401 as before."""
    server.start_draining(ALTERNATES)
    client = new_client(server, clock)
    response, _ = client.request(Method.ALLOCATE, ((AttributeType.REQUESTED_TRANSPORT, 17),),
                                 sign=False)  # fmt: skip
    assert response is not None and error_code(response) == 401


def test_live_allocations_carry_on(client: Client, server: TurnServer, clock: Clock) -> None:
    assert error_code(client.allocate()) is None
    server.start_draining(ALTERNATES)
    refreshed, _ = client.request(Method.REFRESH, ((AttributeType.LIFETIME, 600),))
    assert refreshed is not None and error_code(refreshed) is None
    permitted, _ = client.request(
        Method.CREATE_PERMISSION, ((AttributeType.XOR_PEER_ADDRESS, ("93.184.216.34", 0)),)
    )
    assert permitted is not None and error_code(permitted) is None
    bound, _ = client.request(
        Method.CHANNEL_BIND,
        ((AttributeType.CHANNEL_NUMBER, 0x4000), (AttributeType.XOR_PEER_ADDRESS,
                                                   ("93.184.216.34", 9))),
    )  # fmt: skip
    assert bound is not None and error_code(bound) is None
    assert len(server.allocations) == 1

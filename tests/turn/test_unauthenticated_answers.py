"""What the core answers a request that has not authenticated, and how often (issue 10).

A UDP source gets ``unauthenticated_answer_burst`` such answers at once and
``unauthenticated_answers_per_second`` after that; the rest are dropped,
counted as ``unauthenticated_answer_rate_limited``. Signed answers and TCP/TLS
are not limited. Unauthenticated answers carry no SOFTWARE.
"""

from __future__ import annotations

from turn_harness import REALM, Clock, answer, error_code, make_server, new_client

from passage.stun import AttributeType, Message, MessageClass, Method
from passage.turn.config import TurnConfig
from passage.turn.events import Transport

LIMITED = TurnConfig(
    realm=REALM, unauthenticated_answers_per_second=1, unauthenticated_answer_burst=2
)
DROP = "unauthenticated_answer_rate_limited"


def code_of(response: Message | None) -> int | None:
    assert response is not None
    return error_code(response)


def test_udp_challenges_past_the_burst_are_dropped_until_the_rate_refills() -> None:
    server, clock = make_server(LIMITED), Clock()
    client = new_client(server, clock)
    bare = [client.build(Method.ALLOCATE, sign=False) for _ in range(4)]
    answers = [answer(client.send(data)) for data in bare[:3]]
    assert [code_of(a) for a in answers[:2]] == [401, 401]
    assert answers[2] is None
    assert server.metrics.drops[DROP] == 1
    clock.advance(1.0)
    assert code_of(answer(client.send(bare[3]))) == 401


def test_every_unauthenticated_error_counts_not_only_401() -> None:
    server, clock = make_server(LIMITED), Clock()
    client = new_client(server, clock)
    unsupported = client.build(Method.SEND, sign=False)  # a Send *request*: 400
    missing = client.build(Method.ALLOCATE, sign=False)
    assert code_of(answer(client.send(unsupported))) == 400
    assert code_of(answer(client.send(missing))) == 401
    assert client.send(unsupported) == []
    assert server.metrics.drops[DROP] == 1


def test_stream_clients_and_signed_answers_are_not_limited() -> None:
    server, clock = make_server(LIMITED), Clock()
    over_tcp = new_client(server, clock, transport=Transport.TCP)
    for _ in range(10):
        response = answer(over_tcp.send(over_tcp.build(Method.ALLOCATE, sign=False)))
        assert response is not None and error_code(response) == 401
    signed = new_client(server, clock, port=40001)
    assert signed.allocate().message_class is MessageClass.SUCCESS  # one challenge spent
    for _ in range(5):  # a second Allocate on the 5-tuple: 437, signed, answered each time
        response, _ = signed.request(Method.ALLOCATE, [(AttributeType.REQUESTED_TRANSPORT, 17)])
        assert response is not None and error_code(response) == 437
    assert server.metrics.drops[DROP] == 0


def test_unauthenticated_answers_name_no_software_and_signed_ones_do() -> None:
    server, clock = make_server(), Clock()
    client = new_client(server, clock)
    response = answer(client.send(client.build(Method.ALLOCATE, sign=False)))
    assert response is not None and error_code(response) == 401
    assert not response.has(AttributeType.SOFTWARE)
    assert [kind for kind, _ in response.attributes] == [
        AttributeType.ERROR_CODE,
        AttributeType.REALM,
        AttributeType.NONCE,
        AttributeType.PASSWORD_ALGORITHMS,
    ]
    success = client.allocate()
    assert success.get(AttributeType.SOFTWARE, str) == "passage"

"""No input makes the core raise: random methods, classes and attributes, signed or not."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings
from turn_harness import REALM, Clock, make_server, new_client, transaction_id

from passage.stun import (
    ATTRIBUTES,
    AttributeType,
    AttributeValue,
    Message,
    MessageClass,
    Method,
    encode_message,
    long_term_key,
)
from passage.turn.config import TurnConfig
from passage.turn.events import SendToClient

_ADDRESSES = st.tuples(
    st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda ip: ip.compressed)),
    st.integers(0, 65535),
)
_ATTRIBUTES: st.SearchStrategy[tuple[int, AttributeValue]] = st.one_of(
    st.tuples(st.just(AttributeType.REQUESTED_TRANSPORT), st.sampled_from([17, 6, 0, 255])),
    st.tuples(st.just(AttributeType.LIFETIME), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(AttributeType.XOR_PEER_ADDRESS), _ADDRESSES),
    st.tuples(st.just(AttributeType.CHANNEL_NUMBER), st.integers(0, 0xFFFF)),
    st.tuples(st.just(AttributeType.DATA), st.binary(max_size=40)),
    st.tuples(st.just(AttributeType.EVEN_PORT), st.booleans()),
    st.tuples(st.just(AttributeType.RESERVATION_TOKEN), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just(AttributeType.REQUESTED_ADDRESS_FAMILY), st.integers(0, 255)),
    st.tuples(st.just(AttributeType.ADDITIONAL_ADDRESS_FAMILY), st.integers(0, 255)),
    st.tuples(st.just(AttributeType.DONT_FRAGMENT), st.just(b"")),
    st.tuples(st.integers(0, 0xFFFF).filter(lambda t: t not in ATTRIBUTES),  # unknown types
              st.binary(max_size=12)),
)  # fmt: skip
_METHODS = st.sampled_from([*Method, 0x0FF])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            _METHODS,
            st.sampled_from(list(MessageClass)),
            st.lists(_ATTRIBUTES, max_size=5),
            st.booleans(),
            st.floats(0, 700),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_core_never_raises_on_well_formed_signed_or_unsigned_messages(
    script: list[tuple[int, MessageClass, list[tuple[int, AttributeValue]], bool, float]],
) -> None:
    """Every message either gets an answer, or is dropped with a counted reason."""
    clock = Clock()
    server = make_server(TurnConfig(realm=REALM, allow_loopback_peers=True))
    client = new_client(server, clock)
    client.allocate()  # half the scripts act on a live allocation
    assert client.nonce is not None
    key = long_term_key("alice", REALM, "wonderland")
    for method, message_class, attributes, sign, wait in script:
        clock.advance(wait)
        server.handle_timer(clock.now)
        extra = ((AttributeType.USERNAME, "alice"), (AttributeType.REALM, REALM),
                 (AttributeType.NONCE, client.nonce)) if sign else ()  # fmt: skip
        message = Message(method, message_class, transaction_id(), (*attributes, *extra))
        data = encode_message(message, integrity_key=key if sign else None)
        drops_before = sum(server.metrics.drops.values())
        actions = server.receive(data, client.five_tuple, clock.now)
        answered = any(isinstance(a, SendToClient) for a in actions)
        dropped = sum(server.metrics.drops.values()) > drops_before
        assert answered or dropped or actions or message_class is not MessageClass.REQUEST

"""The TURN client core takes any bytes from the network: it drops, by name, what is not for it."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from passage.stun import Message, MessageClass, Method, encode_message
from passage.turnclient import Credentials, Dropped, Relayed, TurnClientCore


def core() -> TurnClientCore:
    return TurnClientCore(
        Credentials("alice", "wonderland"), reliable=False, random_bytes=lambda n: b"t" * n
    )


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_are_an_event_or_a_named_drop(data: bytes) -> None:
    client = core()
    client.request(Method.BINDING, (), 0.0, timeout=1.0, sign=False)
    events = client.receive(data, 0.0)
    assert len(events) <= 1
    assert all(reason in Dropped for reason in client.dropped)
    assert len(events) + sum(client.dropped.values()) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(MessageClass)), st.integers(0, 0xFFF), st.binary(min_size=12, max_size=12)
)
def test_any_stun_message_is_handled(klass: MessageClass, method: int, tid: bytes) -> None:
    client = core()
    data = encode_message(Message(method, klass, tid))  # type: ignore[arg-type]
    events = client.receive(data, 0.0)
    assert not any(isinstance(e, Relayed) for e in events)  # no DATA: never relayed data
    assert len(events) + sum(client.dropped.values()) == 1

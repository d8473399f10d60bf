"""The sans-IO TURN client core against the sans-IO TURN server core, in memory, virtual clock.

Two cores joined by a pump: what the client sends goes to
:meth:`TurnServer.receive`, what the server sends back to
:meth:`TurnClientCore.receive`; a relay bind is answered with a fake socket.
No sockets, no sleeps: ``now`` moves only when a test moves it.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest

from passage.addresses import Transport
from passage.stun import (
    AttributeType,
    Message,
    MessageClass,
    Method,
    decode_message,
    encode_data_indication,
    encode_message,
)
from passage.turn.auth import StaticUsers
from passage.turn.config import TurnConfig
from passage.turn.events import Action, BindRelay, FiveTuple, SendToClient, SendToPeer
from passage.turn.server import TurnServer
from passage.turnclient import (
    Answered,
    Credentials,
    Dropped,
    Event,
    Failed,
    FailureReason,
    Relayed,
    TurnClientCore,
    error_code,
    relayed_addresses,
)

REALM = "lab.realm"
START = 1_800_000_000.0
CLIENT = ("198.51.100.7", 40000)
SERVER = ("203.0.113.10", 3478)
PEER = ("203.0.113.50", 5000)
TIMEOUT = 5.0


@dataclass
class FakeRelay:
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def sendto(self, data: bytes, addr: tuple[str, int], /) -> None:
        self.sent.append((data, addr))


@dataclass
class Link:
    """A client core and a server core, with everything in flight carried across at once."""

    client: TurnClientCore
    server: TurnServer
    transport: Transport = Transport.UDP
    now: float = START
    events: list[Event] = field(default_factory=list)
    relay: FakeRelay = field(default_factory=FakeRelay)
    lost: int = 0
    """Client datagrams still to throw away (a lossy path)."""

    @property
    def five_tuple(self) -> FiveTuple:
        return FiveTuple(self.transport, CLIENT, SERVER)

    def pump(self) -> list[Event]:
        """Deliver until quiet; return (and keep) the client's events."""
        fresh: list[Event] = []
        while outgoing := self.client.data_to_send():
            for data in outgoing:
                if self.lost:
                    self.lost -= 1
                    continue
                fresh += self.deliver(self.server.receive(data, self.five_tuple, self.now))
        self.events += fresh
        return fresh

    def deliver(self, actions: list[Action]) -> list[Event]:
        events: list[Event] = []
        for action in actions:
            if isinstance(action, BindRelay):
                routes = [(self.relay, ("203.0.113.10", 50000))]
                more = self.server.relay_bound(self.five_tuple, routes, None, self.now)
                events += self.deliver(more)
            elif isinstance(action, SendToClient):
                events += self.client.receive(action.data, self.now)
        return events

    def advance(self, seconds: float) -> list[Event]:
        """Move the clock, firing the client's timer on the way; return its events."""
        end = self.now + seconds
        fresh: list[Event] = []
        while (timer := self.client.get_timer()) is not None and timer <= end:
            self.now = timer
            fresh += self.client.handle_timer(self.now)
            fresh += self.pump()
        self.now = end
        self.events += [e for e in fresh if e not in self.events]
        return fresh


def server(**config: object) -> TurnServer:
    return TurnServer(
        TurnConfig(realm=REALM, allowed_peer_ranges=("203.0.113.0/24",), **config),  # type: ignore[arg-type]
        StaticUsers({"alice": "wonderland"}),
        nonce_key=b"k" * 32,
        rng=random.Random(7),
    )


def link(password: str = "wonderland", *, reliable: bool = False, **config: object) -> Link:
    ids = itertools.count(1)
    core = TurnClientCore(
        Credentials("alice", password),
        reliable=reliable,
        random_bytes=lambda n: next(ids).to_bytes(n, "big"),
    )
    return Link(core, server(**config), Transport.TCP if reliable else Transport.UDP)


def answer_of(events: list[Event]) -> Message:
    answers = [e for e in events if isinstance(e, Answered)]
    assert len(answers) == 1, events
    return answers[0].message


# -- the long-term credential (RFC 8489 §9.2) ----------------------------------------


def test_allocate_goes_through_the_401_challenge_signed() -> None:
    pair = link()
    request = pair.client.allocate(pair.now, timeout=TIMEOUT)
    events = pair.pump()
    answer = answer_of(events)
    assert isinstance(events[0], Answered) and events[0].request == request
    assert answer.message_class is MessageClass.SUCCESS
    assert relayed_addresses(answer) == [("203.0.113.10", 50000)]
    assert (pair.client.realm, pair.server.metrics.allocations_started) == (REALM, 1)
    assert pair.client.nonce is not None


def test_later_requests_are_signed_at_once() -> None:
    pair = link()
    pair.client.allocate(pair.now, timeout=TIMEOUT)
    pair.pump()
    pair.client.create_permission([PEER], pair.now, timeout=TIMEOUT)
    sent = pair.client.data_to_send()
    assert len(sent) == 1
    assert decode_message(sent[0]).has(AttributeType.MESSAGE_INTEGRITY)


def test_a_stale_nonce_is_renewed_without_the_caller_seeing_438() -> None:
    pair = link(nonce_lifetime=60)
    pair.client.allocate(pair.now, timeout=TIMEOUT)
    pair.pump()
    old = pair.client.nonce
    pair.now += 61
    pair.client.refresh(300, pair.now, timeout=TIMEOUT)
    answer = answer_of(pair.pump())
    assert answer.message_class is MessageClass.SUCCESS
    assert pair.client.nonce != old
    assert pair.server.metrics.errors[438] == 1


def test_wrong_password_gets_a_final_401_after_one_signed_try() -> None:
    pair = link("not-it")
    pair.client.allocate(pair.now, timeout=TIMEOUT)
    answer = answer_of(pair.pump())
    assert error_code(answer) == 401
    assert pair.server.metrics.errors[401] == 2  # the challenge, then the refusal


def test_retry_false_hands_back_the_challenge() -> None:
    pair = link()
    pair.client.allocate(pair.now, timeout=TIMEOUT, retry=False)
    answer = answer_of(pair.pump())
    assert error_code(answer) == 401 and answer.get(AttributeType.NONCE, str) is not None
    assert pair.server.metrics.allocations_started == 0


def test_a_stun_client_never_signs() -> None:
    pair = link()
    pair.client.credentials = None
    pair.client.request(Method.BINDING, (), pair.now, timeout=TIMEOUT)
    answer = answer_of(pair.pump())
    assert answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == CLIENT


def test_a_success_without_valid_integrity_is_dropped_and_the_request_waits() -> None:
    pair = link()
    pair.client.allocate(pair.now, timeout=TIMEOUT)
    pair.pump()
    request = pair.client.refresh(300, pair.now, timeout=TIMEOUT)
    sent = decode_message(pair.client.data_to_send()[0])
    forged = Message(Method.REFRESH, MessageClass.SUCCESS, sent.transaction_id)
    assert pair.client.receive(encode_message(forged, integrity_key=b"wrong"), pair.now) == []
    assert pair.client.receive(encode_message(forged), pair.now) == []
    assert pair.client.dropped[Dropped.BAD_INTEGRITY] == 2
    actions = pair.server.receive(sent.raw, pair.five_tuple, pair.now)
    assert [type(e) for e in pair.deliver(actions)] == [Answered]
    assert pair.client.get_timer() is None  # nothing waits: it was request's answer
    assert request == 2


# -- retransmissions and timeouts (RFC 8489 §6.2) ---------------------------------------


def test_udp_requests_are_sent_again_at_rto_doubling_until_the_timeout() -> None:
    pair = link()
    request = pair.client.request(Method.BINDING, (), pair.now, timeout=4.0, sign=False)
    sent_at = []
    while (timer := pair.client.get_timer()) is not None:
        if pair.client.data_to_send():
            sent_at.append(pair.now - START)
        pair.now = timer
        events = pair.client.handle_timer(pair.now)
    assert sent_at == [0.0, 0.5, 1.5, 3.5]
    assert events == [Failed(request, FailureReason.TIMEOUT)]
    assert pair.now - START == 4.0


def test_a_lost_request_is_answered_after_its_retransmission() -> None:
    pair = link()
    pair.lost = 1
    pair.client.request(Method.BINDING, (), pair.now, timeout=TIMEOUT, sign=False)
    assert pair.pump() == []
    events = pair.advance(0.5)
    assert answer_of(events).message_class is MessageClass.SUCCESS


def test_streams_send_once_and_fail_at_the_timeout() -> None:
    pair = link(reliable=True)
    request = pair.client.request(Method.BINDING, (), pair.now, timeout=2.0, sign=False)
    assert len(pair.client.data_to_send()) == 1
    assert pair.client.get_timer() == START + 2.0
    assert pair.client.handle_timer(START + 2.0) == [Failed(request, FailureReason.TIMEOUT)]
    assert pair.client.data_to_send() == []


def test_transact_without_retransmissions_sends_once() -> None:
    pair = link()
    tid = b"probe-000001"
    data = encode_message(Message(Method.BINDING, MessageClass.REQUEST, tid))  # type: ignore[arg-type]
    request = pair.client.transact(tid, data, pair.now, timeout=1.0, retransmit=False)
    assert pair.client.data_to_send() == [data]
    assert pair.client.get_timer() == START + 1.0
    assert pair.client.handle_timer(START + 1.0) == [Failed(request, FailureReason.TIMEOUT)]


def test_a_late_answer_is_unknown() -> None:
    pair = link()
    pair.client.request(Method.BINDING, (), pair.now, timeout=1.0, sign=False)
    sent = pair.client.data_to_send()[0]
    pair.client.handle_timer(START + 1.0)
    actions = pair.server.receive(sent, pair.five_tuple, pair.now)
    assert pair.deliver(actions) == []
    assert pair.client.dropped[Dropped.UNKNOWN_TRANSACTION] == 1


# -- relayed data (RFC 8656 §10.3, §12.4) -------------------------------------------------


def test_channel_data_and_data_indications_become_relayed_events() -> None:
    pair = link()
    pair.client.allocate(pair.now, timeout=TIMEOUT)
    pair.pump()
    pair.client.channel_bind(0x4000, PEER, pair.now, timeout=TIMEOUT)
    assert error_code(answer_of(pair.pump()[-1:])) is None
    assert pair.client.channel_data(0x4000, b"to peer") == b"\x40\x00\x00\x07to peer"
    pair.client.create_permission([("203.0.113.51", 1)], pair.now, timeout=TIMEOUT)
    pair.pump()
    assert pair.client.receive(b"\x40\x00\x00\x03abc\x00", pair.now) == [
        Relayed(b"abc", channel=0x4000)
    ]
    indication = encode_data_indication(b"i" * 12, ("203.0.113.51", 1), b"hi")
    assert pair.client.receive(indication, pair.now) == [Relayed(b"hi", peer=("203.0.113.51", 1))]
    send = decode_message(pair.client.send_indication(PEER, b"by send"))
    assert (send.method, send.message_class) == (Method.SEND, MessageClass.INDICATION)
    actions = pair.server.receive(send.raw, pair.five_tuple, pair.now)
    assert [(type(a), a.data) for a in actions] == [(SendToPeer, b"by send")]  # type: ignore[union-attr]


def test_channel_data_on_a_stream_is_padded() -> None:
    assert link(reliable=True).client.channel_data(0x4001, b"abcde") == (
        b"\x40\x01\x00\x05abcde\x00\x00\x00"
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Dropped.MALFORMED),
        (b"\x40\x00\x00\x09short", Dropped.MALFORMED),
        (b"\x00\x01\x00\x00not stun", Dropped.MALFORMED),
        (
            encode_message(Message(Method.BINDING, MessageClass.REQUEST, b"r" * 12)),
            Dropped.UNEXPECTED,
        ),  # type: ignore[arg-type]
        (
            encode_message(Message(Method.DATA, MessageClass.INDICATION, b"d" * 12)),
            Dropped.UNEXPECTED,
        ),  # type: ignore[arg-type]
    ],
    ids=["empty", "short-channel-data", "not-stun", "request", "data-without-parts"],
)
def test_what_is_not_for_the_client_is_dropped_by_name(data: bytes, reason: Dropped) -> None:
    client = link().client
    assert client.receive(data, START) == []
    assert client.dropped == {reason: 1}

"""A sans-IO TURN client talking to the core in memory, with a virtual clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from passage.addresses import Address, Transport
from passage.stun import (
    AttributeType,
    AttributeValue,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    PasswordAlgorithm,
    PasswordAlgorithmValue,
    TransactionId,
    decode_message,
    encode_message,
    long_term_key,
)
from passage.turn.auth import CredentialChain, RestSecretUsers, StaticUsers
from passage.turn.config import TurnConfig
from passage.turn.credentials import RestSecrets
from passage.turn.events import Action, BindRelay, FiveTuple, SendToClient
from passage.turn.server import TurnServer

REALM = "test.realm"
START = 1_800_000_000.0
SERVER = ("192.0.2.10", 3478)


@dataclass
class FakeRelay:
    """Stands in for a relay socket: records what the core asked to send (it never should)."""

    name: str
    sent: list[tuple[bytes, Address]] = field(default_factory=list)

    def sendto(self, data: bytes, addr: Address, /) -> None:
        self.sent.append((data, addr))


_ids = itertools.count(1)


def transaction_id() -> TransactionId:
    return TransactionId(next(_ids).to_bytes(12, "big"))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Client:
    """One client 5-tuple; signs requests once it has a nonce, like a real TURN client."""

    server: TurnServer
    clock: Clock
    five_tuple: FiveTuple
    username: str = "alice"
    password: str = "wonderland"
    nonce: str | None = None
    algorithm: PasswordAlgorithm | None = None
    relay_ports: itertools.count[int] = field(default_factory=lambda: itertools.count(50000, 2))

    @property
    def key(self) -> bytes:
        return long_term_key(
            self.username, REALM, self.password, self.algorithm or PasswordAlgorithm.MD5
        )

    def build(
        self,
        method: Method,
        attributes: Sequence[tuple[int, AttributeValue]] = (),
        *,
        sign: bool = True,
        tid: TransactionId | None = None,
        message_class: MessageClass = MessageClass.REQUEST,
    ) -> bytes:
        attrs = list(attributes)
        sha256 = False
        if sign and self.nonce is not None:
            attrs += [
                (AttributeType.USERNAME, self.username),
                (AttributeType.REALM, REALM),
                (AttributeType.NONCE, self.nonce),
            ]
            if self.algorithm is not None:
                attrs += [
                    (
                        AttributeType.PASSWORD_ALGORITHMS,
                        (
                            PasswordAlgorithmValue(PasswordAlgorithm.MD5),
                            PasswordAlgorithmValue(PasswordAlgorithm.SHA256),
                        ),
                    ),
                    (AttributeType.PASSWORD_ALGORITHM, PasswordAlgorithmValue(self.algorithm)),
                ]
                sha256 = self.algorithm == PasswordAlgorithm.SHA256
        message = Message(method, message_class, tid or transaction_id(), tuple(attrs))
        key = self.key if sign and self.nonce is not None else None
        return encode_message(message, integrity_key=key, integrity_sha256=sha256)

    def send(self, data: bytes) -> list[Action]:
        return self.server.receive(data, self.five_tuple, self.clock.now)

    def request(
        self,
        method: Method,
        attributes: Sequence[tuple[int, AttributeValue]] = (),
        **kwargs: object,
    ) -> tuple[Message | None, list[Action]]:
        """Send a request, learning the nonce from a 401/438 and retrying once, as clients do."""
        actions = self.send(self.build(method, attributes, **kwargs))  # type: ignore[arg-type]
        response = answer(actions)
        if response is not None and error_code(response) in (401, 438) and kwargs.get("sign", True):
            nonce = response.get(AttributeType.NONCE, str)
            if nonce is not None and (self.nonce != nonce):
                self.nonce = nonce
                actions = self.send(self.build(method, attributes, **kwargs))  # type: ignore[arg-type]
                response = answer(actions)
        return response, actions

    def allocate(
        self,
        attributes: Sequence[tuple[int, AttributeValue]] = (
            (AttributeType.REQUESTED_TRANSPORT, 17),
        ),
    ) -> Message:
        """Allocate and complete the relay bind with fake sockets; return the response."""
        response, actions = self.request(Method.ALLOCATE, attributes)
        binds = [a for a in actions if isinstance(a, BindRelay)]
        if not binds:
            assert response is not None, actions
            return response
        bind = binds[0]
        routes = [(FakeRelay(f"relay{f}"), (_ip(f), next(self.relay_ports))) for f in bind.families]
        reserved = (FakeRelay("reserved"), ("192.0.2.10", 40001)) if bind.reserve_next else None
        done = self.server.relay_bound(self.five_tuple, routes, reserved, self.clock.now)
        result = answer(done)
        assert result is not None
        return result


def _ip(family: int) -> str:
    return "2001:db8::10" if family == 2 else "192.0.2.10"


def answer(actions: Sequence[Action]) -> Message | None:
    """The one message sent back to the client, decoded, if any."""
    sent = [a for a in actions if isinstance(a, SendToClient)]
    assert len(sent) <= 1, sent
    return decode_message(sent[0].data) if sent else None


def error_code(message: Message) -> int | None:
    if message.message_class is not MessageClass.ERROR:
        return None
    value = message.get(AttributeType.ERROR_CODE, ErrorCodeValue)
    assert value is not None
    return value.code


def make_server(config: TurnConfig | None = None, **kwargs: object) -> TurnServer:
    credentials = CredentialChain(
        [
            StaticUsers({"alice": "wonderland", "bob": "builder"}),
            RestSecretUsers(RestSecrets(("north", "south"))),
        ]
    )
    families = kwargs.pop("relay_families", frozenset({1}))
    return TurnServer(
        config or TurnConfig(realm=REALM),
        credentials,
        nonce_key=b"k" * 32,
        relay_families=families,  # type: ignore[arg-type]
        rng=random.Random(7),
        alternates=kwargs.pop("alternates", None),  # type: ignore[arg-type]
        on_quota=kwargs.pop("on_quota", None),  # type: ignore[arg-type]
    )


def new_client(
    server: TurnServer,
    clock: Clock,
    port: int = 40000,
    transport: Transport = Transport.UDP,
    **kwargs: object,
) -> Client:
    return Client(server, clock, FiveTuple(transport, ("198.51.100.7", port), SERVER), **kwargs)  # type: ignore[arg-type]

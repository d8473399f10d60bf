"""Malformed input on every transport leaves the server alive and answering.

A seeded stream of garbage (random bytes, truncated STUN headers, wrong lengths,
overflowing and ill-formed attributes, stray ChannelData, a valid header with a
huge attribute length, bit-flipped signed requests) goes to the UDP port, then
garbage over TCP and TLS. Afterwards a Binding request is answered on each
transport, a full relay round trip works, and the log holds no traceback.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import struct
from pathlib import Path

from passage.stun import (
    MAGIC_COOKIE,
    AttributeType,
    AttributeValue,
    Message,
    MessageClass,
    Method,
    TransactionId,
    encode_message,
    long_term_key,
    message_type,
)
from passage_server import ServerInfo, passage_process
from turn_client import TurnClient, UdpPeer, error_code

DATAGRAMS = 2000
SEED = 20_260_222

_TYPES = [int(kind) for kind in AttributeType] + [0x0000, 0x7FFF, 0xC001, 0xFFFF]
_METHODS = [int(method) for method in Method] + [0x000, 0x0FF, 0xFFF]


def _header(rng: random.Random, length: int) -> bytes:
    kind = message_type(rng.choice(_METHODS), rng.randrange(4))
    return struct.pack("!HHI", kind, length, MAGIC_COOKIE) + rng.randbytes(12)


def _attribute(rng: random.Random) -> bytes:
    value = rng.randbytes(rng.choice([0, 1, 2, 3, 4, 5, 8, 12, 20, 21, 32, 64]))
    return struct.pack("!HH", rng.choice(_TYPES), len(value)) + value + bytes(-len(value) & 3)


def _signed_request(rng: random.Random, realm: str) -> bytes:
    message = Message(
        Method.ALLOCATE,
        MessageClass.REQUEST,
        TransactionId(rng.randbytes(12)),
        (
            (AttributeType.REQUESTED_TRANSPORT, 17),
            (AttributeType.USERNAME, "alice"),
            (AttributeType.REALM, realm),
            (AttributeType.NONCE, "obMatJos2AAAAnot-a-real-nonce"),
        ),
    )
    key = long_term_key("alice", realm, "wonderland")
    return encode_message(message, integrity_key=key, fingerprint=True)


_PEERS = ["127.0.0.1", "0.0.0.0", "10.0.0.1", "192.0.2.1", "::1", "::ffff:127.0.0.1", "fe80::1"]
"""Peers a fuzzed request may name: loopback (allowed here) or denied; never the internet."""


def _random_attribute(rng: random.Random) -> tuple[int, AttributeValue]:
    choices: list[tuple[int, AttributeValue]] = [
        (AttributeType.REQUESTED_TRANSPORT, rng.choice([17, 6, 0, 255])),
        (AttributeType.LIFETIME, rng.choice([0, 1, 600, 0xFFFFFFFF])),
        (AttributeType.CHANNEL_NUMBER, rng.choice([0x3FFF, 0x4000, 0x4FFF, 0x5000, 0x7FFF])),
        (AttributeType.XOR_PEER_ADDRESS, (rng.choice(_PEERS), rng.randrange(1, 65536))),
        (AttributeType.EVEN_PORT, rng.random() < 0.5),
        (AttributeType.RESERVATION_TOKEN, rng.randbytes(8)),
        (AttributeType.REQUESTED_ADDRESS_FAMILY, rng.choice([1, 2, 3])),
        (AttributeType.ADDITIONAL_ADDRESS_FAMILY, rng.choice([1, 2, 3])),
        (AttributeType.DONT_FRAGMENT, b""),
        (AttributeType.DATA, rng.randbytes(rng.randrange(0, 100))),
        (0x7FF0, b"unknown, comprehension-required"),
    ]
    return rng.choice(choices)


def semantic_request(rng: random.Random, client: TurnClient) -> bytes:
    """A well-formed, correctly signed message with random TURN content."""
    method = rng.choice(
        [
            Method.ALLOCATE,
            Method.REFRESH,
            Method.CREATE_PERMISSION,
            Method.CHANNEL_BIND,
            Method.BINDING,
            Method.SEND,
            Method.DATA,
        ]
    )
    message_class = MessageClass.INDICATION if method >= Method.SEND else MessageClass.REQUEST
    if method == Method.CHANNEL_BIND or method == Method.CREATE_PERMISSION:
        message_class = MessageClass.REQUEST
    attributes = [_random_attribute(rng) for _ in range(rng.randrange(0, 5))]
    return client.build(method, message_class, attributes, sign=rng.random() < 0.9)[1]


def garbage(rng: random.Random, realm: str) -> bytes:
    """One malformed datagram, of a kind chosen by ``rng``."""
    kind = rng.randrange(8)
    if kind == 0:  # random bytes, sometimes none at all
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:  # a STUN header cut short
        return _header(rng, 0)[: rng.randrange(0, 20)]
    if kind == 2:  # a length field that disagrees with the datagram
        body = b"".join(_attribute(rng) for _ in range(rng.randrange(0, 4)))
        return _header(rng, (len(body) + rng.choice([-4, -1, 1, 2, 4, 40])) & 0xFFFF) + body
    if kind == 3:  # well-framed attributes of every type with random values
        body = b"".join(_attribute(rng) for _ in range(rng.randrange(1, 8)))
        return _header(rng, len(body)) + body
    if kind == 4:  # ChannelData, bound to nothing, with any length field
        channel = rng.randrange(0x4000, 0x8000)
        data = rng.randbytes(rng.randrange(0, 200))
        length = rng.choice([len(data), rng.randrange(0, 0x10000)])
        return struct.pack("!HH", channel, length) + data
    if kind == 5:  # a valid header whose one attribute claims 65535 bytes
        attribute = struct.pack("!HH", rng.choice(_TYPES), 0xFFFF) + rng.randbytes(8)
        return _header(rng, len(attribute)) + attribute
    if kind == 6:  # a signed request with bits flipped
        data = bytearray(_signed_request(rng, realm))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    # a signed request truncated, or with junk after it
    data = _signed_request(rng, realm)
    return data[: rng.randrange(len(data))] if rng.random() < 0.5 else data + rng.randbytes(4)


async def _raw_stream(
    info: ServerInfo, port: int, chunks: list[bytes], tls: ssl.SSLContext | None = None
) -> None:
    """Connect, send ``chunks``, and close, whatever the server does meanwhile."""
    try:
        reader, writer = await asyncio.open_connection(info.host, port, ssl=tls)
    except (ConnectionError, ssl.SSLError):
        return
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        await asyncio.wait_for(reader.read(65536), 0.2)
    except (ConnectionError, ssl.SSLError, TimeoutError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


def _stream_garbage(rng: random.Random, realm: str) -> list[list[bytes]]:
    """Byte sequences for one connection each."""
    connections = [[rng.randbytes(rng.randrange(1, 400))] for _ in range(15)]
    connections += [[garbage(rng, realm) for _ in range(20)] for _ in range(10)]
    connections += [
        [_header(rng, 0xFFFC) + rng.randbytes(100)],  # waits for 64 KiB that never come
        [struct.pack("!HH", 0x4000, 0xFFFF) + rng.randbytes(50)],  # ChannelData, truncated
        [struct.pack("!HH", 0x4001, 3) + b"abc\x00" * 50],  # padded ChannelData, no allocation
        [_header(rng, 4)[:-1], b"\xff", b"\xff" * 10],  # a header, then out of step
        [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(40)],  # TLS on TCP
    ]
    return connections


async def test_garbage_on_every_transport_leaves_the_server_answering(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, log):
        rng = random.Random(SEED)
        udp_address = (info.host, info.turn_port)
        fuzzer = await TurnClient.connect("udp", udp_address)
        semantic = await TurnClient.connect("udp", udp_address)
        assert (await semantic.allocate()).message_class is MessageClass.SUCCESS  # a nonce
        for index in range(DATAGRAMS):
            if index % 4 == 0:
                semantic.send_raw(semantic_request(rng, semantic))
            else:
                fuzzer.send_raw(garbage(rng, info.realm))
            if index % 50 == 49:
                await asyncio.sleep(0.001)  # let the server keep up; UDP would drop
        for chunks in _stream_garbage(rng, info.realm):
            await _raw_stream(info, info.turn_port, chunks)
        client_tls = ssl.create_default_context(cafile=str(info.ca_cert))
        for chunks in _stream_garbage(rng, info.realm)[:12]:
            await _raw_stream(info, info.turns_port, chunks)  # not TLS at all
            await _raw_stream(info, info.turns_port, chunks, client_tls)  # garbage inside TLS

        await semantic.close()
        # The same UDP 5-tuple that sent the garbage still gets answers.
        answer = await fuzzer.binding()
        assert answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == fuzzer.local
        for transport, port in (("tcp", info.turn_port), ("tls", info.turns_port)):
            client = await TurnClient.connect(transport, (info.host, port), ssl_context=client_tls)
            try:
                answer = await client.binding()
                assert answer.message_class is MessageClass.SUCCESS
                assert answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == client.local
            finally:
                await client.close()
        # A whole relay round trip still works from the fuzzed 5-tuple.
        peer = await UdpPeer.bind()
        try:
            assert (await fuzzer.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await fuzzer.channel_bind(0x4000, peer.address)) is None
            fuzzer.send_channel_data(0x4000, b"still relaying")
            assert (await peer.receive())[0] == b"still relaying"
        finally:
            await fuzzer.close()
            await peer.close()
    text = log.read_text()
    # The fuzz reached the TURN core, not just the decoder.
    assert text.count("refused ") >= 50
    assert ": 420 Unknown Attribute" in text and ": 437 Allocation Mismatch" in text
    assert "Traceback" not in text
    assert " ERROR " not in text

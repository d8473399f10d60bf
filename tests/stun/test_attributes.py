"""passage.stun.attributes: the attribute table, value by value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.stun import (
    ATTRIBUTES,
    AddressErrorCodeValue,
    AttributeType,
    AttributeValue,
    ChangeRequestValue,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    PasswordAlgorithmValue,
    TransactionId,
    attribute_name,
    decode_message,
    encode_message,
)

A = AttributeType
TID = TransactionId(bytes.fromhex("b7e7a701bc34d686fa87dfae"))

addresses = st.tuples(st.ip_addresses().map(str), st.integers(0, 0xFFFF))
u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
u32, u64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
text = st.text(max_size=40)
blobs = st.binary(max_size=64)
algorithms = st.builds(PasswordAlgorithmValue, u16, st.binary(max_size=9))

# One strategy per kind of value; every row of the table must be listed here.
VALUES: dict[int, st.SearchStrategy[AttributeValue]] = {
    **dict.fromkeys(
        [
            A.MAPPED_ADDRESS,
            A.RESPONSE_ADDRESS,
            A.SOURCE_ADDRESS,
            A.CHANGED_ADDRESS,
            A.XOR_PEER_ADDRESS,
            A.XOR_RELAYED_ADDRESS,
            A.XOR_MAPPED_ADDRESS,
            A.ALTERNATE_SERVER,
            A.RESPONSE_ORIGIN,
            A.OTHER_ADDRESS,
        ],
        addresses,
    ),
    **dict.fromkeys(
        [
            A.LIFETIME,
            A.PRIORITY,
            A.CONNECTION_ID,
            A.TRANSACTION_TRANSMIT_COUNTER,
            A.CACHE_TIMEOUT,
            A.FINGERPRINT,
        ],
        u32,
    ),
    **dict.fromkeys([A.ICE_CONTROLLED, A.ICE_CONTROLLING, A.ICMP], u64),
    **dict.fromkeys([A.CHANNEL_NUMBER, A.RESPONSE_PORT], u16),
    **dict.fromkeys(
        [A.REQUESTED_TRANSPORT, A.REQUESTED_ADDRESS_FAMILY, A.ADDITIONAL_ADDRESS_FAMILY], u8
    ),
    A.EVEN_PORT: st.booleans(),
    A.CHANGE_REQUEST: st.builds(ChangeRequestValue, st.booleans(), st.booleans()),
    **dict.fromkeys(
        [
            A.USERNAME,
            A.REALM,
            A.NONCE,
            A.SOFTWARE,
            A.ALTERNATE_DOMAIN,
            A.ORIGIN,
            A.THIRD_PARTY_AUTHORIZATION,
        ],
        text,
    ),
    **dict.fromkeys(
        [
            A.DATA,
            A.RESERVATION_TOKEN,
            A.USERHASH,
            A.ACCESS_TOKEN,
            A.PADDING,
            A.MOBILITY_TICKET,
            A.DONT_FRAGMENT,
            A.USE_CANDIDATE,
        ],
        blobs,
    ),
    A.MESSAGE_INTEGRITY: st.binary(min_size=20, max_size=20),
    A.MESSAGE_INTEGRITY_SHA256: st.sampled_from([16, 20, 24, 28, 32]).flatmap(
        lambda size: st.binary(min_size=size, max_size=size)
    ),
    A.ERROR_CODE: st.builds(ErrorCodeValue, st.integers(300, 699), text),
    A.ADDRESS_ERROR_CODE: st.builds(AddressErrorCodeValue, u8, st.integers(300, 699), text),
    A.UNKNOWN_ATTRIBUTES: st.lists(u16, max_size=7).map(tuple),
    A.PASSWORD_ALGORITHM: algorithms,
    A.PASSWORD_ALGORITHMS: st.lists(algorithms, max_size=4).map(tuple),
}

# FINGERPRINT and the integrity attributes change what the decoder keeps; they get their own
# tests in test_message.py.
MESSAGE_SAFE = sorted(
    set(VALUES) - {A.FINGERPRINT, A.MESSAGE_INTEGRITY, A.MESSAGE_INTEGRITY_SHA256}
)


def test_every_attribute_type_is_in_the_table_with_a_value_strategy() -> None:
    assert set(ATTRIBUTES) == set(AttributeType)
    assert set(VALUES) == set(ATTRIBUTES)


@pytest.mark.parametrize(
    ("attr_type", "value"),
    [
        (A.MAPPED_ADDRESS, 0x0001),
        (A.RESPONSE_ADDRESS, 0x0002),
        (A.CHANGE_REQUEST, 0x0003),
        (A.SOURCE_ADDRESS, 0x0004),
        (A.CHANGED_ADDRESS, 0x0005),
        (A.USERNAME, 0x0006),
        (A.MESSAGE_INTEGRITY, 0x0008),
        (A.ERROR_CODE, 0x0009),
        (A.UNKNOWN_ATTRIBUTES, 0x000A),
        (A.CHANNEL_NUMBER, 0x000C),
        (A.LIFETIME, 0x000D),
        (A.XOR_PEER_ADDRESS, 0x0012),
        (A.DATA, 0x0013),
        (A.REALM, 0x0014),
        (A.NONCE, 0x0015),
        (A.XOR_RELAYED_ADDRESS, 0x0016),
        (A.REQUESTED_ADDRESS_FAMILY, 0x0017),
        (A.EVEN_PORT, 0x0018),
        (A.REQUESTED_TRANSPORT, 0x0019),
        (A.DONT_FRAGMENT, 0x001A),
        (A.ACCESS_TOKEN, 0x001B),
        (A.MESSAGE_INTEGRITY_SHA256, 0x001C),
        (A.PASSWORD_ALGORITHM, 0x001D),
        (A.USERHASH, 0x001E),
        (A.XOR_MAPPED_ADDRESS, 0x0020),
        (A.RESERVATION_TOKEN, 0x0022),
        (A.PRIORITY, 0x0024),
        (A.USE_CANDIDATE, 0x0025),
        (A.PADDING, 0x0026),
        (A.RESPONSE_PORT, 0x0027),
        (A.CONNECTION_ID, 0x002A),
        (A.ADDITIONAL_ADDRESS_FAMILY, 0x8000),
        (A.ADDRESS_ERROR_CODE, 0x8001),
        (A.PASSWORD_ALGORITHMS, 0x8002),
        (A.ALTERNATE_DOMAIN, 0x8003),
        (A.ICMP, 0x8004),
        (A.SOFTWARE, 0x8022),
        (A.ALTERNATE_SERVER, 0x8023),
        (A.TRANSACTION_TRANSMIT_COUNTER, 0x8025),
        (A.CACHE_TIMEOUT, 0x8027),
        (A.FINGERPRINT, 0x8028),
        (A.ICE_CONTROLLED, 0x8029),
        (A.ICE_CONTROLLING, 0x802A),
        (A.RESPONSE_ORIGIN, 0x802B),
        (A.OTHER_ADDRESS, 0x802C),
        (A.THIRD_PARTY_AUTHORIZATION, 0x802E),
        (A.ORIGIN, 0x802F),
        (A.MOBILITY_TICKET, 0x8030),
    ],
)
def test_attribute_type_numbers_match_the_iana_registry(attr_type: A, value: int) -> None:
    assert attr_type == value


@given(st.sampled_from(sorted(VALUES)).flatmap(lambda t: st.tuples(st.just(t), VALUES[t])))
def test_every_value_kind_round_trips_through_its_table_row(
    pair: tuple[int, AttributeValue],
) -> None:
    attr_type, value = pair
    spec = ATTRIBUTES[attr_type]
    assert spec.parse(spec.serialize(value, TID), TID) == value


@given(
    st.sampled_from(MESSAGE_SAFE).flatmap(lambda t: st.tuples(st.just(t), VALUES[t])),
    st.binary(min_size=12, max_size=12),
)
def test_every_value_kind_round_trips_through_a_message(
    pair: tuple[int, AttributeValue], transaction_id: bytes
) -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, TransactionId(transaction_id), (pair,))
    assert decode_message(encode_message(message)).attributes == (pair,)


def test_xor_address_wire_format_rfc5769() -> None:
    # RFC 5769 §2.2 and §2.3 XOR-MAPPED-ADDRESS values.
    spec = ATTRIBUTES[A.XOR_MAPPED_ADDRESS]
    assert spec.serialize(("192.0.2.1", 32853), TID) == bytes.fromhex("0001a147e112a643")
    ipv6 = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    expected = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")
    assert spec.serialize(ipv6, TID) == expected
    assert spec.parse(expected, TID) == ipv6


def test_plain_address_wire_format() -> None:
    spec = ATTRIBUTES[A.MAPPED_ADDRESS]
    assert spec.serialize(("192.0.2.1", 3478), TID) == bytes.fromhex("00010d96c0000201")
    assert spec.parse(bytes.fromhex("00020d96") + bytes(15) + b"\x01", TID) == ("::1", 3478)


@pytest.mark.parametrize(
    ("attr_type", "value", "wire"),
    [
        (A.CHANNEL_NUMBER, 0x4000, "40000000"),
        (A.REQUESTED_TRANSPORT, 17, "11000000"),
        (A.REQUESTED_ADDRESS_FAMILY, 2, "02000000"),
        (A.RESPONSE_PORT, 0x1234, "12340000"),
        (A.EVEN_PORT, True, "80"),
        (A.EVEN_PORT, False, "00"),
        (A.ERROR_CODE, ErrorCodeValue(438, "Stale Nonce"), "00000426" + b"Stale Nonce".hex()),
        (A.ADDRESS_ERROR_CODE, AddressErrorCodeValue(2, 440, "x"), "02000428" + "78"),
        (A.UNKNOWN_ATTRIBUTES, (0x7ABC, 0x0007, 0x8000), "7abc00078000"),
        (A.PASSWORD_ALGORITHM, PasswordAlgorithmValue(2), "00020000"),
        (
            A.PASSWORD_ALGORITHMS,
            (PasswordAlgorithmValue(2), PasswordAlgorithmValue(1, b"\x01")),
            "00020000" + "0001000101000000",
        ),
        (A.ICMP, 0x0000_03_01_DEADBEEF, "00000301deadbeef"),
        # RFC 5780 §7.2: 32 bits, "change IP" is A (0x04) and "change port" B (0x02).
        (A.CHANGE_REQUEST, ChangeRequestValue(), "00000000"),
        (A.CHANGE_REQUEST, ChangeRequestValue(change_ip=True), "00000004"),
        (A.CHANGE_REQUEST, ChangeRequestValue(change_port=True), "00000002"),
        (A.CHANGE_REQUEST, ChangeRequestValue(True, True), "00000006"),
        # RFC 5780 §7.5: RESPONSE-PORT is a 16-bit port and 2 bytes of padding.
        (A.RESPONSE_PORT, 3479, "0d970000"),
        # RFC 5780 §7.1: RESPONSE-ORIGIN and OTHER-ADDRESS are laid out as MAPPED-ADDRESS.
        (A.RESPONSE_ORIGIN, ("192.0.2.1", 3478), "00010d96c0000201"),
        (A.OTHER_ADDRESS, ("192.0.2.2", 3479), "00010d97c0000202"),
        (A.OTHER_ADDRESS, ("2001:db8::2", 3479), "00020d9720010db8" + "00" * 11 + "02"),
    ],
)
def test_value_layouts(attr_type: int, value: AttributeValue, wire: str) -> None:
    spec = ATTRIBUTES[attr_type]
    assert spec.serialize(value, TID).hex() == wire
    assert spec.parse(bytes.fromhex(wire), TID) == value


def test_rffu_bytes_and_even_port_reserved_bits_are_ignored_on_receipt() -> None:
    assert ATTRIBUTES[A.CHANNEL_NUMBER].parse(bytes.fromhex("4001ffff"), TID) == 0x4001
    assert ATTRIBUTES[A.REQUESTED_TRANSPORT].parse(bytes.fromhex("06ffffff"), TID) == 6
    assert ATTRIBUTES[A.EVEN_PORT].parse(b"\x7f", TID) is False
    # RFC 5780 §7.2: bits other than A and B (the RFC 3489 ones among them) mean nothing.
    assert ATTRIBUTES[A.CHANGE_REQUEST].parse(bytes.fromhex("ffffff01"), TID) == (
        ChangeRequestValue()
    )
    assert ATTRIBUTES[A.CHANGE_REQUEST].parse(bytes.fromhex("000000f4"), TID) == (
        ChangeRequestValue(change_ip=True)
    )


@pytest.mark.parametrize("wire", ["", "06", "000006", "0000000600"])
def test_change_request_of_the_wrong_length_is_malformed(wire: str) -> None:
    with pytest.raises(ValueError):
        ATTRIBUTES[A.CHANGE_REQUEST].parse(bytes.fromhex(wire), TID)


@pytest.mark.parametrize(
    ("attr_type", "value", "error"),
    [
        (A.LIFETIME, "600", TypeError),
        (A.LIFETIME, True, TypeError),
        (A.LIFETIME, -1, ValueError),
        (A.CHANNEL_NUMBER, 0x10000, ValueError),
        (A.EVEN_PORT, 1, TypeError),
        (A.USERNAME, b"alice", TypeError),
        (A.DATA, "data", TypeError),
        (A.XOR_PEER_ADDRESS, "192.0.2.1:3478", TypeError),
        (A.XOR_PEER_ADDRESS, ("192.0.2.1", 70000), ValueError),
        (A.XOR_PEER_ADDRESS, ("not an ip", 1), ValueError),
        (A.MAPPED_ADDRESS, ("192.0.2.1", "80"), TypeError),
        (A.MESSAGE_INTEGRITY, bytes(19), ValueError),
        (A.ERROR_CODE, 438, TypeError),
        (A.ERROR_CODE, ErrorCodeValue(200, "OK"), ValueError),
        (A.ADDRESS_ERROR_CODE, ErrorCodeValue(440, "x"), TypeError),
        (A.UNKNOWN_ATTRIBUTES, (1, "2"), TypeError),
        (A.UNKNOWN_ATTRIBUTES, (0x10000,), ValueError),
        (A.PASSWORD_ALGORITHM, (PasswordAlgorithmValue(1),), TypeError),
        (A.PASSWORD_ALGORITHM, PasswordAlgorithmValue(0x10000), ValueError),
        (A.PASSWORD_ALGORITHMS, PasswordAlgorithmValue(1), TypeError),
        (A.CHANGE_REQUEST, 6, TypeError),
        (A.RESPONSE_PORT, 0x10000, ValueError),
    ],
)
def test_serializers_refuse_values_of_the_wrong_kind_or_range(
    attr_type: int, value: AttributeValue, error: type[Exception]
) -> None:
    with pytest.raises(error):
        ATTRIBUTES[attr_type].serialize(value, TID)


def test_ipv4_mapped_ipv6_stays_ipv6() -> None:
    spec = ATTRIBUTES[A.XOR_PEER_ADDRESS]
    wire = spec.serialize(("::ffff:192.0.2.1", 1), TID)
    assert wire[1] == 2
    host, _ = spec.parse(wire, TID)  # type: ignore[misc]
    assert host != "192.0.2.1"


def test_attribute_names() -> None:
    assert attribute_name(A.XOR_PEER_ADDRESS) == "XOR-PEER-ADDRESS"
    assert attribute_name(0x7ABC) == "0x7ABC"

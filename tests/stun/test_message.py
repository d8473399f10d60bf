"""passage.stun.message: decoding, encoding, integrity and fingerprint."""

from __future__ import annotations

import hmac
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.stun import (
    ATTRIBUTES,
    MAGIC_COOKIE,
    AttributeType,
    AttributeValue,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    PasswordAlgorithm,
    PasswordAlgorithmValue,
    StunDecodeError,
    TransactionId,
    decode_message,
    decode_send_indication,
    encode_data_indication,
    encode_message,
    is_stun,
    long_term_key,
    short_term_key,
    verify_integrity,
)

from .rfc_vectors import (
    RFC5769_2_1_REQUEST,
    RFC5769_2_2_IPV4_RESPONSE,
    RFC5769_2_3_IPV6_RESPONSE,
    RFC5769_2_4_LONG_TERM_REQUEST,
    RFC5769_NONCE,
    RFC5769_PASSWORD,
    RFC5769_PASSWORD_BEFORE_SASLPREP,
    RFC5769_REALM,
    RFC5769_SHORT_TERM_PASSWORD,
    RFC5769_TRANSACTION_ID,
    RFC5769_USERNAME,
    RFC8489_B_1_SHA256_REQUEST,
    RFC8489_NONCE,
    RFC8489_USERHASH,
)

A = AttributeType
TID = TransactionId(bytes(range(12)))
SHORT_TERM_KEY = short_term_key(RFC5769_SHORT_TERM_PASSWORD)
LONG_TERM_KEY = long_term_key(RFC5769_USERNAME, RFC5769_REALM, RFC5769_PASSWORD)
SHA256_KEY = long_term_key(
    RFC5769_USERNAME, RFC5769_REALM, RFC5769_PASSWORD, PasswordAlgorithm.SHA256
)
TRAILERS = {A.MESSAGE_INTEGRITY, A.MESSAGE_INTEGRITY_SHA256, A.FINGERPRINT}


def without_trailers(message: Message) -> Message:
    kept = tuple((t, v) for t, v in message.attributes if t not in TRAILERS)
    return Message(message.method, message.message_class, message.transaction_id, kept)


def set_length(data: bytes, length: int) -> bytes:
    return data[:2] + struct.pack("!H", length) + data[4:]


def build(body: bytes, msg_type: int = 0x0001, cookie: int = MAGIC_COOKIE) -> bytes:
    return struct.pack("!HHI", msg_type, len(body), cookie) + TID + body


def tlv(attr_type: int, value: bytes) -> bytes:
    return struct.pack("!HH", attr_type, len(value)) + value + bytes(-len(value) & 3)


# -- RFC 5769 and RFC 8489 vectors ---------------------------------------------------------------


def test_rfc5769_2_1_sample_request() -> None:
    message = decode_message(RFC5769_2_1_REQUEST)
    assert (message.method, message.message_class) == (Method.BINDING, MessageClass.REQUEST)
    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert message.get(A.SOFTWARE, str) == "STUN test client"
    assert message.get(A.PRIORITY, int) == 0x6E0001FF
    assert message.get(A.ICE_CONTROLLED, int) == 0x932FF9B151263B36
    assert message.get(A.USERNAME, str) == "evtj:h6vY"
    assert message.get(A.FINGERPRINT, int) == 0xE57A3BCF
    assert verify_integrity(message, SHORT_TERM_KEY)
    assert not verify_integrity(message, short_term_key("wrong"))


def test_rfc5769_2_2_ipv4_response() -> None:
    message = decode_message(RFC5769_2_2_IPV4_RESPONSE)
    assert (message.method, message.message_class) == (Method.BINDING, MessageClass.SUCCESS)
    assert message.get(A.SOFTWARE, str) == "test vector"
    assert message.get(A.XOR_MAPPED_ADDRESS, tuple) == ("192.0.2.1", 32853)
    assert verify_integrity(message, SHORT_TERM_KEY)


def test_rfc5769_2_3_ipv6_response() -> None:
    message = decode_message(RFC5769_2_3_IPV6_RESPONSE)
    address = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert message.get(A.XOR_MAPPED_ADDRESS, tuple) == address
    assert verify_integrity(message, SHORT_TERM_KEY)


def test_rfc5769_2_4_long_term_request_with_saslprep_password() -> None:
    message = decode_message(RFC5769_2_4_LONG_TERM_REQUEST)
    assert message.get(A.USERNAME, str) == RFC5769_USERNAME
    assert message.get(A.NONCE, str) == RFC5769_NONCE
    assert message.get(A.REALM, str) == RFC5769_REALM
    assert not message.has(A.FINGERPRINT)
    key = long_term_key(RFC5769_USERNAME, RFC5769_REALM, RFC5769_PASSWORD_BEFORE_SASLPREP)
    assert key == LONG_TERM_KEY
    assert verify_integrity(message, key)


def test_rfc8489_b_1_sha256_request() -> None:
    message = decode_message(RFC8489_B_1_SHA256_REQUEST)
    assert message.get(A.USERHASH, bytes) == RFC8489_USERHASH
    assert message.get(A.NONCE, str) == RFC8489_NONCE
    assert message.get(A.PASSWORD_ALGORITHM, PasswordAlgorithmValue) == PasswordAlgorithmValue(
        PasswordAlgorithm.SHA256
    )
    assert verify_integrity(message, SHA256_KEY)
    assert not verify_integrity(message, LONG_TERM_KEY)


@pytest.mark.parametrize(
    ("vector", "key", "sha256", "fingerprint"),
    [
        (RFC5769_2_4_LONG_TERM_REQUEST, LONG_TERM_KEY, False, False),
        (RFC8489_B_1_SHA256_REQUEST, SHA256_KEY, True, False),
    ],
)
def test_vectors_with_zero_padding_re_encode_byte_for_byte(
    vector: bytes, key: bytes, sha256: bool, fingerprint: bool
) -> None:
    rebuilt = without_trailers(decode_message(vector))
    encoded = encode_message(
        rebuilt, integrity_key=key, integrity_sha256=sha256, fingerprint=fingerprint
    )
    assert encoded == vector


@pytest.mark.parametrize(
    "vector", [RFC5769_2_1_REQUEST, RFC5769_2_2_IPV4_RESPONSE, RFC5769_2_3_IPV6_RESPONSE]
)
def test_vectors_padded_with_spaces_round_trip_their_attributes(vector: bytes) -> None:
    # These vectors pad USERNAME/SOFTWARE with 0x20; we pad with zeros, so the bytes differ but
    # every attribute, the integrity and the fingerprint must survive.
    original = decode_message(vector)
    encoded = encode_message(
        without_trailers(original), integrity_key=SHORT_TERM_KEY, fingerprint=True
    )
    again = decode_message(encoded)
    assert without_trailers(again) == without_trailers(original)
    assert again.get(A.MESSAGE_INTEGRITY, bytes) != original.get(A.MESSAGE_INTEGRITY, bytes)
    assert verify_integrity(again, SHORT_TERM_KEY)
    assert again.has(A.FINGERPRINT)


def test_decoded_vector_re_encodes_verbatim_attributes() -> None:
    # MESSAGE-INTEGRITY kept as a plain value is written back as is.
    original = decode_message(RFC5769_2_4_LONG_TERM_REQUEST)
    assert encode_message(original) == RFC5769_2_4_LONG_TERM_REQUEST


# -- integrity and fingerprint --------------------------------------------------------------------


def sample_request() -> Message:
    return Message(
        Method.ALLOCATE,
        MessageClass.REQUEST,
        TID,
        ((A.REQUESTED_TRANSPORT, 17), (A.USERNAME, "alice"), (A.LIFETIME, 600)),
    )


@pytest.mark.parametrize("sha256", [False, True])
def test_tampering_any_byte_before_the_mac_fails_verification(sha256: bool) -> None:
    encoded = encode_message(sample_request(), integrity_key=b"key", integrity_sha256=sha256)
    assert verify_integrity(decode_message(encoded), b"key")
    for index in range(len(encoded)):
        tampered = bytearray(encoded)
        tampered[index] ^= 0x01
        try:
            message = decode_message(bytes(tampered))
        except StunDecodeError:
            continue
        assert not verify_integrity(message, b"key"), index


def test_integrity_covers_only_up_to_message_integrity() -> None:
    # RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are neither covered nor used.
    signed = encode_message(sample_request(), integrity_key=b"key")
    extra = tlv(A.LIFETIME, struct.pack("!I", 0)) + tlv(0x7777, b"x")
    forged = set_length(signed, len(signed) - 20 + len(extra)) + extra
    message = decode_message(forged)
    assert verify_integrity(message, b"key")
    assert message.get(A.LIFETIME, int) == 600
    assert message.unknown_comprehension_required() == ()
    assert [t for t, _ in message.attributes][-1] == A.MESSAGE_INTEGRITY


def test_attributes_after_integrity_are_ignored_even_if_malformed() -> None:
    signed = encode_message(sample_request(), integrity_key=b"key")
    extra = tlv(A.LIFETIME, b"\x01")
    message = decode_message(set_length(signed, len(signed) - 20 + 8) + extra)
    assert verify_integrity(message, b"key")


def test_sha256_after_sha1_is_kept_and_wins() -> None:
    # RFC 8489 §14.6: MESSAGE-INTEGRITY-SHA256 may follow MESSAGE-INTEGRITY and covers it.
    sha1_signed = encode_message(sample_request(), integrity_key=b"key")
    prefix = set_length(sha1_signed, len(sha1_signed) - 20 + 36)
    mac = hmac.digest(b"key", prefix, "sha256")
    message = decode_message(prefix + tlv(A.MESSAGE_INTEGRITY_SHA256, mac))
    assert message.has(A.MESSAGE_INTEGRITY) and message.has(A.MESSAGE_INTEGRITY_SHA256)
    assert verify_integrity(message, b"key")
    wrong = decode_message(prefix + tlv(A.MESSAGE_INTEGRITY_SHA256, bytes(32)))
    assert not verify_integrity(wrong, b"key")  # a good SHA-1 MAC does not rescue it


def test_only_fingerprint_counts_after_sha256() -> None:
    signed = encode_message(sample_request(), integrity_key=b"key", integrity_sha256=True)
    extra = tlv(A.MESSAGE_INTEGRITY, bytes(20)) + tlv(A.SOFTWARE, b"late")
    message = decode_message(set_length(signed, len(signed) - 20 + len(extra)) + extra)
    assert not message.has(A.MESSAGE_INTEGRITY)
    assert not message.has(A.SOFTWARE)
    assert verify_integrity(message, b"key")


def test_truncated_sha256_mac_verifies() -> None:
    plain = encode_message(sample_request())
    prefix = set_length(plain, len(plain) - 20 + 4 + 16)
    mac = hmac.digest(b"key", prefix, "sha256")[:16]
    message = decode_message(prefix + tlv(A.MESSAGE_INTEGRITY_SHA256, mac))
    assert verify_integrity(message, b"key")


def test_verify_without_integrity_or_raw_is_false() -> None:
    assert not verify_integrity(decode_message(encode_message(sample_request())), b"key")
    assert not verify_integrity(sample_request(), b"key")


def test_fingerprint_is_last_and_checked() -> None:
    encoded = encode_message(sample_request(), integrity_key=b"key", fingerprint=True)
    message = decode_message(encoded)
    assert message.attributes[-1][0] == A.FINGERPRINT
    expected = zlib.crc32(encoded[:-8]) ^ 0x5354554E
    assert message.get(A.FINGERPRINT, int) == expected
    bad = encoded[:-1] + bytes([encoded[-1] ^ 1])
    with pytest.raises(StunDecodeError) as error:
        decode_message(bad)
    assert error.value.reason == "bad_fingerprint"


def test_attribute_after_fingerprint_is_rejected() -> None:
    encoded = encode_message(sample_request(), fingerprint=True)
    extra = tlv(A.SOFTWARE, b"late")
    with pytest.raises(StunDecodeError) as error:
        decode_message(set_length(encoded, len(encoded) - 20 + len(extra)) + extra)
    assert error.value.reason == "fingerprint_not_last"


# -- encoding ------------------------------------------------------------------------------------


def test_encode_rejects_trailers_it_would_append() -> None:
    signed = decode_message(encode_message(sample_request(), integrity_key=b"k", fingerprint=True))
    with pytest.raises(ValueError, match="appended"):
        encode_message(signed, integrity_key=b"k")
    with pytest.raises(ValueError, match="appended"):
        encode_message(signed, fingerprint=True)
    assert encode_message(signed) == signed.raw


def test_encode_rejects_bad_transaction_id_and_oversize() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        encode_message(Message(Method.BINDING, MessageClass.REQUEST, TransactionId(b"short")))
    huge = Message(Method.SEND, MessageClass.INDICATION, TID, ((A.DATA, bytes(65532)),))
    with pytest.raises(ValueError, match="exceeds"):
        encode_message(huge)
    fits = Message(Method.SEND, MessageClass.INDICATION, TID, ((A.DATA, bytes(65528)),))
    assert len(encode_message(fits)) == 20 + 65532
    with pytest.raises(ValueError, match="exceeds"):
        encode_message(fits, fingerprint=True)


def test_encode_rejects_values_of_the_wrong_kind() -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, ((A.LIFETIME, "600"),))
    with pytest.raises(TypeError):
        encode_message(message)
    unknown = Message(Method.BINDING, MessageClass.REQUEST, TID, ((0x7ABC, 5),))
    with pytest.raises(TypeError):
        encode_message(unknown)


def test_unknown_types_round_trip_as_raw_bytes_and_are_reported() -> None:
    message = Message(
        Method.BINDING,
        MessageClass.REQUEST,
        TID,
        ((0x7ABC, b"abc"), (A.SOFTWARE, "x"), (0xC001, b""), (0x7ABC, b"d"), (0x0007, b"")),
    )
    decoded = decode_message(encode_message(message))
    assert decoded.attributes == message.attributes
    assert decoded.unknown_comprehension_required() == (0x7ABC, 0x0007)
    assert decoded.get(0xC001, bytes) == b""


def test_get_and_has() -> None:
    message = Message(
        Method.BINDING,
        MessageClass.REQUEST,
        TID,
        ((A.SOFTWARE, "one"), (A.SOFTWARE, "two"), (A.ERROR_CODE, ErrorCodeValue(438, "x"))),
    )
    assert message.get(A.SOFTWARE, str) == "one"
    assert message.get(A.SOFTWARE, bytes) is None
    assert message.get(A.LIFETIME, int) is None
    assert message.get(A.ERROR_CODE, ErrorCodeValue) == ErrorCodeValue(438, "x")
    assert message.has(A.SOFTWARE) and not message.has(A.LIFETIME)


def test_decoded_method_and_types_are_enums_when_known() -> None:
    message = Message(0x0FF, MessageClass.INDICATION, TID, ((A.SOFTWARE, "s"), (0x7FFF, b"")))
    decoded = decode_message(encode_message(message))
    assert decoded.method == 0x0FF and not isinstance(decoded.method, Method)
    assert isinstance(decoded.attributes[0][0], AttributeType)
    allocate = decode_message(encode_message(sample_request()))
    assert allocate.method is Method.ALLOCATE


def test_decode_accepts_bytearray_and_memoryview() -> None:
    for data in (bytearray(RFC5769_2_2_IPV4_RESPONSE), memoryview(RFC5769_2_2_IPV4_RESPONSE)):
        message = decode_message(data)  # type: ignore[arg-type]
        assert message.raw == RFC5769_2_2_IPV4_RESPONSE
        assert isinstance(message.get(A.SOFTWARE, str), str)


# -- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (build(b"")[:19], "too_short"),
        (b"\x40" + build(b"")[1:], "not_stun"),
        (b"\x80" + build(b"")[1:], "not_stun"),
        (build(b"", cookie=0x2112A443), "bad_magic_cookie"),
        (set_length(build(bytes(4)), 2), "bad_length"),
        (set_length(build(bytes(4)), 8), "bad_length"),
        (build(bytes(4)) + b"\x00\x00\x00\x00", "bad_length"),
        (build(struct.pack("!HH", A.SOFTWARE, 5) + b"abcd"), "attribute_overflow"),
        (build(struct.pack("!HH", 0x7000, 200)), "attribute_overflow"),
        (build(tlv(A.LIFETIME, b"\x00\x00\x01")), "bad_attribute_value"),
        (build(tlv(A.USERNAME, b"\xff\xfe")), "bad_attribute_value"),
        (build(tlv(A.XOR_MAPPED_ADDRESS, b"\x00\x03\x00\x01" + bytes(4))), "bad_attribute_value"),
        (build(tlv(A.XOR_MAPPED_ADDRESS, b"\x00\x01\x00\x01" + bytes(16))), "bad_attribute_value"),
        (build(tlv(A.MAPPED_ADDRESS, b"\x00\x01")), "bad_attribute_value"),
        (build(tlv(A.ERROR_CODE, b"\x00\x00\x04")), "bad_attribute_value"),
        (build(tlv(A.ERROR_CODE, b"\x00\x00\x02\x00")), "bad_attribute_value"),
        (build(tlv(A.ERROR_CODE, b"\x00\x00\x04\x64")), "bad_attribute_value"),
        (build(tlv(A.UNKNOWN_ATTRIBUTES, b"\x00\x01\x00")), "bad_attribute_value"),
        (build(tlv(A.MESSAGE_INTEGRITY, bytes(19))), "bad_attribute_value"),
        (build(tlv(A.MESSAGE_INTEGRITY_SHA256, bytes(30))), "bad_attribute_value"),
        (build(tlv(A.EVEN_PORT, b"")), "bad_attribute_value"),
        (build(tlv(A.PASSWORD_ALGORITHM, b"\x00\x01\x00\x04\x00")), "bad_attribute_value"),
        (build(tlv(A.PASSWORD_ALGORITHM, b"")), "bad_attribute_value"),
        (build(tlv(A.PASSWORD_ALGORITHMS, b"\x00\x01\x00\x00\x00")), "bad_attribute_value"),
        (build(tlv(A.FINGERPRINT, bytes(8))), "bad_attribute_value"),
    ],
)
def test_malformed_messages_name_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(StunDecodeError) as error:
        decode_message(data)
    assert error.value.reason == reason
    if reason in {"too_short", "not_stun", "bad_magic_cookie", "bad_length"}:
        assert not is_stun(data)


def test_is_stun() -> None:
    assert is_stun(RFC5769_2_1_REQUEST)
    assert is_stun(build(b""))
    assert not is_stun(RFC5769_2_1_REQUEST[:-4])
    assert not is_stun(b"\x40\x00\x00\x00")
    assert not is_stun(build(b"", cookie=0))
    assert not is_stun(set_length(build(bytes(4)), 2))


@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_only_raise_stun_decode_error(data: bytes) -> None:
    try:
        decode_message(data)
    except StunDecodeError:
        pass


attribute_tlvs = st.lists(
    st.tuples(
        st.sampled_from(sorted(ATTRIBUTES)) | st.integers(0, 0xFFFF),
        st.binary(max_size=40),
        st.integers(0, 3),
    ),
    max_size=8,
)


@given(st.integers(0, 0x3FFF), attribute_tlvs)
def test_fuzz_well_framed_attributes_only_raise_stun_decode_error(
    msg_type: int, attributes: list[tuple[int, bytes, int]]
) -> None:
    # Valid header and TLV framing, random values, sometimes a lying attribute length.
    body = b"".join(
        struct.pack("!HH", t, len(v) + lie) + v + bytes(-len(v) & 3) for t, v, lie in attributes
    )
    data = build(body, msg_type)
    try:
        message = decode_message(data)
    except StunDecodeError:
        return
    assert message.raw == data
    verify_integrity(message, b"key")


values_for_messages: dict[int, st.SearchStrategy[AttributeValue]] = {
    A.XOR_PEER_ADDRESS: st.tuples(st.ip_addresses().map(str), st.integers(0, 0xFFFF)),
    A.DATA: st.binary(max_size=64),
    A.LIFETIME: st.integers(0, 2**32 - 1),
    A.USERNAME: st.text(max_size=20),
    A.EVEN_PORT: st.booleans(),
    A.UNKNOWN_ATTRIBUTES: st.lists(st.integers(0, 0xFFFF), max_size=5).map(tuple),
    A.ERROR_CODE: st.builds(ErrorCodeValue, st.integers(300, 699), st.text(max_size=10)),
}


@given(
    st.sampled_from(list(Method)),
    st.sampled_from(list(MessageClass)),
    st.binary(min_size=12, max_size=12),
    st.lists(
        st.sampled_from(sorted(values_for_messages)).flatmap(
            lambda t: st.tuples(st.just(t), values_for_messages[t])
        ),
        max_size=6,
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_messages_round_trip(
    method: Method,
    message_class: MessageClass,
    transaction_id: bytes,
    attributes: list[tuple[int, AttributeValue]],
    integrity: bool,
    sha256: bool,
    fingerprint: bool,
) -> None:
    message = Message(method, message_class, TransactionId(transaction_id), tuple(attributes))
    key = b"secret" if integrity else None
    encoded = encode_message(
        message, integrity_key=key, integrity_sha256=sha256, fingerprint=fingerprint
    )
    assert is_stun(encoded)
    decoded = decode_message(encoded)
    assert without_trailers(decoded) == message
    assert verify_integrity(decoded, b"secret") is integrity
    assert decoded.has(A.FINGERPRINT) is fingerprint


@given(
    st.binary(min_size=12, max_size=12),
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda ip: ip.compressed),
    ),
    st.integers(0, 65535),
    st.binary(max_size=300),
)
def test_encode_data_indication_matches_encode_message(
    transaction_id: bytes, host: str, port: int, data: bytes
) -> None:
    """RFC 8656 §10.3: the relay's fast encoder makes exactly the generic codec's bytes."""
    peer = (host, port)
    generic = encode_message(
        Message(
            Method.DATA,
            MessageClass.INDICATION,
            TransactionId(transaction_id),
            ((AttributeType.XOR_PEER_ADDRESS, peer), (AttributeType.DATA, data)),
        )
    )
    assert encode_data_indication(transaction_id, peer, data) == generic
    decoded = decode_message(generic)
    assert decoded.get(AttributeType.XOR_PEER_ADDRESS, tuple) == peer


def test_encode_data_indication_refuses_a_short_transaction_id() -> None:
    with pytest.raises(ValueError):
        encode_data_indication(b"short", ("192.0.2.1", 1), b"x")


_send_extras = st.lists(
    st.sampled_from(
        [
            (AttributeType.DONT_FRAGMENT, b""),
            (AttributeType.SOFTWARE, "client"),
            (AttributeType.XOR_PEER_ADDRESS, ("198.51.100.9", 9)),
            (AttributeType.DATA, b"second"),
            (0x7F03, b"?"),
        ]
    ),
    max_size=3,
)


@given(
    st.binary(min_size=12, max_size=12),
    st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda ip: ip.compressed)),
    st.integers(0, 65535),
    st.binary(max_size=200),
    _send_extras,
    st.booleans(),
)
def test_decode_send_indication_agrees_with_decode_message(
    transaction_id: bytes,
    host: str,
    port: int,
    data: bytes,
    extras: list[tuple[int, AttributeValue]],
    fingerprint: bool,
) -> None:
    """The fast Send path accepts only what the general decoder reads the same way."""
    attributes = ((AttributeType.XOR_PEER_ADDRESS, (host, port)), (AttributeType.DATA, data))
    message = Message(
        Method.SEND, MessageClass.INDICATION, TransactionId(transaction_id),
        (*attributes, *extras),
    )  # fmt: skip
    raw = encode_message(message, fingerprint=fingerprint)
    fast = decode_send_indication(raw)
    general = decode_message(raw)
    plain = all(kind in (AttributeType.DONT_FRAGMENT,) for kind, _ in extras)
    if plain:
        assert fast == ((host, port), data)
    if fast is not None:
        assert fast == (general.get(AttributeType.XOR_PEER_ADDRESS, tuple),
                        general.get(AttributeType.DATA, bytes))  # fmt: skip


def test_decode_send_indication_declines_a_bad_fingerprint_and_other_methods() -> None:
    message = Message(
        Method.SEND, MessageClass.INDICATION, TransactionId(bytes(12)),
        ((AttributeType.XOR_PEER_ADDRESS, ("192.0.2.1", 1)), (AttributeType.DATA, b"abc")),
    )  # fmt: skip
    raw = bytearray(encode_message(message, fingerprint=True))
    assert decode_send_indication(bytes(raw)) == (("192.0.2.1", 1), b"abc")
    raw[-1] ^= 1
    assert decode_send_indication(bytes(raw)) is None
    other = Message(
        Method.DATA, MessageClass.INDICATION, TransactionId(bytes(12)), message.attributes
    )
    assert decode_send_indication(encode_message(other)) is None
    assert decode_send_indication(b"\x00\x16") is None


@given(st.binary(max_size=120))
def test_decode_send_indication_never_raises(data: bytes) -> None:
    result = decode_send_indication(b"\x00\x16" + data)
    if result is not None:
        general = decode_message(b"\x00\x16" + data)
        assert result[1] == general.get(AttributeType.DATA, bytes)

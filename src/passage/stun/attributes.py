"""STUN attribute values and the one table that parses and serializes them.

Every known attribute type maps to ``AttributeSpec(name, parse, serialize)``. ``parse`` gets the
value bytes (without padding) and the transaction ID (for the XOR-ed addresses) and returns a
Python value; ``serialize`` does the reverse. Parsers raise ``ValueError``, ``IndexError`` or
``struct.error`` on a malformed value; the message decoder turns that into
``StunDecodeError("bad_attribute_value")``. Serializers raise ``TypeError`` for a value of the
wrong kind and ``ValueError`` for one out of range. Whether a type is comprehension-required comes
from its range (``constants.is_comprehension_required``), not from the table.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, TypeAlias

from passage.addresses import Address, AddressFamily

from .constants import MAGIC_COOKIE_BYTES, AttributeType


@dataclass(frozen=True, slots=True)
class ErrorCodeValue:
    """ERROR-CODE (RFC 8489 §14.8): a code 300-699 and a UTF-8 reason phrase."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PasswordAlgorithmValue:
    """PASSWORD-ALGORITHM (RFC 8489 §14.11): an algorithm number and its parameters."""

    algorithm: int
    parameters: bytes = b""


@dataclass(frozen=True, slots=True)
class ChangeRequestValue:
    """CHANGE-REQUEST (RFC 5780 §7.2): answer from the other IP and/or the other port."""

    change_ip: bool = False
    change_port: bool = False


@dataclass(frozen=True, slots=True)
class AddressErrorCodeValue:
    """ADDRESS-ERROR-CODE (RFC 8656 §18.13): which family failed, with a code and reason."""

    family: int
    code: int
    reason: str


AttributeValue: TypeAlias = (
    Address
    | int
    | bool
    | bytes
    | str
    | ErrorCodeValue
    | PasswordAlgorithmValue
    | AddressErrorCodeValue
    | ChangeRequestValue
    | tuple[int, ...]
    | tuple[PasswordAlgorithmValue, ...]
)

Parser: TypeAlias = Callable[[bytes, bytes], AttributeValue]
Serializer: TypeAlias = Callable[[AttributeValue, bytes], bytes]


class AttributeSpec(NamedTuple):
    """One row of the attribute table."""

    name: str
    parse: Parser
    serialize: Serializer


def _wrong_kind(value: AttributeValue, expected: str) -> TypeError:
    return TypeError(f"expected {expected}, got {type(value).__name__}")


# -- addresses (RFC 8489 §14.1, §14.2) -----------------------------------------------------------

_ADDRESS_SIZES: dict[int, int] = {AddressFamily.IPV4: 4, AddressFamily.IPV6: 16}
_XOR_PORT = int.from_bytes(MAGIC_COOKIE_BYTES[:2], "big")


def _format_ipv4(packed: bytes) -> str:
    return f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}"


def _format_ipv6(packed: bytes) -> str:
    return ipaddress.IPv6Address(packed).compressed


_FORMATTERS: dict[int, Callable[[bytes], str]] = {
    AddressFamily.IPV4: _format_ipv4,
    AddressFamily.IPV6: _format_ipv6,
}


@lru_cache(maxsize=4096)
def _pack_host(host: str) -> tuple[AddressFamily, bytes]:
    # Cached: the relay serializes the same few peer addresses for every Data indication.
    ip = ipaddress.ip_address(host)
    return (AddressFamily.IPV4 if ip.version == 4 else AddressFamily.IPV6), ip.packed


def _expect_address(value: AttributeValue) -> tuple[AddressFamily, bytes, int]:
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    ):
        raise _wrong_kind(value, "an (ip, port) tuple")
    host, port = value
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    family, packed = _pack_host(host)
    return family, packed, port


def _split_address(value: bytes) -> tuple[int, int, bytes]:
    family = value[1]
    size = _ADDRESS_SIZES.get(family)
    if size is None or len(value) != 4 + size:
        raise ValueError("bad address family or length")
    return family, (value[2] << 8) | value[3], value[4:]


def _parse_address(value: bytes, transaction_id: bytes) -> Address:
    family, port, packed = _split_address(value)
    return _FORMATTERS[family](packed), port


def _serialize_address(value: AttributeValue, transaction_id: bytes) -> bytes:
    family, packed, port = _expect_address(value)
    return struct.pack("!BBH", 0, family, port) + packed


def _xor(packed: bytes, transaction_id: bytes) -> bytes:
    # RFC 8489 §14.2: IPv4 is XOR-ed with the cookie, IPv6 with cookie || transaction ID.
    size = len(packed)
    mask = (MAGIC_COOKIE_BYTES + transaction_id)[:size]
    return (int.from_bytes(packed, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")


def parse_xor_address(value: bytes, transaction_id: bytes) -> Address:
    if len(value) == 8:
        # IPv4 does not depend on the transaction ID, so the relay's few peers stay cached.
        return _parse_xor_ipv4(value)
    family, port, packed = _split_address(value)
    return _FORMATTERS[family](_xor(packed, transaction_id)), port ^ _XOR_PORT


@lru_cache(maxsize=4096)
def _parse_xor_ipv4(value: bytes) -> Address:
    family, port, packed = _split_address(value)
    return _FORMATTERS[family](_xor(packed, b"")), port ^ _XOR_PORT


def serialize_xor_address(value: AttributeValue, transaction_id: bytes) -> bytes:
    family, packed, port = _expect_address(value)
    return struct.pack("!BBH", 0, family, port ^ _XOR_PORT) + _xor(packed, transaction_id)


# -- integers ------------------------------------------------------------------------------------


def _integer_codec(layout: str) -> tuple[Parser, Serializer]:
    """Parser and serializer for one unsigned integer in a fixed layout; pad bytes ("x", RFFU)
    are written as zero and ignored on receipt."""
    codec = struct.Struct(layout)

    def parse(value: bytes, transaction_id: bytes) -> int:
        if len(value) != codec.size:
            raise ValueError(f"expected {codec.size} bytes, got {len(value)}")
        number: int = codec.unpack(value)[0]
        return number

    def serialize(value: AttributeValue, transaction_id: bytes) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong_kind(value, "an int")
        try:
            return codec.pack(value)
        except struct.error as exc:
            raise ValueError(str(exc)) from None

    return parse, serialize


_U16_RFFU = _integer_codec("!H2x")  # CHANNEL-NUMBER, RESPONSE-PORT
_U8_RFFU = _integer_codec("!B3x")  # REQUESTED-TRANSPORT, (ADDITIONAL-)ADDRESS-FAMILY
_U32 = _integer_codec("!I")
_U64 = _integer_codec("!Q")  # ICE-CONTROLLED/-CONTROLLING; ICMP (reserved16 type8 code8 data32)


# -- flags, text, opaque bytes -------------------------------------------------------------------


def _parse_even_port(value: bytes, transaction_id: bytes) -> bool:
    # RFC 8656 §18.8: one byte, the R bit first; the rest is RFFU.
    if not value:
        raise ValueError("empty EVEN-PORT")
    return bool(value[0] & 0x80)


def _serialize_even_port(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, bool):
        raise _wrong_kind(value, "a bool")
    return b"\x80" if value else b"\x00"


def _parse_text(value: bytes, transaction_id: bytes) -> str:
    return value.decode("utf-8")


def _serialize_text(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, str):
        raise _wrong_kind(value, "a str")
    return value.encode("utf-8")


def _parse_bytes(value: bytes, transaction_id: bytes) -> bytes:
    return value


def _serialize_bytes(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, bytes):
        raise _wrong_kind(value, "bytes")
    return value


def _sized_bytes_codec(sizes: frozenset[int]) -> tuple[Parser, Serializer]:
    def parse(value: bytes, transaction_id: bytes) -> bytes:
        if len(value) not in sizes:
            raise ValueError(f"unexpected length {len(value)}")
        return value

    def serialize(value: AttributeValue, transaction_id: bytes) -> bytes:
        data = _serialize_bytes(value, transaction_id)
        if len(data) not in sizes:
            raise ValueError(f"unexpected length {len(data)}")
        return data

    return parse, serialize


_TEXT = (_parse_text, _serialize_text)
_BYTES = (_parse_bytes, _serialize_bytes)
_ADDRESS = (_parse_address, _serialize_address)
_XOR_ADDRESS = (parse_xor_address, serialize_xor_address)
_HMAC_SHA1 = _sized_bytes_codec(frozenset({20}))
# RFC 8489 §14.6: HMAC-SHA256 may be truncated to 16..32 bytes in steps of 4.
_HMAC_SHA256 = _sized_bytes_codec(frozenset({16, 20, 24, 28, 32}))


# -- CHANGE-REQUEST (RFC 5780 §7.2) -------------------------------------------------------------

_CHANGE_IP = 0x04  # flag A
_CHANGE_PORT = 0x02  # flag B


def _parse_change_request(value: bytes, transaction_id: bytes) -> ChangeRequestValue:
    # 32 bits, of which only A and B mean anything; the others are ignored on receipt.
    if len(value) != 4:
        raise ValueError(f"expected 4 bytes, got {len(value)}")
    return ChangeRequestValue(bool(value[3] & _CHANGE_IP), bool(value[3] & _CHANGE_PORT))


def _serialize_change_request(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, ChangeRequestValue):
        raise _wrong_kind(value, "a ChangeRequestValue")
    flags = (_CHANGE_IP if value.change_ip else 0) | (_CHANGE_PORT if value.change_port else 0)
    return bytes((0, 0, 0, flags))


# -- ERROR-CODE, ADDRESS-ERROR-CODE, UNKNOWN-ATTRIBUTES, PASSWORD-ALGORITHM(S) -----------------


def _split_code(value: bytes) -> tuple[int, str]:
    error_class, number = value[2] & 0x07, value[3]
    if not 3 <= error_class <= 6 or number > 99:
        raise ValueError("error code out of range")
    return error_class * 100 + number, value[4:].decode("utf-8")


def _pack_code(code: int, reason: str) -> bytes:
    if not 300 <= code <= 699:
        raise ValueError(f"error code {code} out of range 300-699")
    return struct.pack("!2xBB", code // 100, code % 100) + reason.encode("utf-8")


def _parse_error_code(value: bytes, transaction_id: bytes) -> ErrorCodeValue:
    code, reason = _split_code(value)
    return ErrorCodeValue(code, reason)


def _serialize_error_code(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, ErrorCodeValue):
        raise _wrong_kind(value, "an ErrorCodeValue")
    return _pack_code(value.code, value.reason)


def _parse_address_error_code(value: bytes, transaction_id: bytes) -> AddressErrorCodeValue:
    code, reason = _split_code(value)
    return AddressErrorCodeValue(value[0], code, reason)


def _serialize_address_error_code(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, AddressErrorCodeValue):
        raise _wrong_kind(value, "an AddressErrorCodeValue")
    body = _pack_code(value.code, value.reason)
    return struct.pack("!B", value.family) + body[1:]


def _parse_unknown_attributes(value: bytes, transaction_id: bytes) -> tuple[int, ...]:
    if len(value) % 2:
        raise ValueError("odd UNKNOWN-ATTRIBUTES length")
    return struct.unpack(f"!{len(value) // 2}H", value)


def _serialize_unknown_attributes(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, tuple) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise _wrong_kind(value, "a tuple of ints")
    try:
        return struct.pack(f"!{len(value)}H", *value)
    except struct.error as exc:
        raise ValueError(str(exc)) from None


def _parse_password_algorithm_list(value: bytes) -> tuple[PasswordAlgorithmValue, ...]:
    # RFC 8489 §14.11/§14.12: algorithm (16), parameters length (16), parameters, padding.
    algorithms = []
    offset, size = 0, len(value)
    while offset < size:
        if offset + 4 > size:
            raise ValueError("truncated password algorithm")
        algorithm, length = struct.unpack_from("!HH", value, offset)
        end = offset + 4 + length
        if end > size:
            raise ValueError("password algorithm parameters overflow")
        algorithms.append(PasswordAlgorithmValue(algorithm, value[offset + 4 : end]))
        offset = end + (-length & 3)
    return tuple(algorithms)


def _pack_password_algorithm(value: PasswordAlgorithmValue) -> bytes:
    try:
        header = struct.pack("!HH", value.algorithm, len(value.parameters))
    except struct.error as exc:
        raise ValueError(str(exc)) from None
    return header + value.parameters


def _parse_password_algorithm(value: bytes, transaction_id: bytes) -> PasswordAlgorithmValue:
    algorithms = _parse_password_algorithm_list(value)
    if len(algorithms) != 1:
        raise ValueError("PASSWORD-ALGORITHM must hold exactly one algorithm")
    return algorithms[0]


def _serialize_password_algorithm(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, PasswordAlgorithmValue):
        raise _wrong_kind(value, "a PasswordAlgorithmValue")
    return _pack_password_algorithm(value)


def _parse_password_algorithms(
    value: bytes, transaction_id: bytes
) -> tuple[PasswordAlgorithmValue, ...]:
    return _parse_password_algorithm_list(value)


def _serialize_password_algorithms(value: AttributeValue, transaction_id: bytes) -> bytes:
    if not isinstance(value, tuple) or not all(
        isinstance(item, PasswordAlgorithmValue) for item in value
    ):
        raise _wrong_kind(value, "a tuple of PasswordAlgorithmValue")
    parts = []
    for item in value:
        assert isinstance(item, PasswordAlgorithmValue)  # narrowed above; for mypy
        packed = _pack_password_algorithm(item)
        parts.append(packed + bytes(-len(packed) & 3))
    return b"".join(parts)


def _spec(name: str, codec: tuple[Parser, Serializer]) -> AttributeSpec:
    return AttributeSpec(name, codec[0], codec[1])


_T = AttributeType
ATTRIBUTES: dict[int, AttributeSpec] = {
    _T.MAPPED_ADDRESS: _spec("MAPPED-ADDRESS", _ADDRESS),
    _T.RESPONSE_ADDRESS: _spec("RESPONSE-ADDRESS", _ADDRESS),
    _T.CHANGE_REQUEST: _spec("CHANGE-REQUEST", (_parse_change_request, _serialize_change_request)),
    _T.SOURCE_ADDRESS: _spec("SOURCE-ADDRESS", _ADDRESS),
    _T.CHANGED_ADDRESS: _spec("CHANGED-ADDRESS", _ADDRESS),
    _T.USERNAME: _spec("USERNAME", _TEXT),
    _T.MESSAGE_INTEGRITY: _spec("MESSAGE-INTEGRITY", _HMAC_SHA1),
    _T.ERROR_CODE: _spec("ERROR-CODE", (_parse_error_code, _serialize_error_code)),
    _T.UNKNOWN_ATTRIBUTES: _spec(
        "UNKNOWN-ATTRIBUTES", (_parse_unknown_attributes, _serialize_unknown_attributes)
    ),
    _T.CHANNEL_NUMBER: _spec("CHANNEL-NUMBER", _U16_RFFU),
    _T.LIFETIME: _spec("LIFETIME", _U32),
    _T.XOR_PEER_ADDRESS: _spec("XOR-PEER-ADDRESS", _XOR_ADDRESS),
    _T.DATA: _spec("DATA", _BYTES),
    _T.REALM: _spec("REALM", _TEXT),
    _T.NONCE: _spec("NONCE", _TEXT),
    _T.XOR_RELAYED_ADDRESS: _spec("XOR-RELAYED-ADDRESS", _XOR_ADDRESS),
    _T.REQUESTED_ADDRESS_FAMILY: _spec("REQUESTED-ADDRESS-FAMILY", _U8_RFFU),
    _T.EVEN_PORT: _spec("EVEN-PORT", (_parse_even_port, _serialize_even_port)),
    _T.REQUESTED_TRANSPORT: _spec("REQUESTED-TRANSPORT", _U8_RFFU),
    _T.DONT_FRAGMENT: _spec("DONT-FRAGMENT", _BYTES),
    _T.ACCESS_TOKEN: _spec("ACCESS-TOKEN", _BYTES),
    _T.MESSAGE_INTEGRITY_SHA256: _spec("MESSAGE-INTEGRITY-SHA256", _HMAC_SHA256),
    _T.PASSWORD_ALGORITHM: _spec(
        "PASSWORD-ALGORITHM", (_parse_password_algorithm, _serialize_password_algorithm)
    ),
    _T.USERHASH: _spec("USERHASH", _BYTES),
    _T.XOR_MAPPED_ADDRESS: _spec("XOR-MAPPED-ADDRESS", _XOR_ADDRESS),
    _T.RESERVATION_TOKEN: _spec("RESERVATION-TOKEN", _BYTES),
    _T.PRIORITY: _spec("PRIORITY", _U32),
    _T.USE_CANDIDATE: _spec("USE-CANDIDATE", _BYTES),
    _T.PADDING: _spec("PADDING", _BYTES),
    _T.RESPONSE_PORT: _spec("RESPONSE-PORT", _U16_RFFU),
    _T.CONNECTION_ID: _spec("CONNECTION-ID", _U32),
    _T.ADDITIONAL_ADDRESS_FAMILY: _spec("ADDITIONAL-ADDRESS-FAMILY", _U8_RFFU),
    _T.ADDRESS_ERROR_CODE: _spec(
        "ADDRESS-ERROR-CODE", (_parse_address_error_code, _serialize_address_error_code)
    ),
    _T.PASSWORD_ALGORITHMS: _spec(
        "PASSWORD-ALGORITHMS", (_parse_password_algorithms, _serialize_password_algorithms)
    ),
    _T.ALTERNATE_DOMAIN: _spec("ALTERNATE-DOMAIN", _TEXT),
    _T.ICMP: _spec("ICMP", _U64),
    _T.SOFTWARE: _spec("SOFTWARE", _TEXT),
    _T.ALTERNATE_SERVER: _spec("ALTERNATE-SERVER", _ADDRESS),
    _T.TRANSACTION_TRANSMIT_COUNTER: _spec("TRANSACTION_TRANSMIT_COUNTER", _U32),
    _T.CACHE_TIMEOUT: _spec("CACHE-TIMEOUT", _U32),
    _T.FINGERPRINT: _spec("FINGERPRINT", _U32),
    _T.ICE_CONTROLLED: _spec("ICE-CONTROLLED", _U64),
    _T.ICE_CONTROLLING: _spec("ICE-CONTROLLING", _U64),
    _T.RESPONSE_ORIGIN: _spec("RESPONSE-ORIGIN", _ADDRESS),
    _T.OTHER_ADDRESS: _spec("OTHER-ADDRESS", _ADDRESS),
    _T.THIRD_PARTY_AUTHORIZATION: _spec("THIRD-PARTY-AUTHORIZATION", _TEXT),
    _T.ORIGIN: _spec("ORIGIN", _TEXT),
    _T.MOBILITY_TICKET: _spec("MOBILITY-TICKET", _BYTES),
}
"""The attribute table. Types not in it decode to their raw value bytes."""


def serialize_unknown(value: AttributeValue, transaction_id: bytes) -> bytes:
    """Serializer for types outside the table: the value must already be raw bytes."""
    return _serialize_bytes(value, transaction_id)


def attribute_name(attr_type: int) -> str:
    """The RFC name of an attribute type, or its hex number when unknown."""
    spec = ATTRIBUTES.get(attr_type)
    return spec.name if spec is not None else f"0x{attr_type:04X}"

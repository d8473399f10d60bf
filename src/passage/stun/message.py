"""STUN messages (RFC 8489): decode, encode, integrity and fingerprint.

``decode_message`` turns one datagram (or one frame from :class:`~passage.stun.StreamFramer`)
into a :class:`Message` or raises :class:`StunDecodeError` with a named reason. It checks the
FINGERPRINT when present; the caller then looks up the key for the USERNAME/REALM and calls
:func:`verify_integrity`. ``encode_message`` builds the bytes and appends MESSAGE-INTEGRITY(-SHA256)
and FINGERPRINT on request, with the length field handled per RFC 8489 §14.5-§14.7.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from dataclasses import dataclass, field
from typing import NewType, TypeVar

from passage.addresses import Address

from .attributes import (
    ATTRIBUTES,
    AttributeValue,
    Parser,
    parse_xor_address,
    serialize_unknown,
    serialize_xor_address,
)
from .constants import (
    ATTRIBUTE_HEADER_SIZE,
    FINGERPRINT_XOR,
    HEADER_SIZE,
    MAGIC_COOKIE,
    MAGIC_COOKIE_BYTES,
    MAX_BODY_SIZE,
    TRANSACTION_ID_SIZE,
    AttributeType,
    DecodeReason,
    MessageClass,
    Method,
    StunDecodeError,
    is_comprehension_required,
    message_type,
    split_message_type,
)

TransactionId = NewType("TransactionId", bytes)
"""The 12-byte transaction ID; callers draw it from ``os.urandom(12)`` (the codec stays pure)."""

T = TypeVar("T")

_HEADER = struct.Struct("!HHI")
_ATTRIBUTE_HEADER = struct.Struct("!HH")
_DATA_INDICATION = message_type(Method.DATA, MessageClass.INDICATION)
_SEND_INDICATION_TYPE = message_type(Method.SEND, MessageClass.INDICATION).to_bytes(2, "big")
_PLAIN_SEND_EXTRAS = frozenset({AttributeType.DONT_FRAGMENT})
"""Attributes a Send indication may carry and still take ``decode_send_indication``."""
_LENGTH = struct.Struct("!H")

# Plain ints, not enum members: the decode loop compares and hashes them for every attribute.
_MI = AttributeType.MESSAGE_INTEGRITY.value
_MI_SHA256 = AttributeType.MESSAGE_INTEGRITY_SHA256.value
_FINGERPRINT = AttributeType.FINGERPRINT.value

# RFC 8489 §14.5/§14.6: which attributes still count once an integrity attribute was seen.
_ALLOWED_AFTER: dict[int, frozenset[int]] = {
    _MI: frozenset({_MI_SHA256, _FINGERPRINT}),
    _MI_SHA256: frozenset({_FINGERPRINT}),
}
# Where the decoder notes the offset of each trailing attribute.
_MI_SLOT, _MI_SHA256_SLOT, _FINGERPRINT_SLOT = range(3)
_TRAILER_SLOTS = {_MI: _MI_SLOT, _MI_SHA256: _MI_SHA256_SLOT, _FINGERPRINT: _FINGERPRINT_SLOT}
# Digest name and full MAC size per integrity attribute.
_INTEGRITY_DIGESTS: dict[int, tuple[str, int]] = {_MI: ("sha1", 20), _MI_SHA256: ("sha256", 32)}

_TRAILER_TYPES = frozenset({_MI, _MI_SHA256, _FINGERPRINT})
_FINGERPRINT_ONLY = frozenset({_FINGERPRINT})

_METHODS: dict[int, int] = {method.value: method for method in Method}
# Raw type -> (the AttributeType to store, its parser), keyed by plain int for speed.
_DECODERS: dict[int, tuple[int, Parser]] = {
    attr_type.value: (attr_type, ATTRIBUTES[attr_type].parse) for attr_type in AttributeType
}
_PARSE_ERRORS = (ValueError, IndexError, struct.error)


@dataclass(frozen=True, slots=True)
class Message:
    """One STUN message.

    ``attributes`` keeps wire order and duplicates; attributes after MESSAGE-INTEGRITY (other
    than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) are not in it, as RFC 8489 §14.5 says to
    ignore them. ``raw`` is the exact bytes a decoded message came from (empty for one we build);
    :func:`verify_integrity` works on it.
    """

    method: int
    message_class: MessageClass
    transaction_id: TransactionId
    attributes: tuple[tuple[int, AttributeValue], ...] = ()
    raw: bytes = b""
    _integrity_offset: int = field(default=-1, repr=False, compare=False)
    _integrity_sha256_offset: int = field(default=-1, repr=False, compare=False)

    def get(self, attr_type: int, kind: type[T]) -> T | None:
        """The first value of ``attr_type`` that is an instance of ``kind``, else None.

        For addresses pass ``tuple``: ``message.get(AttributeType.XOR_PEER_ADDRESS, tuple)``.
        """
        for current_type, value in self.attributes:
            if current_type == attr_type and isinstance(value, kind):
                return value
        return None

    def has(self, attr_type: int) -> bool:
        """Whether the message carries ``attr_type`` (before any integrity attribute)."""
        return any(current_type == attr_type for current_type, _ in self.attributes)

    def unknown_comprehension_required(self) -> tuple[int, ...]:
        """Types below 0x8000 that we do not understand, in order, without duplicates: what a
        420 (Unknown Attribute) answer lists in UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1)."""
        unknown = (
            attr_type
            for attr_type, _ in self.attributes
            if is_comprehension_required(attr_type) and attr_type not in ATTRIBUTES
        )
        return tuple(dict.fromkeys(unknown))


def is_stun(data: bytes) -> bool:
    """Cheap check that ``data`` is exactly one STUN message: top two bits zero, the magic
    cookie, and a length field that is a multiple of 4 and matches the datagram."""
    if len(data) < HEADER_SIZE or data[0] & 0xC0:
        return False
    _, length, cookie = _HEADER.unpack_from(data)
    return cookie == MAGIC_COOKIE and not length & 3 and length + HEADER_SIZE == len(data)


def decode_message(data: bytes) -> Message:
    """Decode one STUN message, strictly.

    Raises StunDecodeError with reason ``too_short``, ``not_stun``, ``bad_magic_cookie``,
    ``bad_length``, ``attribute_overflow``, ``bad_attribute_value``, ``fingerprint_not_last`` or
    ``bad_fingerprint``. Unknown attribute types are kept as raw bytes; check
    :meth:`Message.unknown_comprehension_required` before acting on a request.
    """
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size < HEADER_SIZE:
        raise StunDecodeError(DecodeReason.TOO_SHORT)
    msg_type, length, cookie = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise StunDecodeError(DecodeReason.NOT_STUN)
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError(DecodeReason.BAD_MAGIC_COOKIE)
    if length & 3 or length + HEADER_SIZE != size:
        raise StunDecodeError(DecodeReason.BAD_LENGTH)
    transaction_id = data[8:HEADER_SIZE]
    attributes, marks = _decode_attributes(data, transaction_id)
    method, message_class = split_message_type(msg_type)
    return Message(
        _METHODS.get(method, method),
        message_class,
        TransactionId(transaction_id),
        attributes,
        data,
        marks[_MI_SLOT],
        marks[_MI_SHA256_SLOT],
    )


def _decode_attributes(
    data: bytes, transaction_id: bytes
) -> tuple[tuple[tuple[int, AttributeValue], ...], list[int]]:
    """Walk the attributes; returns them with the offsets of MESSAGE-INTEGRITY,
    MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (-1 when absent), indexed by ``_*_SLOT``."""
    size = len(data)
    attributes: list[tuple[int, AttributeValue]] = []
    marks = [-1, -1, -1]
    allowed: frozenset[int] | None = None
    offset = HEADER_SIZE
    # The body length is a multiple of 4 and so is every padded attribute, so a whole
    # attribute header always fits once offset < size.
    while offset < size:
        if marks[_FINGERPRINT_SLOT] >= 0:
            raise StunDecodeError(DecodeReason.FINGERPRINT_NOT_LAST)
        attr_type, attr_length = _ATTRIBUTE_HEADER.unpack_from(data, offset)
        start = offset + ATTRIBUTE_HEADER_SIZE
        end = start + attr_length
        if end > size:
            raise StunDecodeError(DecodeReason.ATTRIBUTE_OVERFLOW)
        if allowed is None or attr_type in allowed:
            row = _DECODERS.get(attr_type)
            if row is None:
                attributes.append((attr_type, data[start:end]))
            else:
                try:
                    attributes.append((row[0], row[1](data[start:end], transaction_id)))
                except _PARSE_ERRORS:
                    raise StunDecodeError(DecodeReason.BAD_ATTRIBUTE_VALUE) from None
            slot = _TRAILER_SLOTS.get(attr_type)
            if slot is not None:
                marks[slot] = offset
                allowed = _ALLOWED_AFTER.get(attr_type, allowed)
        offset = end + (-attr_length & 3)
    if marks[_FINGERPRINT_SLOT] >= 0:
        _check_fingerprint(data, marks[_FINGERPRINT_SLOT])
    return tuple(attributes), marks


def _check_fingerprint(data: bytes, offset: int) -> None:
    # FINGERPRINT is last, so the header length already covers it (RFC 8489 §14.7).
    expected = int.from_bytes(data[offset + 4 : offset + 8], "big")
    if zlib.crc32(data[:offset]) ^ FINGERPRINT_XOR != expected:
        raise StunDecodeError(DecodeReason.BAD_FINGERPRINT)


def encode_message(
    message: Message,
    *,
    integrity_key: bytes | None = None,
    integrity_sha256: bool = False,
    fingerprint: bool = False,
) -> bytes:
    """Serialize ``message``; ``message.raw`` is ignored.

    With ``integrity_key``, appends MESSAGE-INTEGRITY (HMAC-SHA1), or MESSAGE-INTEGRITY-SHA256
    instead when ``integrity_sha256``; then FINGERPRINT when ``fingerprint``. The attributes
    must not already hold the ones asked for. Raises TypeError/ValueError for values of the
    wrong kind or out of range, or a message longer than 65535 bytes of attributes.
    """
    transaction_id = message.transaction_id
    if len(transaction_id) != TRANSACTION_ID_SIZE:
        raise ValueError("transaction ID must be 12 bytes")
    appended = _appended_types(integrity_key is not None, fingerprint)
    parts = []
    for attr_type, value in message.attributes:
        if attr_type in appended:
            raise ValueError(f"attribute {attr_type:#06x} is appended by encode_message")
        spec = ATTRIBUTES.get(attr_type)
        body = (spec.serialize if spec else serialize_unknown)(value, transaction_id)
        parts.append(_ATTRIBUTE_HEADER.pack(attr_type, len(body)))
        parts.append(body)
        parts.append(bytes(-len(body) & 3))
    body = b"".join(parts)
    msg_type = message_type(message.method, message.message_class)
    if integrity_key is not None:
        attr_type = _MI_SHA256 if integrity_sha256 else _MI
        digest, mac_size = _INTEGRITY_DIGESTS[attr_type]
        signed = _header(msg_type, len(body) + 4 + mac_size, transaction_id) + body
        mac = hmac.digest(integrity_key, signed, digest)
        body += _ATTRIBUTE_HEADER.pack(attr_type, mac_size) + mac
    if fingerprint:
        covered = _header(msg_type, len(body) + 8, transaction_id) + body
        crc = zlib.crc32(covered) ^ FINGERPRINT_XOR
        body += _ATTRIBUTE_HEADER.pack(_FINGERPRINT, 4) + crc.to_bytes(4, "big")
    return _header(msg_type, len(body), transaction_id) + body


def _appended_types(integrity: bool, fingerprint: bool) -> frozenset[int]:
    # Anything after an integrity attribute would be ignored by the receiver, and FINGERPRINT
    # must be last, so none of these may already be in the attributes we write first.
    if integrity:
        return _TRAILER_TYPES
    return _FINGERPRINT_ONLY if fingerprint else frozenset()


def encode_data_indication(transaction_id: bytes, peer: Address, data: bytes) -> bytes:
    """A Data indication from ``peer`` carrying ``data`` (RFC 8656 §10.3).

    Byte for byte what ``encode_message`` makes of the same two attributes, without
    building a ``Message``: the relay sends one per datagram from a peer that has a
    permission but no channel.
    """
    if len(transaction_id) != TRANSACTION_ID_SIZE:
        raise ValueError("transaction ID must be 12 bytes")
    address = serialize_xor_address(peer, transaction_id)
    size = len(data)
    padding = -size & 3
    length = 8 + len(address) + size + padding
    return b"".join((
        _header(_DATA_INDICATION, length, transaction_id),
        _ATTRIBUTE_HEADER.pack(AttributeType.XOR_PEER_ADDRESS, len(address)), address,
        _ATTRIBUTE_HEADER.pack(AttributeType.DATA, size), data, bytes(padding),
    ))  # fmt: skip


def decode_send_indication(data: bytes) -> tuple[Address, bytes] | None:
    """``(peer, data)`` of a plain Send indication (RFC 8656 §10.2), else None.

    Plain: a well-formed header, XOR-PEER-ADDRESS and DATA, at most DONT-FRAGMENT
    besides, and a FINGERPRINT, if any, that checks. Whatever it declines, the
    caller hands to ``decode_message``, which decides and names the reason; what it
    accepts, ``decode_message`` would decode to the same peer and data.
    """
    size = len(data)
    if size < HEADER_SIZE or data[:2] != _SEND_INDICATION_TYPE:
        return None
    if data[4:8] != MAGIC_COOKIE_BYTES or HEADER_SIZE + ((data[2] << 8) | data[3]) != size:
        return None
    peer_value = payload = None
    offset = HEADER_SIZE
    while offset < size:
        if offset + ATTRIBUTE_HEADER_SIZE > size:
            return None
        attr_type, attr_len = _ATTRIBUTE_HEADER.unpack_from(data, offset)
        start = offset + ATTRIBUTE_HEADER_SIZE
        stop = start + attr_len
        if stop > size:
            return None
        if attr_type == AttributeType.XOR_PEER_ADDRESS:
            peer_value = data[start:stop] if peer_value is None else peer_value
        elif attr_type == AttributeType.DATA:
            payload = data[start:stop] if payload is None else payload
        elif attr_type == AttributeType.FINGERPRINT:
            crc = (zlib.crc32(data[:offset]) ^ FINGERPRINT_XOR).to_bytes(4, "big")
            if attr_len != 4 or stop != size or data[start:stop] != crc:
                return None
        elif attr_type not in _PLAIN_SEND_EXTRAS:
            return None
        offset = stop + (-attr_len & 3)
    if offset != size or peer_value is None or payload is None:
        return None
    try:
        return parse_xor_address(peer_value, data[8:20]), payload
    except (StunDecodeError, ValueError):
        return None


def _header(msg_type: int, length: int, transaction_id: bytes) -> bytes:
    if length > MAX_BODY_SIZE:
        raise ValueError(f"message body of {length} bytes exceeds {MAX_BODY_SIZE}")
    return _HEADER.pack(msg_type, length, MAGIC_COOKIE) + transaction_id


def verify_integrity(message: Message, key: bytes) -> bool:
    """Check the HMAC of a decoded message with ``key`` in constant time.

    MESSAGE-INTEGRITY-SHA256 wins when present, else MESSAGE-INTEGRITY is checked. The HMAC
    covers the message up to that attribute, with the length field rewritten to end just after
    it (RFC 8489 §14.5, §14.6). False when the message carries neither attribute or was not
    decoded (``raw`` empty).
    """
    raw = message.raw
    if message._integrity_sha256_offset >= 0:
        offset, digest = message._integrity_sha256_offset, "sha256"
    elif message._integrity_offset >= 0:
        offset, digest = message._integrity_offset, "sha1"
    else:
        return False
    mac_size = _LENGTH.unpack_from(raw, offset + 2)[0]
    length = offset - HEADER_SIZE + ATTRIBUTE_HEADER_SIZE + mac_size
    signed = raw[:2] + _LENGTH.pack(length) + raw[4:offset]
    received = raw[offset + ATTRIBUTE_HEADER_SIZE : offset + ATTRIBUTE_HEADER_SIZE + mac_size]
    return hmac.compare_digest(hmac.digest(key, signed, digest)[:mac_size], received)

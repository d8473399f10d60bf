"""STUN/TURN numbers: methods, classes, attribute types, error codes (RFC 8489, 8656, 5780, 6062,
8016, 8445, 7635, 7982) and the named reasons a decoder drops input for.

Values were checked against the IANA "STUN Parameters" registry as mirrored by pion/stun
(``attributes.go``) and coturn (``src/client/ns_turn_msg_defs.h``, ``ns_turn_msg_defs_new.h``).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

MAGIC_COOKIE = 0x2112A442
"""RFC 8489 §5: the fixed second word of every STUN header."""

MAGIC_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
HEADER_SIZE = 20
"""Type (2) + length (2) + magic cookie (4) + transaction ID (12)."""
ATTRIBUTE_HEADER_SIZE = 4
TRANSACTION_ID_SIZE = 12
FINGERPRINT_XOR = 0x5354554E
"""RFC 8489 §14.7: the CRC-32 is XOR-ed with the ASCII string "STUN"."""
MAX_BODY_SIZE = 0xFFFF


class Method(IntEnum):
    """STUN methods (12 bits)."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A  # RFC 6062
    CONNECTION_BIND = 0x00B  # RFC 6062
    CONNECTION_ATTEMPT = 0x00C  # RFC 6062


class MessageClass(IntEnum):
    """The two class bits C1 C0 of the message type (RFC 8489 §5)."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class AttributeType(IntEnum):
    """STUN attribute types. Types below 0x8000 are comprehension-required (RFC 8489 §14)."""

    MAPPED_ADDRESS = 0x0001
    RESPONSE_ADDRESS = 0x0002  # RFC 3489, reserved since RFC 5389
    CHANGE_REQUEST = 0x0003  # RFC 5780
    SOURCE_ADDRESS = 0x0004  # RFC 3489, reserved since RFC 5389
    CHANGED_ADDRESS = 0x0005  # RFC 3489, reserved since RFC 5389
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C  # RFC 8656
    LIFETIME = 0x000D  # RFC 8656
    XOR_PEER_ADDRESS = 0x0012  # RFC 8656
    DATA = 0x0013  # RFC 8656
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016  # RFC 8656
    REQUESTED_ADDRESS_FAMILY = 0x0017  # RFC 8656
    EVEN_PORT = 0x0018  # RFC 8656
    REQUESTED_TRANSPORT = 0x0019  # RFC 8656
    DONT_FRAGMENT = 0x001A  # RFC 8656
    ACCESS_TOKEN = 0x001B  # RFC 7635
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022  # RFC 8656
    PRIORITY = 0x0024  # RFC 8445
    USE_CANDIDATE = 0x0025  # RFC 8445
    PADDING = 0x0026  # RFC 5780
    RESPONSE_PORT = 0x0027  # RFC 5780
    CONNECTION_ID = 0x002A  # RFC 6062
    ADDITIONAL_ADDRESS_FAMILY = 0x8000  # RFC 8656
    ADDRESS_ERROR_CODE = 0x8001  # RFC 8656
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004  # RFC 8656
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    TRANSACTION_TRANSMIT_COUNTER = 0x8025  # RFC 7982
    CACHE_TIMEOUT = 0x8027  # RFC 5780
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029  # RFC 8445
    ICE_CONTROLLING = 0x802A  # RFC 8445
    RESPONSE_ORIGIN = 0x802B  # RFC 5780
    OTHER_ADDRESS = 0x802C  # RFC 5780
    THIRD_PARTY_AUTHORIZATION = 0x802E  # RFC 7635
    ORIGIN = 0x802F  # draft-ietf-tram-stun-origin; sent by Chrome, coturn and pion know it
    MOBILITY_TICKET = 0x8030  # RFC 8016


def is_comprehension_required(attr_type: int) -> bool:
    """RFC 8489 §14: 0x0000-0x7FFF must be understood, 0x8000-0xFFFF may be ignored."""
    return attr_type < 0x8000


class ErrorCode(IntEnum):
    """ERROR-CODE values used by STUN and TURN."""

    TRY_ALTERNATE = 300
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    MOBILITY_FORBIDDEN = 405  # RFC 8016
    UNKNOWN_ATTRIBUTE = 420
    ALLOCATION_MISMATCH = 437
    STALE_NONCE = 438
    ADDRESS_FAMILY_NOT_SUPPORTED = 440
    WRONG_CREDENTIALS = 441
    UNSUPPORTED_TRANSPORT_PROTOCOL = 442
    PEER_ADDRESS_FAMILY_MISMATCH = 443
    CONNECTION_ALREADY_EXISTS = 446  # RFC 6062
    CONNECTION_TIMEOUT_OR_FAILURE = 447  # RFC 6062
    ALLOCATION_QUOTA_REACHED = 486
    ROLE_CONFLICT = 487  # RFC 8445
    SERVER_ERROR = 500
    INSUFFICIENT_CAPACITY = 508


_REASON_PHRASES: dict[int, str] = {
    ErrorCode.TRY_ALTERNATE: "Try Alternate",
    ErrorCode.BAD_REQUEST: "Bad Request",
    # RFC 8489 §14.8 renamed 401 from RFC 5389's "Unauthorized".
    ErrorCode.UNAUTHORIZED: "Unauthenticated",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.MOBILITY_FORBIDDEN: "Mobility Forbidden",
    ErrorCode.UNKNOWN_ATTRIBUTE: "Unknown Attribute",
    ErrorCode.ALLOCATION_MISMATCH: "Allocation Mismatch",
    ErrorCode.STALE_NONCE: "Stale Nonce",
    ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED: "Address Family not Supported",
    ErrorCode.WRONG_CREDENTIALS: "Wrong Credentials",
    ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL: "Unsupported Transport Protocol",
    ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH: "Peer Address Family Mismatch",
    ErrorCode.CONNECTION_ALREADY_EXISTS: "Connection Already Exists",
    ErrorCode.CONNECTION_TIMEOUT_OR_FAILURE: "Connection Timeout or Failure",
    ErrorCode.ALLOCATION_QUOTA_REACHED: "Allocation Quota Reached",
    ErrorCode.ROLE_CONFLICT: "Role Conflict",
    ErrorCode.SERVER_ERROR: "Server Error",
    ErrorCode.INSUFFICIENT_CAPACITY: "Insufficient Capacity",
}


def reason_phrase(code: int) -> str:
    """The default reason phrase for an error code (RFC 8489 §14.8, RFC 8656 §19);
    "Error" for codes without one."""
    return _REASON_PHRASES.get(code, "Error")


class PasswordAlgorithm(IntEnum):
    """RFC 8489 §18.5 password algorithms for the long-term credential key."""

    MD5 = 0x0001
    SHA256 = 0x0002


class DecodeReason(StrEnum):
    """Why input was dropped. Each is a short snake_case name to count in a metric."""

    TOO_SHORT = "too_short"
    NOT_STUN = "not_stun"
    BAD_MAGIC_COOKIE = "bad_magic_cookie"
    BAD_LENGTH = "bad_length"
    ATTRIBUTE_OVERFLOW = "attribute_overflow"
    BAD_ATTRIBUTE_VALUE = "bad_attribute_value"
    BAD_FINGERPRINT = "bad_fingerprint"
    FINGERPRINT_NOT_LAST = "fingerprint_not_last"
    NOT_CHANNEL_DATA = "not_channel_data"
    CHANNEL_DATA_TOO_SHORT = "channel_data_too_short"
    CHANNEL_DATA_LENGTH = "channel_data_length"
    STREAM_GARBAGE = "stream_garbage"


class StunDecodeError(ValueError):
    """Input that is not a well-formed STUN message or ChannelData frame.

    ``reason`` names the drop for metrics and tests; the text is never meant for a peer.
    """

    def __init__(self, reason: DecodeReason) -> None:
        super().__init__(reason.value)
        self.reason: str = reason.value


def message_type(method: int, message_class: int) -> int:
    """Interleave a 12-bit method and the two class bits into the 14-bit type (RFC 8489 §5)."""
    if not 0 <= method <= 0xFFF:
        raise ValueError(f"method {method:#x} does not fit in 12 bits")
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 0b01) << 4)
        | ((message_class & 0b10) << 7)
    )


def split_message_type(msg_type: int) -> tuple[int, MessageClass]:
    """The inverse of :func:`message_type`: (method, class) of a 14-bit message type."""
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    return method, _CLASSES[((msg_type >> 4) & 0b01) | ((msg_type >> 7) & 0b10)]


_CLASSES = tuple(MessageClass)

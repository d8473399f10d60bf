"""Sans-IO STUN codec (RFC 8489) with the TURN (RFC 8656), RFC 5780, 6062 and 8016 attributes.

Imports only the address vocabulary (:mod:`passage.addresses`) and does no I/O: bytes in,
values out, and back.
"""

from .attributes import (
    ATTRIBUTES,
    AddressErrorCodeValue,
    AttributeSpec,
    AttributeValue,
    ChangeRequestValue,
    ErrorCodeValue,
    PasswordAlgorithmValue,
    attribute_name,
)
from .channeldata import (
    MAX_CHANNEL,
    MAX_CHANNEL_RFC5766,
    MIN_CHANNEL,
    decode_channel_data,
    encode_channel_data,
    is_channel_data,
)
from .constants import (
    MAGIC_COOKIE,
    AttributeType,
    DecodeReason,
    ErrorCode,
    MessageClass,
    Method,
    PasswordAlgorithm,
    StunDecodeError,
    is_comprehension_required,
    message_type,
    reason_phrase,
    split_message_type,
)
from .credentials import long_term_key, prepare_text, short_term_key, userhash
from .framing import StreamFramer
from .message import (
    Message,
    TransactionId,
    decode_message,
    decode_send_indication,
    encode_data_indication,
    encode_message,
    is_stun,
    verify_integrity,
)

__all__ = [
    "ATTRIBUTES",
    "MAGIC_COOKIE",
    "MAX_CHANNEL",
    "MAX_CHANNEL_RFC5766",
    "MIN_CHANNEL",
    "AddressErrorCodeValue",
    "AttributeSpec",
    "AttributeType",
    "AttributeValue",
    "ChangeRequestValue",
    "DecodeReason",
    "ErrorCode",
    "ErrorCodeValue",
    "Message",
    "MessageClass",
    "Method",
    "PasswordAlgorithm",
    "PasswordAlgorithmValue",
    "StreamFramer",
    "StunDecodeError",
    "TransactionId",
    "attribute_name",
    "decode_channel_data",
    "decode_message",
    "decode_send_indication",
    "encode_channel_data",
    "encode_data_indication",
    "encode_message",
    "is_channel_data",
    "is_comprehension_required",
    "is_stun",
    "long_term_key",
    "message_type",
    "prepare_text",
    "reason_phrase",
    "short_term_key",
    "split_message_type",
    "userhash",
    "verify_integrity",
]

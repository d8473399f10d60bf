"""passage.stun.constants: message-type bit interleaving, error codes, enums."""

from __future__ import annotations

import pytest

from passage.stun import (
    AttributeType,
    ErrorCode,
    MessageClass,
    Method,
    is_comprehension_required,
    message_type,
    reason_phrase,
    split_message_type,
)

C = MessageClass


@pytest.mark.parametrize(
    ("method", "message_class", "expected"),
    [
        (Method.BINDING, C.REQUEST, 0x0001),
        (Method.BINDING, C.SUCCESS, 0x0101),
        (Method.BINDING, C.ERROR, 0x0111),
        (Method.BINDING, C.INDICATION, 0x0011),
        (Method.ALLOCATE, C.REQUEST, 0x0003),
        (Method.ALLOCATE, C.SUCCESS, 0x0103),
        (Method.ALLOCATE, C.ERROR, 0x0113),
        (Method.REFRESH, C.ERROR, 0x0114),
        (Method.SEND, C.INDICATION, 0x0016),
        (Method.DATA, C.INDICATION, 0x0017),
        (Method.CREATE_PERMISSION, C.SUCCESS, 0x0108),
        (Method.CHANNEL_BIND, C.REQUEST, 0x0009),
        (Method.CHANNEL_BIND, C.SUCCESS, 0x0109),
        (Method.CONNECT, C.ERROR, 0x011A),
        (Method.CONNECTION_BIND, C.REQUEST, 0x000B),
        (Method.CONNECTION_ATTEMPT, C.INDICATION, 0x001C),
        (0xFFF, C.ERROR, 0x3FFF),
        (0x080, C.REQUEST, 0x0200),
    ],
)
def test_known_message_types_rfc8489_section_5(
    method: int, message_class: MessageClass, expected: int
) -> None:
    assert message_type(method, message_class) == expected
    assert split_message_type(expected) == (method, message_class)


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("message_class", list(MessageClass))
def test_every_method_and_class_interleave_and_split_back(
    method: Method, message_class: MessageClass
) -> None:
    msg_type = message_type(method, message_class)
    assert msg_type & 0xC000 == 0
    # C0 is bit 4 and C1 is bit 8 of the type (RFC 8489 §5, figure 3).
    assert (msg_type >> 4) & 1 == message_class & 1
    assert (msg_type >> 8) & 1 == message_class >> 1
    assert split_message_type(msg_type) == (method, message_class)


def test_all_14_bit_types_split_and_rebuild() -> None:
    for msg_type in range(0x4000):
        assert message_type(*split_message_type(msg_type)) == msg_type


def test_method_must_fit_12_bits() -> None:
    with pytest.raises(ValueError):
        message_type(0x1000, C.REQUEST)


def test_comprehension_required_range_rfc8489_section_14() -> None:
    assert is_comprehension_required(AttributeType.XOR_PEER_ADDRESS)
    assert is_comprehension_required(0x7FFF)
    assert not is_comprehension_required(0x8000)
    assert not is_comprehension_required(AttributeType.FINGERPRINT)


def test_every_error_code_has_a_reason_phrase() -> None:
    for code in ErrorCode:
        assert reason_phrase(code) != "Error", code
    assert reason_phrase(ErrorCode.STALE_NONCE) == "Stale Nonce"
    assert reason_phrase(ErrorCode.UNAUTHORIZED) == "Unauthenticated"
    assert reason_phrase(ErrorCode.INSUFFICIENT_CAPACITY) == "Insufficient Capacity"
    assert reason_phrase(499) == "Error"


def test_error_code_numbers() -> None:
    expected = {
        "TRY_ALTERNATE": 300, "BAD_REQUEST": 400, "UNAUTHORIZED": 401, "FORBIDDEN": 403,
        "MOBILITY_FORBIDDEN": 405, "UNKNOWN_ATTRIBUTE": 420, "ALLOCATION_MISMATCH": 437,
        "STALE_NONCE": 438, "ADDRESS_FAMILY_NOT_SUPPORTED": 440, "WRONG_CREDENTIALS": 441,
        "UNSUPPORTED_TRANSPORT_PROTOCOL": 442, "PEER_ADDRESS_FAMILY_MISMATCH": 443,
        "CONNECTION_ALREADY_EXISTS": 446, "CONNECTION_TIMEOUT_OR_FAILURE": 447,
        "ALLOCATION_QUOTA_REACHED": 486, "ROLE_CONFLICT": 487, "SERVER_ERROR": 500,
        "INSUFFICIENT_CAPACITY": 508,
    }  # fmt: skip
    assert {code.name: code.value for code in ErrorCode} == expected

"""passage.stun.discovery: RFC 5780 probes and what their answers say, client side."""

from __future__ import annotations

import pytest

from passage.stun import (
    AttributeType,
    ChangeRequestValue,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    TransactionId,
    decode_message,
    encode_message,
)
from passage.stun.discovery import (
    FilteringBehavior,
    MappingBehavior,
    binding_request,
    filtering_behavior,
    mapping_behavior,
    read_binding_response,
)

A = AttributeType
TID = TransactionId(bytes.fromhex("b5c8e37cb007d8351e0ef7db"))

# Test II of the filtering test, as coturn 4.6.1's turnutils_natdiscovery -f sends it
# (captured on loopback): a Binding request whose only attribute is CHANGE-REQUEST
# with change IP and change port set.
NATDISCOVERY_CHANGE_IP_AND_PORT = bytes.fromhex(
    "000100082112a442b5c8e37cb007d8351e0ef7db0003000400000006"
)


def test_change_request_probe_is_byte_for_byte_what_natdiscovery_sends() -> None:
    built = binding_request(TID, change_ip=True, change_port=True, fingerprint=False)
    assert built == NATDISCOVERY_CHANGE_IP_AND_PORT
    message = decode_message(NATDISCOVERY_CHANGE_IP_AND_PORT)
    assert message.get(A.CHANGE_REQUEST, ChangeRequestValue) == ChangeRequestValue(True, True)


def test_plain_probe_has_no_rfc5780_attributes_and_a_fingerprint() -> None:
    message = decode_message(binding_request(TID))
    assert (message.method, message.message_class) == (Method.BINDING, MessageClass.REQUEST)
    assert [kind for kind, _ in message.attributes] == [A.FINGERPRINT]


def test_probe_with_response_port_and_padding() -> None:
    message = decode_message(binding_request(TID, change_port=True, response_port=4000))
    assert message.get(A.CHANGE_REQUEST, ChangeRequestValue) == ChangeRequestValue(False, True)
    assert message.get(A.RESPONSE_PORT, int) == 4000
    padded = decode_message(binding_request(TID, padding=1500))
    assert padded.get(A.PADDING, bytes) == bytes(1500)


def test_probe_refuses_padding_with_response_port() -> None:
    with pytest.raises(ValueError):
        binding_request(TID, padding=4, response_port=4000)


def _response(
    *attributes: tuple[int, object], tid: bytes = TID, cls: MessageClass = MessageClass.SUCCESS
) -> bytes:
    message = Message(Method.BINDING, cls, TransactionId(tid), attributes)  # type: ignore[arg-type]
    return encode_message(message, fingerprint=True)


def test_reads_every_rfc5780_attribute_of_an_answer() -> None:
    data = _response(
        (A.XOR_MAPPED_ADDRESS, ("198.51.100.7", 40000)),
        (A.MAPPED_ADDRESS, ("198.51.100.7", 40000)),
        (A.RESPONSE_ORIGIN, ("203.0.113.2", 3479)),
        (A.OTHER_ADDRESS, ("203.0.113.2", 3479)),
    )
    result = read_binding_response(data, TID)
    assert result is not None
    assert result.mapped == ("198.51.100.7", 40000)
    assert result.response_origin == ("203.0.113.2", 3479)
    assert result.other_address == ("203.0.113.2", 3479)
    assert result.error is None and not result.alg_detected


def test_mapped_address_alone_is_the_reflexive_address() -> None:
    result = read_binding_response(_response((A.MAPPED_ADDRESS, ("198.51.100.7", 1))), TID)
    assert result is not None and result.mapped == ("198.51.100.7", 1)
    assert result.other_address is None and not result.alg_detected


def test_a_rewritten_mapped_address_shows_an_alg() -> None:
    # RFC 5780 §3.6: a generic ALG rewrites the plain address it recognises, not the XOR-ed one.
    data = _response(
        (A.XOR_MAPPED_ADDRESS, ("198.51.100.7", 40000)),
        (A.MAPPED_ADDRESS, ("10.0.0.7", 40000)),
    )
    result = read_binding_response(data, TID)
    assert result is not None and result.alg_detected


def test_reads_the_error_of_an_error_response() -> None:
    data = _response(
        (A.ERROR_CODE, ErrorCodeValue(420, "Unknown Attribute")), cls=MessageClass.ERROR
    )
    result = read_binding_response(data, TID)
    assert result is not None and result.error == ErrorCodeValue(420, "Unknown Attribute")
    assert result.mapped is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not stun at all, just some bytes",
        _response(
            (A.XOR_MAPPED_ADDRESS, ("198.51.100.7", 1)), tid=bytes(12)
        ),  # another transaction
        binding_request(TID),  # a request, not an answer
        encode_message(Message(Method.ALLOCATE, MessageClass.SUCCESS, TID)),
    ],
)
def test_anything_but_the_answer_is_none(data: bytes) -> None:
    assert read_binding_response(data, TID) is None


# -- RFC 5780 §4.3 and §4.4 -----------------------------------------------------------

M1, M2, M3 = ("198.51.100.7", 1000), ("198.51.100.7", 1001), ("198.51.100.7", 1002)


def test_mapping_behavior_per_section_4_3() -> None:
    assert mapping_behavior(M1, M1) is MappingBehavior.ENDPOINT_INDEPENDENT
    assert mapping_behavior(M1, M2, M2) is MappingBehavior.ADDRESS_DEPENDENT
    assert mapping_behavior(M1, M2, M3) is MappingBehavior.ADDRESS_AND_PORT_DEPENDENT
    with pytest.raises(ValueError):
        mapping_behavior(M1, M2)


def test_filtering_behavior_per_section_4_4() -> None:
    assert filtering_behavior(True) is FilteringBehavior.ENDPOINT_INDEPENDENT
    assert filtering_behavior(False, True) is FilteringBehavior.ADDRESS_DEPENDENT
    assert filtering_behavior(False, False) is FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT
    with pytest.raises(ValueError):
        filtering_behavior(False)

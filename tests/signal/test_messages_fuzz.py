"""Fuzz: what a signaling client sends, from the upgrade request to every text frame.

A frame is a :class:`Send` or a :class:`SignalError` with ``MALFORMED`` or
``TOO_BIG``; a room name is itself or ``BAD_ROOM``; a token, wherever the
client put it and whatever it holds, admits a member or is refused with a
:class:`SignalError`. Frames are drawn both as random text and as JSON
objects made of the frame's own field names with values of every type.
"""

from __future__ import annotations

import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ, JSON_VALUES, TEXT_OR_JSON, as_json, objects_with
from passage.identity.ids import new_identity_id
from passage.identity.keys import AccessKey, AccessKeys, KeyName
from passage.identity.scopes import Scope
from passage.identity.state import IdentityState
from passage.identity.tokens import mint_token
from passage.signal import CloseCode, SignalError, parse_room_name
from passage.signal.admission import admit, offered_token
from passage.signal.messages import Send, parse_client_message

LIMIT = 2048
FRAME_FIELDS = ["type", "to", "data"]
FRAMES = (
    TEXT_OR_JSON
    | objects_with(FRAME_FIELDS, JSON_VALUES | st.just("send")).map(as_json)
    | st.builds(
        lambda to, data: as_json({"type": "send", "to": to, "data": data}),
        JSON_VALUES,
        JSON_VALUES | st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3),
    )
    | st.sampled_from(
        ['{"type":"send","data":{"x":NaN}}', '{"type":"send","data":{}}' + " " * LIMIT]
    )
)


@FUZZ
@given(FRAMES)
def test_a_frame_is_a_send_or_a_malformed_or_too_big_refusal(text: str) -> None:
    try:
        sent = parse_client_message(text, LIMIT)
    except SignalError as refused:
        assert refused.code in (CloseCode.MALFORMED, CloseCode.TOO_BIG)
        return
    assert isinstance(sent, Send) and isinstance(sent.data, dict)
    assert sent.to is None or isinstance(sent.to, str)
    assert json.dumps(sent.data)  # what is relayed can be written back out


@FUZZ
@given(st.text(max_size=80))
def test_a_room_name_is_itself_or_bad_room(text: str) -> None:
    try:
        assert parse_room_name(text) == text
    except SignalError as refused:
        assert refused.code is CloseCode.BAD_ROOM


RESOURCE = "2dee53b4-368b-45b4-ab52-8493fb117652"
PRIMARY = AccessKey(KeyName.PRIMARY, bytes(range(32)))
STATE = IdentityState(
    RESOURCE, "westeurope", AccessKeys(PRIMARY, AccessKey(KeyName.SECONDARY, bytes(32)))
)
NOW = 1_722_933_413.0
GOOD, _ = mint_token(
    PRIMARY, new_identity_id(RESOURCE, uuid.UUID(int=1)), (Scope.VOIP,),
    issued_ms=int(NOW * 1000) - 1000, lifetime=3600, resource_id=RESOURCE, region="westeurope",
)  # fmt: skip
TOKENS = (
    st.text(max_size=120)
    | st.lists(st.sampled_from([*GOOD.split("."), "e30", "", "x" * 20]), max_size=4).map(".".join)
    | st.builds(
        lambda cut, flip: GOOD[:cut] + flip + GOOD[cut + 1 :],
        st.integers(0, len(GOOD)),
        st.sampled_from(["A", "_", ".", "=", "é"]),
    )  # fmt: skip
)


@FUZZ
@given(
    st.none() | TOKENS.map("Bearer ".__add__) | st.text(max_size=20),
    st.none() | TOKENS,
    st.lists(st.sampled_from(["passage.signal.v1"]) | TOKENS.map("bearer.".__add__), max_size=3),
)
def test_a_token_from_anywhere_admits_or_is_refused_with_a_close_code(
    authorization: str | None, query: str | None, protocols: list[str]
) -> None:
    token = offered_token(authorization, query, protocols)
    try:
        claims = admit(token, STATE, NOW)
    except SignalError as refused:
        assert refused.code in set(CloseCode)
        return
    assert Scope.VOIP in claims.scopes

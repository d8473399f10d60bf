"""Hypothesis strategies the fuzz tests share: JSON that looks like a protocol's, and text.

A fuzz test feeds a parser a remote party reaches with what that party could
send, and accepts only a valid result or the parser's documented error
(STYLE.md: "a fuzz harness that only accepts documented exceptions"). Inputs
near the format (JSON objects with the protocol's field names and values of
every JSON type) reach deeper than random text, so each test draws from both.
"""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None)
"""A few hundred examples each: enough to find shallow crashes, cheap enough for CI."""

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)

JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value, a few levels deep."""


def objects_with(
    names: list[str], values: st.SearchStrategy[object] = JSON_VALUES
) -> st.SearchStrategy[dict[str, object]]:
    """JSON objects whose keys are mostly ``names`` (some absent, some others added)."""
    return st.dictionaries(
        st.sampled_from(names) | st.text(max_size=8), values, max_size=len(names) + 2
    )


def as_json(value: object) -> str:
    return json.dumps(value)


TEXT_OR_JSON = st.text(max_size=200) | JSON_VALUES.map(as_json)
"""Random text, or a JSON document of any shape."""

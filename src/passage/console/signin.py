"""Which access key an operator pasted into the sign-in form, checked in constant time.

The form takes what an operator has at hand: the base64 key alone, or the
whole connection string (``endpoint=...;accesskey=...``) that ``passage
connection-string`` prints. :func:`key_named_by` compares the bytes with
*every* key of the node with :func:`hmac.compare_digest`, whichever matches,
so the time taken says nothing of which key, or how much of one, was right.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from passage.identity.keys import AccessKey, KeyName

__all__ = ["MAX_PASTED", "key_named_by", "pasted_key"]

MAX_PASTED = 2048
"""Longest sign-in text considered, in characters (a connection string is ~150)."""


def pasted_key(text: str) -> bytes | None:
    """The key bytes in ``text`` (a base64 key or a connection string); None if there are none."""
    text = text.strip()
    if not text or len(text) > MAX_PASTED:
        return None
    if "accesskey=" in text.lower():
        fields = {}
        for item in text.split(";"):
            name, equals, value = item.partition("=")
            if equals:
                fields[name.strip().lower()] = value.strip()
        text = fields.get("accesskey", "")
    try:
        return base64.b64decode(text, validate=True) or None
    except (binascii.Error, ValueError):
        return None


def key_named_by(secret: bytes, keys: Iterable[AccessKey]) -> KeyName | None:
    """The name of the key whose secret is ``secret``, comparing with every key."""
    found = None
    for key in keys:
        if hmac.compare_digest(secret, key.secret):
            found = key.name
    return found

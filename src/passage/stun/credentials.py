"""Keys for MESSAGE-INTEGRITY(-SHA256) and the USERHASH (RFC 8489 §9, §14.4).

Text preparation is deliberately light. RFC 8489 asks for the PRECIS OpaqueString profile
(RFC 8265) and RFC 5389 for SASLprep (RFC 4013); we apply SASLprep's mapping and normalization
steps only: characters "commonly mapped to nothing" (RFC 3454 table B.1) are removed, non-ASCII
spaces (table C.1.2) become U+0020, and the result is NFKC-normalized. Prohibited-character and
bidi checks are not applied. ASCII text, which is what coturn-style credentials are, is left
untouched. NFKC (not OpaqueString's NFC) is what RFC 5769 §2.4 needs:
"The<U+00AD>M<U+00AA>tr<U+2168>" must become "TheMatrIX".
"""

from __future__ import annotations

import hashlib
import unicodedata

from .constants import PasswordAlgorithm

_MAPPED_TO_NOTHING = [0x00AD, 0x034F, 0x1806, *range(0x180B, 0x180E), *range(0x200B, 0x200E)]
_MAPPED_TO_NOTHING += [0x2060, *range(0xFE00, 0xFE10), 0xFEFF]
_NON_ASCII_SPACES = [0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000]
_PREPARE_TABLE: dict[int, int | None] = {
    **dict.fromkeys(_NON_ASCII_SPACES, 0x20),
    **dict.fromkeys(_MAPPED_TO_NOTHING, None),
}

_KEY_HASHES = {PasswordAlgorithm.MD5: "md5", PasswordAlgorithm.SHA256: "sha256"}


def prepare_text(text: str) -> str:
    """SASLprep-style mapping and NFKC normalization of a password or realm (see module doc)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text.translate(_PREPARE_TABLE))


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5,
) -> bytes:
    """RFC 8489 §9.2.2: ``H(username ":" prep(realm) ":" prep(password))`` with H = MD5 (16
    bytes) or SHA-256 (32 bytes) per PASSWORD-ALGORITHM. The username is used as sent."""
    text = f"{username}:{prepare_text(realm)}:{prepare_text(password)}"
    return hashlib.new(_KEY_HASHES[algorithm], text.encode("utf-8"), usedforsecurity=False).digest()


def short_term_key(password: str) -> bytes:
    """RFC 8489 §9.1.1: the key is the prepared password itself, UTF-8 encoded."""
    return prepare_text(password).encode("utf-8")


def userhash(username: str, realm: str) -> bytes:
    """RFC 8489 §14.4: the USERHASH value, ``SHA-256(prep(username) ":" prep(realm))``."""
    return hashlib.sha256(f"{prepare_text(username)}:{prepare_text(realm)}".encode()).digest()

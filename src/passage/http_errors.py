"""Errors that know their HTTP answer, and the one JSON body every HTTP product writes for them.

An :class:`HttpError` carries the status to answer with, a stable ``code`` a
program can branch on, a ``message`` safe to show (never a secret, never an
exception's text), the ``target`` field it is about, and any headers the
answer needs (``Allow`` on a 405). The identity service's errors, the
Hybrid Connections admin's and SAS refusals are kinds of it; the management
API, the relay and signaling answer every one with :func:`error_body`::

    {"error": {"code": "ValidationError", "message": "...", "target": "Ttl"}}

which is the ACS error body (common.json, 2022-07-13), so an Azure SDK reads
it too. A leaf: it imports nothing of ours and does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["HttpError", "error_body"]


class HttpError(Exception):
    """A request refused with ``status``; see the module docstring for each field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        target: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers: Mapping[str, str] = headers or {}
        """Sent with the error (``Allow`` on a 405)."""


def error_body(error: HttpError) -> dict[str, object]:
    """``{"error": {"code", "message", "target"?}}``: what every HTTP product answers."""
    inner: dict[str, object] = {"code": error.code, "message": error.message}
    if error.target is not None:
        inner["target"] = error.target
    return {"error": inner}

"""Errors that know their ACS answer: HTTP status, ``code``, ``message`` and ``target``."""

from __future__ import annotations

__all__ = ["AuthenticationError", "IdentityError", "NotFoundError", "ValidationError"]


class IdentityError(Exception):
    """A request the service refuses; the API renders it as the ACS error body."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target


class ValidationError(IdentityError):
    """A field is missing or out of range (400 ``ValidationError``)."""

    code = "ValidationError"


class AuthenticationError(IdentityError):
    """The request's HMAC, date or token does not hold (401 ``Denied``).

    The message says which check failed, never what the right value would be.
    """

    status = 401
    code = "Denied"


class NotFoundError(IdentityError):
    """No such identity, or it was deleted (404 ``IdentityNotFound``)."""

    status = 404
    code = "IdentityNotFound"

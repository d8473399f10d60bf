"""Errors that know their ACS answer: HTTP status, ``code``, ``message`` and ``target``.

Each is an :class:`~passage.http_errors.HttpError` whose status and code come
with its kind; the API answers it with :func:`passage.http_errors.error_body`.
"""

from __future__ import annotations

from passage.http_errors import HttpError

__all__ = ["AuthenticationError", "IdentityError", "NotFoundError", "ValidationError"]


class IdentityError(HttpError):
    """A request the service refuses, with the status and code of its kind."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(type(self).status, type(self).code, message, target)


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

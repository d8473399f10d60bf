"""The ACS error body, and the API's own errors beyond the identity ones."""

from __future__ import annotations

from collections.abc import Mapping

from passage.identity.errors import IdentityError

__all__ = ["ApiError", "error_body"]


class ApiError(IdentityError):
    """An error with an explicit status and code (routing, api-version, bodies)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        target: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, target)
        self.status = status
        self.code = code
        self.headers: Mapping[str, str] = headers or {}
        """Sent with the error (``Allow`` on a 405)."""


def error_body(error: IdentityError) -> dict[str, object]:
    """``{"error": {"code", "message", "target"?}}`` (ACS common.json, 2022-07-13)."""
    inner: dict[str, object] = {"code": error.code, "message": error.message}
    if error.target is not None:
        inner["target"] = error.target
    return {"error": inner}

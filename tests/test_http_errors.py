"""passage.http_errors: one error family, one body, whichever product refuses."""

from __future__ import annotations

from passage.http_errors import HttpError, error_body
from passage.hybrid.admin import AdminError
from passage.hybrid.sas import SasError
from passage.identity.errors import AuthenticationError, ValidationError


def test_the_body_is_the_acs_error_body() -> None:
    """ACS common.json (2022-07-13): code and message, and target when there is one."""
    assert error_body(HttpError(404, "NotFound", "No operation matches GET /x.")) == {
        "error": {"code": "NotFound", "message": "No operation matches GET /x."}
    }
    assert error_body(ValidationError("Ttl value -1 is invalid.", "Ttl")) == {
        "error": {"code": "ValidationError", "message": "Ttl value -1 is invalid.", "target": "Ttl"}
    }


def test_every_family_member_knows_its_answer() -> None:
    refusals: list[tuple[HttpError, int, str]] = [
        (AuthenticationError("The signature does not match."), 401, "Denied"),
        (
            AdminError(409, "Conflict", "hybrid connection 'a' already exists", "name"),
            409,
            "Conflict",
        ),
        (SasError(403, "rule 'send' lacks the LISTEN right"), 403, "TokenMissingOrInvalid"),
        (
            HttpError(405, "MethodNotAllowed", "no", headers={"Allow": "GET"}),
            405,
            "MethodNotAllowed",
        ),
    ]
    for error, status, code in refusals:
        assert isinstance(error, HttpError)
        assert (error.status, error.code) == (status, code)
        assert error_body(error)["error"]["message"] == str(error)  # type: ignore[index]
    assert refusals[3][0].headers == {"Allow": "GET"}

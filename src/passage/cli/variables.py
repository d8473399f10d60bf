"""Every environment variable ``passage`` reads, by the one name each idea has.

The server's settings are ``PASSAGE_<SETTING>`` (:data:`passage.config.OPTIONS`);
the clients' are here, shared by every command that takes them, so one idea
has one name: the API or relay address is ``PASSAGE_ENDPOINT``, a user token
``PASSAGE_TOKEN``, the CA to trust ``PASSAGE_CA_FILE``. Old names still work
with a warning (:data:`passage.cli.parsing.ENV_ALIASES`).
"""

from __future__ import annotations

from passage.config import CONFIG_ENV, OPTIONS

__all__ = [
    "CA_FILE_ENV",
    "CLIENT_VARIABLES",
    "CONNECTION_STRING_ENV",
    "ENDPOINT_ENV",
    "RELAY_CONNECTION_STRING_ENV",
    "TOKEN_ENV",
    "TURN_PASSWORD_ENV",
    "known_variables",
]

CONNECTION_STRING_ENV = "PASSAGE_CONNECTION_STRING"
"""``endpoint=https://HOST:PORT/;accesskey=KEY``: the deployment's access key."""
RELAY_CONNECTION_STRING_ENV = "PASSAGE_RELAY_CONNECTION_STRING"
"""``Endpoint=sb://HOST:PORT/;SharedAccessKeyName=...``: one hybrid connection's rule."""
ENDPOINT_ENV = "PASSAGE_ENDPOINT"
"""The server's address (``https://HOST:PORT/``; ``wss://`` and ``sb://`` name the same)."""
TOKEN_ENV = "PASSAGE_TOKEN"
"""A user access token (``passage token``)."""
CA_FILE_ENV = "PASSAGE_CA_FILE"
"""The CA certificate to trust for the server's TLS."""
TURN_PASSWORD_ENV = "PASSAGE_TURN_PASSWORD"
"""The password of ``--turn-user`` (``passage doctor``)."""

CLIENT_VARIABLES = (
    CONNECTION_STRING_ENV,
    RELAY_CONNECTION_STRING_ENV,
    ENDPOINT_ENV,
    TOKEN_ENV,
    CA_FILE_ENV,
    TURN_PASSWORD_ENV,
)


def known_variables() -> frozenset[str]:
    """Every ``PASSAGE_*`` variable some command reads."""
    return frozenset({CONFIG_ENV, *CLIENT_VARIABLES, *(option.env for option in OPTIONS)})

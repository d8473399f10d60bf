"""Fuzz: SAS tokens a sender or listener presents, and the relay URLs and connection strings
a user gives the SDK or the CLI.

A token is refused with :class:`SasError` (401 or 403) or names the rule that
signed it; that holds for random text, for tokens built field by field, and
for tokens correctly signed over any ``sr`` and ``se`` (a key holder can sign
anything). A relay URL or an Azure-style connection string parses into a
usable endpoint or raises :class:`ConnectionStringError`; the ACS connection
string of ``--connection-string`` parses or raises ``ConfigError``.
"""

from __future__ import annotations

import urllib.parse

from hypothesis import example, given
from hypothesis import strategies as st

from fuzzing import FUZZ
from passage.cli.management import ConnectionString
from passage.config import ConfigError
from passage.hybrid.endpoint import ConnectionStringError, RelayConnectionString, RelayEndpoint
from passage.hybrid.sas import (
    PREFIX,
    Rights,
    SasError,
    SasRule,
    SasToken,
    audience_covers,
    make_sas_token,
    verify_sas_token,
)

KEY = "rule-key"
RULES = {"r": SasRule("r", Rights.LISTEN | Rights.SEND, KEY, "second-key")}
HOSTS = ("relay.example.com", "127.0.0.1")
NOW = 1_700_000_000

URL_TEXT = st.lists(
    st.sampled_from([*"abz09:/[]%@?#.&=+-_ ~", "é", "\x00", "$hc", "%2F", "%5B"]), max_size=30
).map("".join)
"""Text made mostly of what URLs and tokens are made of."""
RESOURCES = (
    URL_TEXT
    | st.builds(lambda host, path: f"http://{host}/{path}", st.sampled_from(HOSTS), URL_TEXT)
    | st.sampled_from(["http%3A%2F%2F%5B", "http://[::1", "http://relay.example.com:99999/x"])
)
EXPIRIES = st.integers(min_value=-(10**20), max_value=10**400)


def field_list(draw_pairs: list[tuple[str, str]]) -> str:
    return PREFIX + "&".join(f"{name}={value}" for name, value in draw_pairs)


FIELDS = st.lists(
    st.tuples(st.sampled_from(["sr", "sig", "se", "skn", "SR", "x"]), URL_TEXT), max_size=6
).map(field_list)


def verify(text: str, entity: str = "myhc") -> SasRule:
    return verify_sas_token(text, RULES, hosts=HOSTS, entity=entity, needed=Rights.SEND, now=NOW)


@FUZZ
@given(FIELDS | URL_TEXT.map(PREFIX.__add__))
def test_a_token_built_field_by_field_parses_or_is_a_401(text: str) -> None:
    try:
        token = SasToken.parse(text)
    except SasError as refused:
        assert refused.status == 401
        return
    assert isinstance(token.expiry, int) and isinstance(token.signature, bytes)


@FUZZ
@given(RESOURCES, EXPIRIES, st.sampled_from(["r", "nobody", "r%20"]), st.text(max_size=20))
@example("http://[::1", NOW, "r", "myhc")  # found: urlsplit's ValueError escaped the audience check
@example("http://relay.example.com/myhc", 10**400, "r", "myhc")  # se past any clock
def test_a_correctly_signed_token_over_anything_is_a_rule_or_a_sas_error(
    resource: str, expiry: int, rule: str, entity: str
) -> None:
    """Whoever holds a key can sign any ``sr`` and ``se``: that must not crash the relay."""
    token = make_sas_token(resource, rule, KEY, expiry)
    try:
        assert verify(token, entity) is RULES["r"]
    except SasError as refused:
        assert refused.status in (401, 403)


@FUZZ
@given(RESOURCES, st.lists(st.text(max_size=12), max_size=3), st.text(max_size=20))
@example("http://[::1", ["::1"], "x")
def test_the_audience_check_answers_yes_or_no(resource: str, hosts: list[str], entity: str) -> None:
    assert audience_covers(urllib.parse.quote(resource, safe=""), hosts, entity) in (True, False)


@FUZZ
@given(
    st.sampled_from(["sb", "wss", "https", "ws", "http", "ftp", ""]).map(lambda s: s + "://")
    | st.just(""),
    URL_TEXT,
)
@example("wss://", "[::1")  # found: urlsplit's ValueError escaped as a bare ValueError
def test_a_relay_url_is_an_endpoint_or_a_connection_string_error(scheme: str, rest: str) -> None:
    try:
        endpoint = RelayEndpoint.parse(scheme + rest)
    except ConnectionStringError:
        return
    assert endpoint.scheme in ("ws", "wss") and endpoint.host
    assert 0 < endpoint.port <= 65535
    assert RelayEndpoint.parse(endpoint.base_url) == endpoint


CONNECTION_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["Endpoint", "SharedAccessKeyName", "SharedAccessKey",
                         "SharedAccessSignature", "EntityPath", "endpoint", "x", ""]),
        st.sampled_from(["=", "", "=="]),
        URL_TEXT | st.sampled_from(["sb://relay.example.com/", "wss://[::1]:8443", "sb://[::1"]),
    ),
    max_size=6,
).map(lambda parts: ";".join(name + sep + value for name, sep, value in parts))  # fmt: skip


@FUZZ
@given(CONNECTION_FIELDS | URL_TEXT)
@example("Endpoint=sb://relay.example.com/;SharedAccessSignature=")  # found: no credential at all
def test_a_relay_connection_string_parses_or_is_a_connection_string_error(text: str) -> None:
    try:
        parsed = RelayConnectionString.parse(text)
    except ConnectionStringError:
        return
    assert parsed.signature is not None or (parsed.key_name and parsed.key)
    assert RelayConnectionString.parse(str(parsed)).endpoint == parsed.endpoint


ACS_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["endpoint", "accesskey", "Endpoint", "AccessKey", "x"]),
        URL_TEXT | st.sampled_from(["https://h:8443/", "aGVsbG8=", "", "é"]),
    ),
    max_size=4,
).map(lambda parts: ";".join(f"{name}={value}" for name, value in parts))


@FUZZ
@given(ACS_FIELDS | URL_TEXT)
def test_an_acs_connection_string_parses_or_is_a_config_error(text: str) -> None:
    try:
        parsed = ConnectionString.parse(text)
    except ConfigError:
        return
    assert parsed.endpoint.startswith(("http://", "https://")) and parsed.endpoint.endswith("/")
    assert ConnectionString.parse(str(parsed)) == parsed

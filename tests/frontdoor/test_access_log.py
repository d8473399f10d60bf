"""The access log and request counts: every answered request, no secret in a line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api_harness import Api, api_server
from passage.frontdoor.access import MAX_TARGET, redacted_target


@pytest.mark.parametrize(
    ("path", "query", "shown"),
    [
        ("/a", "", "/a"),
        ("/$hc/x", "sb-hc-action=listen&sb-hc-token=SharedAccessSignature%20sr%3Dx%26sig%3Dy",
         "/$hc/x?sb-hc-action=listen&sb-hc-token=REDACTED"),
        ("/$hc/x", "sb-hc-action=accept&sb-hc-id=abc",
         "/$hc/x?sb-hc-action=accept&sb-hc-id=REDACTED"),
        ("/signal/r", "access_token=eyJ&x=1", "/signal/r?access_token=REDACTED&x=1"),
        ("/p", "Token=t&TOKEN=u&sig=s", "/p?Token=REDACTED&TOKEN=REDACTED&sig=REDACTED"),
    ],
)  # fmt: skip
def test_secret_query_values_are_redacted(path: str, query: str, shown: str) -> None:
    assert redacted_target(path, query) == shown


def test_a_long_target_is_cut() -> None:
    shown = redacted_target("/" + "a" * 2000, "")
    assert len(shown) == MAX_TARGET + 3 and shown.endswith("...")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path, access_log=True) as started:
        yield started


async def test_each_request_is_one_line_without_the_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="passage.access")
    secret = "SharedAccessSignature sr=x&sig=SECRETSIG&se=1&skn=k"
    async with api.session.get(
        api.http_base + "/$hc/nothing", params={"sb-hc-action": "listen", "sb-hc-token": secret}
    ) as response:
        assert response.status == 404
    await api.create_identity()
    records = [r for r in caplog.records if r.name == "passage.access"]
    assert len(records) == 2
    refused, created = records
    assert "SECRETSIG" not in refused.getMessage()
    fields = refused.fields  # type: ignore[attr-defined]
    assert fields["path"] == "/$hc/nothing?sb-hc-action=listen&sb-hc-token=REDACTED"
    assert (fields["method"], fields["status"], fields["client"]) == ("GET", 404, "127.0.0.1")
    assert fields["bytes"] > 0 and fields["duration_ms"] >= 0
    assert created.fields["route"] == "CommunicationIdentity_Create"  # type: ignore[attr-defined]
    assert created.fields["status"] == 201  # type: ignore[attr-defined]
    assert "Authorization" not in created.getMessage()


async def test_without_access_log_nothing_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="passage.access")
    async with api_server(tmp_path) as api:
        await api.create_identity()
    assert [r for r in caplog.records if r.name == "passage.access"] == []

"""Every size a client controls on the API port has a bound, and meeting it is a clear answer.

The request line (and so the query and its parameters), each header line,
the number of header lines, the nesting of a JSON body, a signaling frame:
past each bound the client gets the status RFC 9110 gives it (414, 431, 400)
with the JSON error body every HTTP product answers with, or the close code
the protocol gives (1009), never a 500 or a bare text page. Under each bound
the request is served. The body-size bound (413) is in
``tests/api/test_api_errors.py``; connection caps and timeouts are in
``test_security_http_connections.py`` and ``test_security_http_timeouts.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server, identity_path
from http_probe import close, open_raw, read_until_closed, status_of
from passage.signal.aio.server import FRAME_LIMIT_FACTOR

LINE = 2048
"""The request-line and header-line bound the tests set (``--http-max-request-line`` and
``--http-max-header-size``)."""
HEADERS = 20
"""The header-count bound the tests set (``--http-max-headers``)."""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    environ = {
        "PASSAGE_HTTP_MAX_REQUEST_LINE": str(LINE),
        "PASSAGE_HTTP_MAX_HEADER_SIZE": str(LINE),
        "PASSAGE_HTTP_MAX_HEADERS": str(HEADERS),
    }
    async with api_server(tmp_path, environ=environ) as started:
        yield started


async def answer(api: Api, head: str) -> tuple[int | None, dict[str, object]]:
    """The status and JSON error of ``head`` sent on the plain-HTTP port."""
    reader, writer = await open_raw(api.running.http[0][1])
    writer.write(head.encode())
    response = await read_until_closed(reader)
    await close(writer)
    body = response.partition(b"\r\n\r\n")[2]
    assert b"application/json" in response.partition(b"\r\n\r\n")[0].lower(), response[:300]
    return status_of(response), json.loads(body)["error"]


def get(target: str, *headers: str) -> str:
    lines = [f"GET {target} HTTP/1.1", "Host: x", "Connection: close", *headers]
    return "\r\n".join(lines) + "\r\n\r\n"


async def test_a_request_line_over_the_bound_is_414_and_one_under_it_is_served(api: Api) -> None:
    query = "&".join(f"p{n}=1" for n in range(LINE // 6))  # about 340 query parameters
    long_target = f"/no-such-path?{query}"
    assert len(long_target) > LINE
    status, error = await answer(api, get(long_target))
    assert (status, error["code"]) == (414, "UriTooLong")
    fitting = long_target[: LINE - 100]
    assert (await answer(api, get(fitting)))[0] == 404  # served (by the API's 404)


async def test_a_header_line_over_the_bound_is_431(api: Api) -> None:
    status, error = await answer(api, get("/no-such-path", f"X-Big: {'y' * (LINE + 1)}"))
    assert (status, error["code"]) == (431, "RequestHeaderFieldsTooLarge")
    assert (await answer(api, get("/no-such-path", f"X-Big: {'y' * (LINE - 100)}")))[0] == 404


async def test_more_header_lines_than_the_bound_is_431(api: Api) -> None:
    many = [f"X-{n}: 1" for n in range(HEADERS + 1)]
    status, error = await answer(api, get("/no-such-path", *many))
    assert (status, error["code"]) == (431, "RequestHeaderFieldsTooLarge")
    assert (await answer(api, get("/no-such-path", *many[: HEADERS - 3])))[0] == 404


@pytest.mark.parametrize(
    "head",
    [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
async def test_a_malformed_head_is_400_with_the_json_error(api: Api, head: str) -> None:
    status, error = await answer(api, head)
    assert (status, error["code"]) == (400, "BadRequest")


async def test_json_nested_past_the_recursion_limit_is_400(api: Api) -> None:
    deep = b'{"createTokenWithScopes":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    result = await api.request("POST", identity_path(), deep)
    assert (result.status, result.body["error"]["code"]) == (400, "InvalidRequest")


async def test_a_signaling_frame_past_its_bound_is_closed_1009(api: Api) -> None:
    token = await api.issue_token(await api.create_identity(), ["voip"])
    frame_limit = api.running.signaling.limits.message_bytes * FRAME_LIMIT_FACTOR
    url = api.http_base.replace("http://", "ws://") + "/signal/big"
    ws = await api.session.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
    await ws.receive(timeout=5)  # welcome
    await ws.send_str("x" * (frame_limit + 1))
    while (await ws.receive(timeout=5)).type is not aiohttp.WSMsgType.CLOSE:
        pass
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG

"""``passage console-link``: a one-time link that a running server takes once."""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from pathlib import Path

import pytest

from api_harness import api_server
from passage.console.aio import COOKIE

pytestmark = pytest.mark.asyncio


async def passage(*argv: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "passage", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_printed_link_signs_in_once(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        host, port = api.running.https[0]
        where = [
            "--data-dir",
            str(api.config.data_dir),
            "--listen-ip",
            host,
            "--api-port",
            str(port),
        ]
        status, out, err = await passage("console-link", *where)
        assert status == 0, err
        assert "works once, for 10 minutes" in err
        url = urllib.parse.urlsplit(out.strip())
        assert (url.hostname, url.port, url.path) == (host, port, "/console/link")
        token = urllib.parse.parse_qs(url.query)["token"][0]
        for expected in (303, 401):  # once
            async with api.session.post(
                f"{api.https_base}/console/link", data={"token": token},
                ssl=api.tls_context(), allow_redirects=False,
            ) as response:  # fmt: skip
                assert response.status == expected
                assert (COOKIE in response.cookies) is (expected == 303)


@pytest.mark.parametrize("minutes", ["0", "61", "ten"])
async def test_a_lifetime_out_of_range_is_refused(tmp_path: Path, minutes: str) -> None:
    status, _, err = await passage(
        "console-link", "--data-dir", str(tmp_path / "d"), "--minutes", minutes
    )
    assert status == 2
    assert "--minutes" in err

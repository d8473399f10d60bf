"""Every shell block of README.md and docs/ marked runnable works as printed.

A block is runnable when the line before its ```sh fence is ``<!-- runnable -->``.
The test starts a real ``passage serve`` on ports of its own (not the defaults the
docs show) with its data directory at ``./.passage``, as ``make run`` makes it,
puts the installed ``passage`` on the PATH as the README says, and runs each block
with ``bash -euo pipefail`` from that directory. Comment lines in a block show
output and are not checked; the commands' exit status is. So the docs cannot
drift from the commands again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from passage_server import passage_process

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
BLOCK = re.compile(r"^" + re.escape(MARKER) + r"\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def runnable_blocks() -> list[tuple[str, int, str]]:
    """(document, line, text) of every marked block."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((str(document.relative_to(ROOT)), line, match.group(1)))
    return found


def test_the_marker_always_opens_a_shell_block() -> None:
    """A marker before anything else would make a block silently stop being run."""
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        assert text.count(MARKER) == len(BLOCK.findall(text)), document


def test_every_runnable_block_runs_against_a_real_server(tmp_path: Path) -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= 6, blocks  # the README's new-user path at least
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with passage_process(tmp_path, data_dir=".passage") as (info, _log):
        for document, line, block in blocks:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            where = f"{document}:{line}"
            assert done.returncode == 0, f"{where} failed:\n{block}\n{done.stderr[-2000:]}"
            assert "Traceback" not in done.stderr, f"{where}:\n{done.stderr[-2000:]}"
            # Each talks to the server started here, on its own ports, not the defaults
            # (turn-credentials only signs with the data directory's secret).
            if "--data-dir .passage" in block and "turn-credentials" not in block:
                assert "passage: using the server running on .passage" in done.stderr, where
        assert info.data_dir == tmp_path / ".passage"

"""``make run`` on a machine without a C compiler: Passage still installs, and relays.

The wheel is built from a copy of the source the way pip does for ``make run``, with
``CC=/bin/false`` standing in for a machine with no compiler; then the installed copy
(not this checkout) runs ``passage serve`` and relays ChannelData in Python."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from passage_server import passage_process
from turn_client import TurnClient, UdpPeer, error_code

ROOT = Path(__file__).resolve().parents[3]


def build_without_a_compiler(folder: Path) -> tuple[Path, str]:
    """The wheel pip builds with ``CC=/bin/false``, and pip's output."""
    source = folder / "source"
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source)
    wheels = folder / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(wheels), str(source)],
        env={"PATH": "/usr/bin:/bin", "CC": "/bin/false", "HOME": str(folder)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = wheels.glob("passage_relay-*.whl")
    return wheel, done.stdout + done.stderr


def install_without_a_compiler(folder: Path) -> Path:
    """Build without a compiler (checking pip said so and the wheel has no extension),
    install it into ``folder / "site"``, and return that folder: what ``PYTHONPATH`` names."""
    wheel, output = build_without_a_compiler(folder)
    assert 'building extension "passage.turn.fastpath._router" failed' in output, output[-3000:]
    names = zipfile.ZipFile(wheel).namelist()
    assert "passage/turn/fastpath/_router.c" in names
    assert not [name for name in names if name.endswith(".so")], names
    target = folder / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
    subprocess.run([*install, str(wheel)], check=True, timeout=300)
    where = subprocess.run(
        [sys.executable, "-c", "import passage; print(passage.__file__)"],
        env={"PYTHONPATH": str(target)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(target)), where.stdout  # the installed copy runs
    return target


async def test_without_a_compiler_passage_installs_and_relays_in_python(tmp_path: Path) -> None:
    target = install_without_a_compiler(tmp_path)
    environ = {"PYTHONPATH": str(target), "PASSAGE_FAST_PATH": "auto"}
    with passage_process(tmp_path, "--allow-loopback-peers", environ=environ) as (info, log):
        client = await TurnClient.connect("udp", (info.host, info.turn_port))
        peer = await UdpPeer.bind()
        try:
            await client.allocate()
            assert error_code(await client.channel_bind(0x4000, peer.address)) is None
            client.send_channel_data(0x4000, b"no compiler needed")
            assert (await peer.receive())[0] == b"no compiler needed"
        finally:
            await client.close()
            await peer.close()
    text = log.read_text()
    assert "TURN hot path: Python (the compiled fast path is not built)" in text, text[-2000:]

"""``passage serve --offload xdp`` in the NAT lab, with coturn's turnutils_uclient and _peer.

uclient (a public host) binds channels on Passage and sends numbered messages to
turnutils_peer (another public host), which echoes them. With the offload on,
the kernel relays both directions: Passage's log says how many packets each
allocation relayed in the kernel and how many in userspace (none), and the
usage ledger counts every byte. Both hosts send finished UDP checksums
(``wire_checksums``), as packets off a wire have.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from offload_lab import unavailable, wire_checksums, xdp_of

from natlab import Host, Lab
from natlab.serve import serve
from passage.stun import MessageClass
from turn_client import TurnClient
from waiting import until

PEER_PORT = 3480
CLIENTS, MESSAGES, SIZE = 2, 100, 160
SPLIT = re.compile(
    r"offload: allocation (\S+) relayed in the kernel: to peer (\d+) B/(\d+) pkts, from peer "
    r"(\d+) B/(\d+) pkts; in userspace: to peer (\d+) pkts, from peer (\d+) pkts"
)


@pytest.fixture(autouse=True)
def _tools(xdp_program: object) -> None:
    """The program builds and loads here, and coturn's tools are installed (or skip/fail)."""
    del xdp_program
    if shutil.which("turnutils_uclient") is None:
        unavailable("turnutils_uclient is not installed (Debian package: coturn)")


def peer(lab: Lab, host: Host) -> subprocess.Popen[bytes]:
    process = lab.popen(
        host, ["turnutils_peer", "-L", host.ip, "-p", str(PEER_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.2)
    return process


def uclient(lab: Lab, host: Host, target: Host, *extra: str) -> str:
    command = [
        "turnutils_uclient", "-u", "alice", "-w", "wonderland", "-c",
        "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", str(SIZE), "-z", "2",
        "-e", target.ip, "-r", str(PEER_PORT), "-p", "3478", *extra, lab.server.ip,
    ]  # fmt: skip
    done = lab.run(host, command, check=False, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def ledger(lab: Lab, data_dir: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "passage", "usage", "--data-dir", str(data_dir), "--format", "json"],
        capture_output=True, text=True, check=True, env=lab.env(),
    )  # fmt: skip
    rows = json.loads(done.stdout)["value"]
    keys = ("bytesToPeer", "packetsToPeer", "bytesFromPeer", "packetsFromPeer")
    return {key: sum(int(row[key]) for row in rows) for key in keys}


def test_uclient_through_the_kernel_path_loses_nothing_and_is_metered_exactly(
    lab: Lab, tmp_path: Path
) -> None:
    client, echo = lab.add_host("client"), lab.add_host("echo")
    wire_checksums(lab, client, echo)
    peer(lab, echo)
    data_dir = tmp_path / "passage"
    with serve(lab, data_dir, "--offload", "xdp") as passage:
        assert xdp_of(lab) is not None
        output = uclient(lab, client, echo)
        passage.process.send_signal(signal.SIGINT)  # uclient's probes linger: no drain
        passage.process.wait(20)
    log = passage.log.read_text()
    sent = CLIENTS * MESSAGES
    assert "Total lost packets 0 (0.000000%)" in output, output[-2000:]
    assert re.search(rf"tot_send_msgs={sent}, tot_recv_msgs={sent}", output), output[-2000:]
    splits = SPLIT.findall(log)  # uclient also makes allocations it sends nothing through
    assert len([s for s in splits if s[2] != "0"]) == CLIENTS, log[-3000:]
    kernel_to_peer = sum(int(s[2]) for s in splits)
    kernel_from_peer = sum(int(s[4]) for s in splits)
    assert (kernel_to_peer, kernel_from_peer) == (sent, sent), log[-3000:]
    assert {(s[5], s[6]) for s in splits} == {("0", "0")}, "userspace relayed some"
    assert ledger(lab, data_dir) == {
        "bytesToPeer": sum(int(s[1]) for s in splits),
        "packetsToPeer": sent,
        "bytesFromPeer": sum(int(s[3]) for s in splits),
        "packetsFromPeer": sent,
    }
    assert sum(int(s[1]) for s in splits) == sent * SIZE
    assert "offload: XDP program detached" in log
    assert xdp_of(lab) is None


def test_offload_auto_falls_back_with_one_warning_when_it_cannot_attach(
    lab: Lab, tmp_path: Path
) -> None:
    """Another XDP program holds the interface: auto relays in userspace, xdp refuses to start."""
    from natlab.lab import SERVER_IP
    from passage.offload.xdp.control import ChannelOffload

    holder = lab.call(lab.server, ChannelOffload.start, [SERVER_IP])
    try:
        with serve(lab, tmp_path / "auto", "--offload", "auto") as passage:
            pass
        warnings = [line for line in passage.log.read_text().splitlines() if "offload:" in line]
        assert len(warnings) == 1 and "staying in userspace" in warnings[0], warnings
        process = lab.python(
            lab.server, "-m", "passage", "serve", "--data-dir", str(tmp_path / "xdp"),
            "--listen-ip", SERVER_IP, "--offload", "xdp", "--api-port", "0",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 69, errors
        assert "passage: error:" in errors and "another passage serve" in errors, errors
    finally:
        holder.close()


def flow_count(lab: Lab) -> int:
    """Entries in the ``flows`` map of the program attached to the server's eth0."""
    attached = xdp_of(lab)
    assert attached is not None, "no XDP program on the server"
    program = json.loads(
        subprocess.run(
            ["bpftool", "-j", "prog", "show", "id", str(attached["prog"]["id"])],  # type: ignore[index]
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    for map_id in program["map_ids"]:
        shown = subprocess.run(
            ["bpftool", "-j", "map", "show", "id", str(map_id)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if json.loads(shown)["name"] == "flows":
            dumped = subprocess.run(
                ["bpftool", "-j", "map", "dump", "id", str(map_id)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            return len(json.loads(dumped))
    raise AssertionError("the program has no flows map")


async def test_channels_enter_at_bind_and_leave_at_expiry_and_denied_peers_never_enter(
    lab: Lab, tmp_path: Path
) -> None:
    """RFC 8656 §9: a permission lasts its lifetime (here 2 s); the kernel entry goes with it."""
    client, echo = lab.add_host("client"), lab.add_host("echo")
    wire_checksums(lab, client, echo)
    peer_sock = lab.socket(echo)
    peer_sock.bind((echo.ip, 6000))
    peer_sock.settimeout(2.0)
    with serve(
        lab, tmp_path / "passage", "--offload", "xdp", "--permission-lifetime", "2",
        "--deny-peer", "203.0.113.99/32",
    ) as passage:  # fmt: skip
        turn = await TurnClient.connect("udp", passage.stun, sock=lab.socket(client))
        try:
            assert (await turn.allocate()).message_class is MessageClass.SUCCESS
            denied = await turn.channel_bind(0x4001, ("203.0.113.99", 6000))
            assert denied.message_class is MessageClass.ERROR
            assert flow_count(lab) == 0
            bound = await turn.channel_bind(0x4000, (echo.ip, 6000))
            assert bound.message_class is MessageClass.SUCCESS
            assert flow_count(lab) == 2, "both directions, right after the ChannelBind answer"
            turn.send_channel_data(0x4000, b"while bound")
            assert peer_sock.recvfrom(64) == (b"while bound", turn.relayed)
            await until(lambda: flow_count(lab) == 0, give_up_after=10, step=0.2)
            turn.send_channel_data(0x4000, b"after expiry")
            peer_sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                peer_sock.recvfrom(64)
        finally:
            await turn.close()


def test_kill_9_leaves_no_program_and_the_next_start_attaches(lab: Lab, tmp_path: Path) -> None:
    attached = detached = False
    with pytest.raises(AssertionError):  # serve() checks the exit status: -9 is not 0
        with serve(lab, tmp_path / "passage", "--offload", "xdp") as passage:
            attached = xdp_of(lab) is not None
            passage.process.kill()
            passage.process.wait(10)
            deadline = time.monotonic() + 5
            while xdp_of(lab) is not None and time.monotonic() < deadline:
                time.sleep(0.05)  # the link goes when the process's descriptors are closed
            detached = xdp_of(lab) is None
    assert attached and detached, "the program stayed attached after kill -9"
    with serve(lab, tmp_path / "again", "--offload", "xdp"):
        assert xdp_of(lab) is not None

"""CPU per million relayed packets: coturn, Passage, and Passage with ``--offload xdp``.

The three servers run one after the other in one run, under the same
``turnutils_uclient`` load, in the NAT lab (tests/natlab): the server in its
namespace, uclient on one public host, ``turnutils_peer`` (the echo peer) on
another, joined by veths and a bridge. XDP attaches in generic mode on veths,
where it runs in the context of the process that sent the packet, so its cost
lands on uclient and the peer, not on the server. Hence CPU is counted per
process, from ``/proc/<pid>/stat`` (utime + stime, all threads):

- server: the server process and its descendants (Passage runs ``--workers 1``, one
  process, as in every other benchmark of docs/benchmarks.md; the tree is summed anyway);
- load generator: uclient (``RUSAGE_CHILDREN`` of this process, which waits for it);
- peer: turnutils_peer;
- kernel threads: every ``ksoftirqd/*`` and ``napi/*`` thread on the machine.

The report gives the server's own share and the total, per million relayed
packets (uclient's ``tot_send_msgs + tot_recv_msgs``). The lab's hosts send
finished UDP checksums (``ethtool -K eth0 tx off``), as packets off a wire
have; that costs the senders the same for every server.

Then ``bpftool prog run`` runs the program itself on one 160-byte ChannelData
frame of an installed channel, ``--prog-runs`` times: nanoseconds per packet.

Usage (root, after ``make offload``)::

    .venv/bin/python bench/offload.py --repeat 3 --markdown out.md

Traffic stays inside the lab's namespaces.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(_TESTS), str(_TESTS / "offload")]

from natlab import Host, Lab  # noqa: E402
from natlab.lab import SERVER_IP  # noqa: E402
from servers import PASSWORD, REALM, USER, cpu_seconds, descendants  # noqa: E402
from uclient import UclientResult  # noqa: E402

TURN_PORT, PEER_PORT = 3478, 3480
RELAY_PORTS = (49152, 65535)
SERVERS = ("coturn", "passage", "passage-xdp")
_COUNTERS = re.compile(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)")
_LOSS = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\)")
_KERNEL_THREADS = re.compile(r"^(ksoftirqd/\d+|napi/.*)$")


def server_command(name: str, data_dir: Path) -> list[str]:
    low, high = RELAY_PORTS
    if name == "coturn":
        return [
            "turnserver", "-n", f"--listening-ip={SERVER_IP}", f"--relay-ip={SERVER_IP}",
            "--no-cli", "--no-tls", "--no-dtls", "--lt-cred-mech",
            f"--user={USER}:{PASSWORD}", f"--realm={REALM}", f"--listening-port={TURN_PORT}",
            f"--min-port={low}", f"--max-port={high}",
            f"--log-file={data_dir / 'turnserver.log'}", "--simple-log",
            f"--pidfile={data_dir / 'turnserver.pid'}",
        ]  # fmt: skip
    command = [
        sys.executable, "-m", "passage", "serve", "--listen-ip", SERVER_IP,
        "--relay-ip", SERVER_IP, "--allow-peer", "203.0.113.0/24",
        "--user", f"{USER}:{PASSWORD}", "--realm", REALM, "--data-dir", str(data_dir),
        "--turn-port", str(TURN_PORT), "--turns-port", "0", "--api-port", "0",
        "--relay-ports", f"{low}-{high}", "--max-allocations-per-user", "100000",
        "--workers", "1",
    ]  # fmt: skip
    return [*command, "--offload", "xdp"] if name == "passage-xdp" else command


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant (a ``--workers N`` server's workers)."""
    return sum(cpu_seconds(each) for each in [pid, *descendants(pid)])


def kernel_thread_cpu() -> float:
    """CPU seconds of every ksoftirqd and napi kernel thread."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as comm:
                name = comm.read().strip()
            if _KERNEL_THREADS.match(name):
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue
    return total


def _answers(port: int) -> bool:
    transaction = os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(0.2)
        try:
            udp.sendto(struct.pack("!HHI", 1, 0, 0x2112A442) + transaction, (SERVER_IP, port))
            return udp.recv(2048)[8:20] == transaction
        except OSError:
            return False


@contextmanager
def running(lab: Lab, name: str, work: Path, client: Host) -> Iterator[subprocess.Popen[bytes]]:
    data_dir = work / name
    data_dir.mkdir(parents=True, exist_ok=True)
    with (work / f"{name}.log").open("ab") as log:
        process = lab.popen(lab.server, server_command(name, data_dir), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not lab.call(client, _answers, TURN_PORT):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {work / f'{name}.log'}")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Run:
    result: UclientResult
    server: float
    load: float
    peer: float
    kernel: float

    @property
    def total(self) -> float:
        return self.server + self.load + self.peer + self.kernel


def measure(lab: Lab, name: str, client: Host, peer_pid: int, flags: list[str], work: Path) -> Run:
    with running(lab, name, work, client) as server:
        time.sleep(0.5)  # start-up is not counted
        load0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        before = (tree_cpu(server.pid), cpu_seconds(peer_pid), kernel_thread_cpu())
        command = [
            "turnutils_uclient", "-u", USER, "-w", PASSWORD, "-e", "203.0.113.21",
            "-r", str(PEER_PORT), *flags, "-p", str(TURN_PORT), SERVER_IP,
        ]  # fmt: skip
        done = lab.run(client, command, check=False, timeout=300)
        after = (tree_cpu(server.pid), cpu_seconds(peer_pid), kernel_thread_cpu())
        load1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = done.stdout + done.stderr
    with (work / "uclient.log").open("a") as log:
        log.write(f"== {name}\n{output}\n")
    counters = _COUNTERS.findall(output)
    sent, received = (int(counters[-1][0]), int(counters[-1][1])) if counters else (0, 0)
    loss = _LOSS.search(output)
    status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
    result = UclientResult(sent, received, float(loss.group(2)) if loss else None, status)
    load = load1.ru_utime + load1.ru_stime - load0.ru_utime - load0.ru_stime
    return Run(result, after[0] - before[0], load, after[1] - before[1], after[2] - before[2])


@dataclass(frozen=True)
class ProgramCost:
    relayed: float
    """ns per 160-byte packet relayed, both directions alternating (``repeat`` runs)."""
    passed: float
    """ns per UDP datagram of no channel, passed to userspace (``bpftool prog run``, repeat)."""


def program_cost(runs: int) -> ProgramCost:
    """The program alone, on frames of installed channels, through BPF_PROG_TEST_RUN.

    A test run with ``repeat`` reruns the program on the frame it has just
    rewritten. So a second channel is installed whose peer side matches the
    frame the first one sends to its peer, and wraps it back into the first
    one's ChannelData from the client: the frame goes back and forth, relayed
    client → peer then peer → client, and the kernel's mean over ``runs`` is the
    program's time per relayed packet, both directions alike. A frame of no
    channel is unchanged by the program, and ``bpftool prog run`` times it.
    """
    from packets import channel_data, udp_frame

    from passage.offload.maps import ChannelPath, Neighbour
    from passage.offload.xdp.program import XdpProgram

    program = XdpProgram()
    try:
        client, listener = ("198.51.100.2", 40000), (SERVER_IP, 3478)
        relay, peer = (SERVER_IP, 50000), ("203.0.113.21", 6000)
        program.install(ChannelPath(client, listener, relay, peer, 0x4001), 0)
        # Its peer side is the first channel's packet to the peer; it wraps it back.
        program.install(ChannelPath(listener, client, peer, relay, 0x4001), 1)
        hop = Neighbour(1, 1500, b"\x02" * 6, b"\x04" * 6)
        for ip in (client[0], peer[0], SERVER_IP):
            program.set_neighbour(ip, hop)
        frame = udp_frame(client, listener, channel_data(0x4001, bytes(160)))
        _, frame, _ = program.test_run(frame, repeat=2)  # as the program writes it
        verdict, out, _ = program.test_run(frame, repeat=2)
        assert verdict == 3 and out == frame, (verdict, out.hex())  # XDP_TX, back where it began
        verdict, _, relayed = program.test_run(frame, repeat=runs)
        assert verdict == 3, verdict
        other = udp_frame(("198.51.100.9", 5000), (SERVER_IP, 50001), bytes(160))
        with tempfile.NamedTemporaryFile() as data:
            data.write(other)
            data.flush()
            out_text = subprocess.run(
                ["bpftool", "prog", "run", "id", str(program_id(program.fd)),
                 "data_in", data.name, "repeat", str(runs)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        match = re.search(r"duration \(average\): (\d+)ns", out_text)
        assert match and "Return value: 2" in out_text, out_text
        return ProgramCost(float(relayed), float(match[1]))
    finally:
        program.close()


def program_id(fd: int) -> int:
    from passage.offload.xdp import libbpf

    info = ctypes.create_string_buffer(libbpf.PROG_INFO_SIZE)
    size = ctypes.c_uint32(libbpf.PROG_INFO_SIZE)
    libbpf.check(libbpf.call("bpf_obj_get_info_by_fd")(fd, info, ctypes.byref(size)), "info")
    return int(struct.unpack_from("=I", info.raw, 4)[0])


def per_million(seconds: float, packets: int) -> float:
    return seconds / packets * 1e6 if packets else float("nan")


def spread(values: Sequence[float]) -> str:
    median = f"{statistics.median(values):.2f}"
    return median if len(values) < 2 else f"{median} [{min(values):.2f}–{max(values):.2f}]"


def report(runs: dict[str, list[Run]], arguments: argparse.Namespace, program: ProgramCost) -> str:
    flags = " ".join(arguments.flags)
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs, Linux "
        f"{platform.release()}; `turnutils_uclient {flags}`; repetitions {arguments.repeat} "
        "(median [min–max]); CPU seconds per 1 M relayed packets (= µs/pkt).",
        "",
        "| server | relayed pkts/run | loss % (worst) | **server** | load generator | peer "
        "| ksoftirqd/napi | **total** | server/coturn | total/coturn |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[str, tuple[float, float]] = {}
    for name in SERVERS:
        done = runs.get(name, [])
        if not done:
            continue

        def cost(part: str, done: list[Run] = done) -> list[float]:
            return [per_million(getattr(r, part), r.result.relayed) for r in done]

        medians[name] = (statistics.median(cost("server")), statistics.median(cost("total")))
        base = medians.get("coturn")
        ratios = [f"{medians[name][i] / base[i]:.2f}×" for i in (0, 1)] if base else ["–", "–"]
        losses = [r.result.loss_percent for r in done if r.result.loss_percent is not None]
        lines.append(
            f"| {name} | {statistics.median(r.result.relayed for r in done):,.0f} "
            f"| {max(losses) if losses else '–'} | **{spread(cost('server'))}** "
            f"| {spread(cost('load'))} | {spread(cost('peer'))} | {spread(cost('kernel'))} "
            f"| **{spread(cost('total'))}** | {ratios[0]} | {ratios[1]} |"
        )
    lines += [
        "",
        f"The XDP program alone (BPF_PROG_TEST_RUN, JIT, repeat {arguments.prog_runs:,}): "
        f"{program.relayed:.0f} ns per 160-byte packet relayed (client → peer and peer → client "
        f"alternating); {program.passed:.0f} ns per UDP datagram of no channel, passed to "
        "userspace.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--messages", type=int, default=5000, help="uclient -n")
    parser.add_argument("--prog-runs", type=int, default=1_000_000)
    parser.add_argument("--markdown", type=Path)
    arguments = parser.parse_args(argv)
    arguments.flags = ["-m", "50", "-n", str(arguments.messages), "-l", "160", "-z", "1"]
    names = [name for name in arguments.servers.split(",") if name]
    for tool in ("turnserver", "turnutils_uclient", "turnutils_peer", "bpftool", "ethtool"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (make system-deps)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="passage-offload-bench-"))
    runs: dict[str, list[Run]] = {}
    with Lab() as lab:
        client, echo = lab.add_host("client"), lab.add_host("echo")
        for host in (client, echo):
            lab.run(host, ["ethtool", "-K", "eth0", "tx", "off"])
        peer = lab.popen(
            echo, ["turnutils_peer", "-L", echo.ip, "-p", str(PEER_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)
        for repetition in range(arguments.repeat):
            order = names if repetition % 2 == 0 else list(reversed(names))
            for name in order:
                run = measure(lab, name, client, peer.pid, arguments.flags, work)
                runs.setdefault(name, []).append(run)
                print(
                    f"[{repetition + 1}/{arguments.repeat}] {name}: {run.result.status}, "
                    f"{run.result.relayed} pkts, loss {run.result.loss_percent}%, server "
                    f"{run.server:.2f} s, load {run.load:.2f} s, peer {run.peer:.2f} s, "
                    f"kernel threads {run.kernel:.2f} s",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
    cost = program_cost(arguments.prog_runs)
    text = report(runs, arguments, cost)
    print(text)
    if arguments.markdown is not None:
        arguments.markdown.write_text(text)
    print(f"logs in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

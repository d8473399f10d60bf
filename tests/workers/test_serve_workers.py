"""``passage serve --workers 2``: real worker processes behind one parent, real TURN clients
(``serve_workers`` says how a test knows which worker a client reached)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest
from serve_workers import (
    PAYLOAD,
    alive,
    clients,
    ledger,
    peer_port,
    place,
    relay_some,
    server_pid,
    uclient,
    worker_of,
    worker_pids,
)

from metrics_scrape import scrape_until
from passage.stun import MessageClass
from passage_server import free_port, passage_process
from turn_client import UdpPeer, error_code
from waiting import until

__all__ = ["peer_port"]  # a fixture

pytestmark = pytest.mark.timeout(120)


def test_offload_with_several_workers_is_refused_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "passage", "serve", "--data-dir", str(tmp_path / "d"),
         "--workers", "2", "--offload", "xdp"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "workers 2 with offload xdp" in lines[0] and "--workers 1" in lines[0]


def test_uclient_traffic_over_both_workers_is_in_the_ledger_exactly_once(
    tmp_path: Path, peer_port: int
) -> None:
    """UDP and TCP clients spread over two workers; the parent's one ledger writer counts
    every relayed byte once (RFC 8656 ChannelData, 160 B payloads)."""
    with passage_process(tmp_path, "--workers", "2", "--allow-loopback-peers") as (info, log):
        sent_udp, received_udp = uclient(info, peer_port)
        sent_tcp, received_tcp = uclient(info, peer_port, "-t")
        started = re.findall(r"\[worker (\d+)\]: allocation \S+ started", log.read_text())
        assert set(started) == {"1", "2"}, "the kernel put every client on one worker"
    rows = ledger(info)
    assert all(row["ended_at"] is not None for row in rows)
    assert sum(row["packets_to_peer"] for row in rows) == sent_udp + sent_tcp == 2000
    assert sum(row["packets_from_peer"] for row in rows) == received_udp + received_tcp
    assert sum(row["bytes_to_peer"] for row in rows) == 160 * (sent_udp + sent_tcp)
    assert sum(row["bytes_from_peer"] for row in rows) == 160 * (received_udp + received_tcp)


async def test_a_user_quota_holds_across_workers(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--workers", "2", "--max-allocations-per-user", "3") as (
        info,
        log,
    ):
        async with clients(info, 16) as opened:
            by_worker = await place(log, opened)
            one, two = by_worker[1], by_worker[2]
            assert len(one) >= 2 and len(two) >= 2, "too few clients on one worker"
            for client in (one[0], two[0], one[1]):
                assert (await client.allocate()).message_class is MessageClass.SUCCESS
            # Worker 2 holds one of alice's allocations: alone, it would allow two more.
            refused = await two[1].allocate()
            assert error_code(refused) == 486
            await one[0].refresh(0)  # a unit freed on worker 1 is worker 2's to take
            assert (await two[1].allocate()).message_class is MessageClass.SUCCESS


async def test_a_nonce_from_one_worker_holds_on_the_other(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--workers", "2") as (info, log):
        async with clients(info, 12) as opened:
            by_worker = await place(log, opened)
            first, second = by_worker[1][0], by_worker[2][0]
            second.core.nonce = first.core.nonce  # learnt from worker 1's challenge
            answer = await second.allocate(retry=False)
            assert answer.message_class is MessageClass.SUCCESS, error_code(answer)


async def test_kill_9_of_a_worker_loses_nothing_it_sent_and_the_parent_restarts_it(
    tmp_path: Path,
) -> None:
    with passage_process(
        tmp_path, "--workers", "2", "--allow-loopback-peers", "--max-allocations-per-user", "1"
    ) as (info, log):
        peer = await UdpPeer.bind()
        async with clients(info, 1) as (client,):
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            await relay_some(client, peer, 50)
            worker = worker_of(log, client.local[1])
            assert worker is not None
            pid = worker_pids(log)[worker - 1]
            await until(lambda: [r["packets_to_peer"] for r in ledger(info)] == [50])
            os.kill(pid, signal.SIGKILL)
            await until(
                lambda: f"worker {worker} (pid {pid}) was killed by SIGKILL" in log.read_text()
            )
            await until(lambda: ledger(info)[0]["ended_at"] is not None)
            (row,) = ledger(info)
            assert row["end_reason"] == "worker_restart"
            assert (row["packets_to_peer"], row["bytes_to_peer"]) == (50, 50 * len(PAYLOAD))
            assert row["ended_at"] == row["last_seen_at"]
            # Its quota is free, and the same 5-tuple reaches the new worker on the same socket:
            # the request waits in that socket until the new process (a Python start, under
            # whatever load the machine has) reads it.
            answer = await client.allocate(within=60)
            assert answer.message_class is MessageClass.SUCCESS
            await relay_some(client, peer, 5)
            assert (
                len(re.findall(rf"\[worker {worker}\]: allocation \S+ started", log.read_text()))
                == 2
            )
        await peer.close()


async def test_sigint_stops_every_worker_and_writes_their_last_usage(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--workers", "2", "--allow-loopback-peers") as (info, log):
        peer = await UdpPeer.bind()
        async with clients(info, 12) as opened:
            by_worker = await place(log, opened)
            for busy in (by_worker[1][0], by_worker[2][0]):
                assert (await busy.allocate()).message_class is MessageClass.SUCCESS
                await relay_some(busy, peer, 30)
        pids = worker_pids(log)
        await peer.close()
    # passage_process sent SIGINT and saw the parent exit 0: the workers are gone too.
    assert not [pid for pid in pids if alive(pid)]
    busy_rows = [row for row in ledger(info) if row["end_reason"] == "shutdown"]
    assert len(busy_rows) == 2
    assert [row["packets_to_peer"] for row in busy_rows] == [30, 30]


async def test_sigterm_drains_every_worker_then_stops_with_all_usage(tmp_path: Path) -> None:
    """SIGTERM: new Allocates are refused on every worker (403 without --alternate-server),
    live ones carry on; once they end the parent stops the workers and exits 0."""
    with passage_process(tmp_path, "--workers", "2", "--allow-loopback-peers") as (info, log):
        peer = await UdpPeer.bind()
        async with clients(info, 12) as opened:
            by_worker = await place(log, opened)
            busy = [by_worker[1][0], by_worker[2][0]]
            for client in busy:
                assert (await client.allocate()).message_class is MessageClass.SUCCESS
            parent = server_pid(info)
            os.kill(parent, signal.SIGTERM)
            await until(lambda: "draining (SIGTERM)" in log.read_text())
            # The parent says it drains as it tells the workers; each says when it heard.
            await until(lambda: len(re.findall(r"\[worker \d\]: draining", log.read_text())) == 2)
            for late in (by_worker[1][1], by_worker[2][1]):  # one on each worker
                assert error_code(await late.allocate()) == 403
            for client in busy:  # live allocations relay during the drain
                await relay_some(client, peer, 30)
                await client.refresh(0)
            await until(lambda: not alive(parent), give_up_after=60)
        pids = worker_pids(log)
        await peer.close()
    assert not [pid for pid in pids if alive(pid)]
    ended = [row for row in ledger(info) if row["packets_to_peer"]]
    assert [(row["end_reason"], row["packets_to_peer"]) for row in ended] == [
        ("refresh_zero", 30)
    ] * 2


async def test_metrics_sum_every_worker_s_turn_counters(tmp_path: Path) -> None:
    metrics_port = free_port((socket.SOCK_STREAM,))
    with passage_process(
        tmp_path, "--workers", "2", "--allow-loopback-peers", "--metrics-port", str(metrics_port)
    ) as (info, log):
        peer = await UdpPeer.bind()
        async with clients(info, 12) as opened, aiohttp.ClientSession() as session:
            by_worker = await place(log, opened)
            for busy in (by_worker[1][0], by_worker[2][0]):
                assert (await busy.allocate()).message_class is MessageClass.SUCCESS
                await relay_some(busy, peer, 10)
            base = f"http://{info.host}:{metrics_port}"
            labels = {"direction": "to_peer", "transport": "udp"}
            found = await scrape_until(
                session,
                base,
                lambda s: (
                    s.value("passage_turn_relayed_bytes_total", **labels) == 2 * 10 * len(PAYLOAD)
                ),
            )
            assert found.value("passage_turn_allocations", transport="udp", family="ipv4") == 2
            assert found.value("passage_turn_channels") == 2
            started = found.value("passage_turn_allocations_started_total", transport="udp")
            assert started == len(opened) + 2  # the placements and the two busy ones
        await peer.close()


async def test_metrics_counters_never_go_back_when_a_worker_is_killed(tmp_path: Path) -> None:
    """``kill -9`` of a worker after traffic: its successor counts from zero, and the
    parent adds what the dead one had reported, so no counter reads as a reset."""
    metrics_port = free_port((socket.SOCK_STREAM,))
    with passage_process(
        tmp_path, "--workers", "2", "--allow-loopback-peers", "--metrics-port", str(metrics_port)
    ) as (info, log):
        peer = await UdpPeer.bind()
        async with clients(info, 12) as opened, aiohttp.ClientSession() as session:
            by_worker = await place(log, opened)
            busy = by_worker[1][0]
            assert (await busy.allocate()).message_class is MessageClass.SUCCESS
            await relay_some(busy, peer, 10)
            base = f"http://{info.host}:{metrics_port}"
            labels = {"direction": "to_peer", "transport": "udp"}
            before = await scrape_until(  # both workers have reported it all
                session,
                base,
                lambda s: (
                    s.value("passage_turn_relayed_bytes_total", **labels) == 10 * len(PAYLOAD)
                    and s.value("passage_turn_allocations_started_total", transport="udp")
                    == len(opened) + 1
                ),
            )
            pid = worker_pids(log)[0]
            os.kill(pid, signal.SIGKILL)
            await until(lambda: f"worker 1 (pid {pid}) was killed by SIGKILL" in log.read_text())
            # The same 5-tuple reaches the restarted worker, which reports again.
            assert (await busy.allocate(within=60)).message_class is MessageClass.SUCCESS
            after = await scrape_until(  # the old one's report went with it
                session,
                base,
                lambda s: s.value("passage_turn_allocations", transport="udp", family="ipv4") == 1,
            )
        await peer.close()
    monotonic = {"counter", "histogram"}
    went_back = {
        key: (value, after.samples.get(key, 0.0))
        for key, value in before.samples.items()
        if key[0].startswith("passage_")
        and not key[0].endswith("_created")
        and before.types.get(_family(key[0], before.types)) in monotonic
        and after.samples.get(key, 0.0) < value
    }
    assert not went_back, went_back
    assert after.value("passage_turn_allocations_started_total", transport="udp") == len(opened) + 2
    assert after.value("passage_turn_relayed_bytes_total", **labels) == 10 * len(PAYLOAD)


def _family(sample: str, types: Mapping[str, str]) -> str:
    """The family a sample belongs to: its name less a counter's or histogram's suffix."""
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in types:
            return sample[: -len(suffix)]
    return sample

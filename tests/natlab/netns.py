"""Named network namespaces: create, configure, enter, and delete them.

The lab never touches the root namespace's network configuration. Every
command here runs *inside* a lab namespace: ``ip -n NS ...`` for links and
addresses (a veth pair is created from inside one namespace with its peer
placed straight into another, so neither end ever exists in the root
namespace), ``ip netns exec NS ...`` for sysctls, nftables and programs.

Names carry the creating process's pid and a random tag,
``pnl<pid>-<tag>-<node>``, so that concurrent test processes and CI runs on one
machine never collide, and :func:`remove_stale` can tell a namespace left by a
killed run (its pid is gone) from one in use.

:func:`call_in` runs a Python callable inside a namespace without a new
process: a fresh thread joins the namespace with ``setns(2)`` and runs it.
Sockets keep the namespace they were created in, so a socket made there can
then be used from any thread or event loop of the test process.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import inspect
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

T = TypeVar("T")

PREFIX = "pnl"
"""Every lab namespace name starts with this ("Passage NAT lab")."""

NETNS_DIR = Path("/run/netns")
"""Where ``ip netns add`` pins named namespaces."""

_NAME = re.compile(rf"^{PREFIX}(\d+)-([0-9a-f]+)-")
_NODE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_CLONE_NEWNET = 0x40000000  # <sched.h>; os.setns arrives only in Python 3.12
_COMMAND_TIMEOUT = 30.0
"""Seconds any one configuration command may take before the lab gives up on it."""


class LabError(RuntimeError):
    """A lab command failed; the message has the command and its output."""


class LabUnavailable(LabError):
    """This machine cannot build the lab (no network namespaces, no ``nft``)."""


def tool(name: str) -> str:
    """The path of ``ip`` or ``nft``: on PATH, or in the sbin directories root's PATH has."""
    for found in (shutil.which(name), f"/usr/sbin/{name}", f"/sbin/{name}"):
        if found and os.access(found, os.X_OK):
            return found
    raise LabUnavailable(f"network namespaces unavailable: `{name}` is not installed")


def new_tag() -> str:
    """The ``pnl<pid>-<tag>`` stem of one lab's namespace names."""
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"


def check_node_name(name: str) -> str:
    """``name`` if it can name a lab node (lower case, digits, dashes, at most 20)."""
    if not _NODE.match(name):
        raise ValueError(f"node name {name!r}: use [a-z][a-z0-9-]*, at most 20 characters")
    return name


def run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = _COMMAND_TIMEOUT) -> str:
    """Run a configuration command; its stdout, or :class:`LabError` with its output."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        shown = " ".join(argv) + (f" <<< {stdin.strip()!r}" if stdin else "")
        raise LabError(f"{shown} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def add(netns: str) -> None:
    """Create the named namespace and bring its loopback up (it starts down)."""
    ip = tool("ip")
    run([ip, "netns", "add", netns])
    run([ip, "-n", netns, "link", "set", "lo", "up"])


def ip_batch(netns: str, commands: Sequence[str]) -> None:
    """Run ``ip`` commands (without the leading ``ip``) inside ``netns``, in one process."""
    if commands:
        run([tool("ip"), "-n", netns, "-batch", "-"], stdin="\n".join(commands) + "\n")


def exec_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (``ip netns exec`` execs it: same pid, same signals)."""
    return [tool("ip"), "netns", "exec", netns, *argv]


def sysctl(netns: str, settings: dict[str, str]) -> None:
    """Write ``/proc/sys/net/...`` settings of ``netns``; a missing key is skipped.

    Written by a shell inside the namespace, so the root namespace's values are
    never the ones touched.
    """
    script = "".join(
        f'[ ! -e "{path}" ] || printf %s "{value}" > "{path}" || exit 1\n'
        for key, value in settings.items()
        for path in ["/proc/sys/" + key.replace(".", "/")]
    )
    run(exec_argv(netns, ["sh", "-ec", script]))


def nft(netns: str, ruleset: str) -> None:
    """Load an nftables ruleset (``nft -f -``) into ``netns``."""
    run(exec_argv(netns, [tool("nft"), "-f", "-"]), stdin=ruleset)


def pids(netns: str) -> list[int]:
    """Processes whose network namespace is ``netns``."""
    try:
        out = run([tool("ip"), "netns", "pids", netns])
    except LabError:
        return []
    return [int(word) for word in out.split()]


def delete(netns: str) -> None:
    """Kill what still runs in ``netns``, then delete it (its veths go with it)."""
    for pid in pids(netns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if (NETNS_DIR / netns).exists():
        run([tool("ip"), "netns", "delete", netns])


def listed() -> list[str]:
    """Every named network namespace on the machine."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in NETNS_DIR.iterdir())


def ours(tag: str) -> list[str]:
    """The namespaces of the lab whose names start ``tag``."""
    return [name for name in listed() if name.startswith(tag + "-")]


def remove_stale() -> list[str]:
    """Delete lab namespaces whose creating process is gone; the names deleted.

    A killed test run cannot tear its lab down; the next lab cleans up after it.
    A namespace whose pid is still alive belongs to a running lab and is kept.
    """
    removed = []
    for name in listed():
        match = _NAME.match(name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            try:
                delete(name)
            except LabError:
                continue  # another process cleaning up at the same moment got it first
            removed.append(name)
    return removed


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _enter(netns: str) -> None:
    """Move the calling *thread* into ``netns`` (setns(2) acts per thread)."""
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def _in_thread(
    netns: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    done: Callable[[Any, BaseException | None], None],
) -> None:
    def body() -> None:
        try:
            _enter(netns)
            result = fn(*args)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        except BaseException as exc:  # handed to the caller, who re-raises it
            done(None, exc)
        else:
            done(result, None)

    # A fresh thread every time, never a pool's: a thread that has joined a
    # namespace must not go back to running the test process's other work.
    threading.Thread(target=body, name=f"netns:{netns}", daemon=True).start()


@overload
def call_in(
    netns: str, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, timeout: float | None = ...
) -> T: ...
@overload
def call_in(netns: str, fn: Callable[..., T], *args: Any, timeout: float | None = ...) -> T: ...
def call_in(netns: str, fn: Callable[..., Any], *args: Any, timeout: float | None = 60.0) -> Any:
    """``fn(*args)`` run by a new thread inside ``netns``; its result or its exception.

    A coroutine function's coroutine is run to completion with ``asyncio.run``
    in that thread, so every socket its event loop makes is in ``netns``.
    """
    finished = threading.Event()
    outcome: list[Any] = []

    def done(result: Any, error: BaseException | None) -> None:
        outcome.extend([result, error])
        finished.set()

    _in_thread(netns, fn, args, done)
    if not finished.wait(timeout):
        raise TimeoutError(f"{getattr(fn, '__name__', fn)} in {netns} ran over {timeout} s")
    result, error = outcome
    if error is not None:
        raise error
    return result


@overload
async def acall_in(netns: str, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T: ...
@overload
async def acall_in(netns: str, fn: Callable[..., T], *args: Any) -> T: ...
async def acall_in(netns: str, fn: Callable[..., Any], *args: Any) -> Any:
    """:func:`call_in` for async tests: awaits the thread without blocking the caller's loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def done(result: Any, error: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the caller's loop closed first (its test was cancelled): nobody waits

    _in_thread(netns, fn, args, done)
    return await future

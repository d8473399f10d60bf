"""The lab: a small internet of network namespaces, built up node by node, torn down whole.

::

    public hosts 203.0.113.20+    server 203.0.113.10, .11
                  └── bridge "dc" ──┘
           internet router: 203.0.113.1, 198.51.100.1
                  ┌── bridge "isp" ─┐
    site router WAN 198.51.100.2    198.51.100.3 ...
          bridge "lan" 10.1.0.1/24  10.2.0.1/24
          hosts 10.1.0.2, .3 ...    10.2.0.2 ...

The internet namespace routes between its two segments and knows no other
address: a packet for anything outside the lab dies there (no route), so lab
traffic never leaves the lab. Every namespace has a default route towards it.

Build it with :class:`Lab` as a context manager, then :meth:`Lab.add_site` and
:meth:`Lab.add_host`, or with a preset from :mod:`natlab.presets`. Run things in
a node with :meth:`Lab.run`, :meth:`Lab.popen`, :meth:`Lab.python` (processes)
or :meth:`Lab.call`, :meth:`Lab.acall`, :meth:`Lab.socket` (threads of the test
process that join the node's namespace).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from natlab import netns
from natlab.nat import COUNTERS, Firewall, Nat, ruleset

if TYPE_CHECKING:
    from natlab.serve import LabPassage

T = TypeVar("T")

DC = ipaddress.IPv4Network("203.0.113.0/24")
"""The data-centre segment: Passage and the public hosts (RFC 5737 TEST-NET-3)."""
ACCESS = ipaddress.IPv4Network("198.51.100.0/24")
"""The access segment: the site routers' WAN addresses (RFC 5737 TEST-NET-2)."""
INTERNET_RANGES = (str(DC), str(ACCESS))
"""Every address on the lab's internet; Passage must be let relay to them."""

ROUTER_IP = "203.0.113.1"
"""The internet router on the data-centre segment (and ``198.51.100.1`` on access)."""
SERVER_IP = "203.0.113.10"
"""Passage's primary address."""
SERVER_ALT_IP = "203.0.113.11"
"""Passage's second address, for RFC 5780 (``--alt-ip``) and two-server tests."""

_FIRST_PUBLIC_HOST = 20
_FIRST_SITE_WAN = 2
_TESTS_DIR = Path(__file__).resolve().parent.parent
_STOP_WAIT = 5.0
"""Seconds a process gets to exit on SIGTERM before it is killed."""


@dataclass(frozen=True)
class Node:
    """One namespace of the lab."""

    name: str
    """The name the test gave it."""
    netns: str
    """The namespace's name (``ip netns exec <netns>``)."""
    ip: str
    """The address others reach it at."""


@dataclass(frozen=True)
class Site(Node):
    """A site: its router (a NAT box, maybe a firewall) and the LAN behind it.

    :attr:`ip` is the router's WAN address, the address the site's flows leave with.
    """

    lan: ipaddress.IPv4Network
    """The LAN behind the router, 10.N.0.0/24 unless told otherwise."""
    gateway: str
    """The router's address on the LAN (the hosts' default route)."""
    nat: Nat
    firewall: Firewall


@dataclass(frozen=True)
class Host(Node):
    """An end host: on a site's LAN, or a public host on the data-centre segment."""

    site: Site | None
    """Where it sits; ``None`` for a public host."""


@dataclass(frozen=True)
class Server(Node):
    """The server namespace, with two addresses: :attr:`ip` and :attr:`alt_ip`."""

    alt_ip: str


@dataclass
class _Plan:
    """Addresses and interface names handed out so far."""

    ports: int = 0
    sites: int = 0
    public_hosts: int = 0
    lan_hosts: dict[str, int] = field(default_factory=dict)

    def port(self, kind: str) -> str:
        self.ports += 1
        return f"{kind}{self.ports}"


class Lab(AbstractContextManager["Lab"]):
    """A test internet: the internet router, the server namespace, then sites and hosts.

    Entering it (or :meth:`start`) checks that this machine can build it
    (:class:`~natlab.netns.LabUnavailable` otherwise), removes namespaces left
    by killed runs, and builds the internet and :attr:`server`. Leaving it (or
    :meth:`close`) stops every process started in it and deletes every
    namespace, whatever happened inside.
    """

    def __init__(self) -> None:
        self.tag = netns.new_tag()
        """The ``pnl<pid>-<tag>`` stem of this lab's namespace names."""
        self.sites: dict[str, Site] = {}
        self.hosts: dict[str, Host] = {}
        self._names: set[str] = set()
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._sockets: list[socket.socket] = []
        self._plan = _Plan()
        self._internet: Node | None = None
        self._server: Server | None = None

    # -- building ----------------------------------------------------------------

    def start(self) -> Lab:
        from natlab.availability import require

        if self._namespaces:
            raise netns.LabError("the lab is started already")
        require()
        netns.remove_stale()
        try:
            self._internet = self._build_internet()
            self._server = self._build_server()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def internet(self) -> Node:
        """The internet router (``203.0.113.1`` and ``198.51.100.1``)."""
        assert self._internet is not None, "the lab is not started"
        return self._internet

    @property
    def server(self) -> Server:
        """Where Passage runs: ``203.0.113.10`` and ``203.0.113.11`` on the data-centre segment."""
        assert self._server is not None, "the lab is not started"
        return self._server

    def _new_namespace(self, name: str) -> str:
        name = netns.check_node_name(name)
        if name in self._names:
            raise ValueError(f"the lab already has a node named {name!r}")
        self._names.add(name)
        full = f"{self.tag}-{name}"
        self._namespaces.append(full)  # before creating it: close() must find it
        netns.add(full)
        return full

    def _build_internet(self) -> Node:
        inet = self._new_namespace("internet")
        netns.ip_batch(inet, [
            "link add name dc type bridge", f"addr add {ROUTER_IP}/{DC.prefixlen} dev dc",
            "link set dc up",
            "link add name isp type bridge", f"addr add {ACCESS[1]}/{ACCESS.prefixlen} dev isp",
            "link set isp up",
        ])  # fmt: skip
        # A switch is a switch: bridged frames skip the namespace's netfilter hooks.
        netns.sysctl(inet, {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "0"})
        return Node("internet", inet, ROUTER_IP)

    def _attach(
        self,
        node_ns: str,
        ips: Sequence[str],
        prefix: int,
        gateway: str,
        switch_ns: str,
        bridge: str,
        device: str = "eth0",
    ) -> None:
        """A veth from ``node_ns`` (``device``, addresses ``ips``, default route via
        ``gateway``) to a port of ``bridge`` in ``switch_ns``."""
        port = self._plan.port("p" if bridge in ("dc", "isp") else "h")
        netns.ip_batch(node_ns, [
            f"link add name {device} type veth peer name {port} netns {switch_ns}",
            *(f"addr add {ip}/{prefix} dev {device}" for ip in ips),
            f"link set {device} up",
        ])  # fmt: skip
        netns.ip_batch(switch_ns, [f"link set {port} master {bridge}", f"link set {port} up"])
        netns.ip_batch(node_ns, [f"route add default via {gateway}"])

    def _build_server(self) -> Server:
        ns = self._new_namespace("server")
        self._attach(
            ns, [SERVER_IP, SERVER_ALT_IP], DC.prefixlen, ROUTER_IP, self.internet.netns, "dc"
        )
        return Server("server", ns, SERVER_IP, SERVER_ALT_IP)

    def add_site(
        self,
        name: str,
        nat: Nat = Nat.ENDPOINT_INDEPENDENT,
        firewall: Firewall = Firewall.NONE,
        *,
        lan: str | None = None,
    ) -> Site:
        """A site router named ``name``, with a WAN address on 198.51.100.0/24 and a LAN.

        ``lan`` is a /24 (or any prefix) in CIDR; by default site N gets
        10.N.0.0/24. Two sites may be given the same LAN, as real homes have.
        """
        ns = self._new_namespace(name)
        self._plan.sites += 1
        network = ipaddress.IPv4Network(lan or f"10.{self._plan.sites}.0.0/24")
        wan = str(ACCESS[_FIRST_SITE_WAN + self._plan.sites - 1])
        gateway = str(network[1])
        self._attach(ns, [wan], ACCESS.prefixlen, str(ACCESS[1]), self.internet.netns, "isp", "wan")
        netns.ip_batch(ns, [
            "link add name lan type bridge", f"addr add {gateway}/{network.prefixlen} dev lan",
            "link set lan up",
        ])  # fmt: skip
        netns.sysctl(ns, {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "0"})
        netns.nft(ns, ruleset(nat, firewall))
        site = Site(name, ns, wan, network, gateway, nat, firewall)
        self.sites[name] = site
        return site

    def add_host(self, name: str, site: Site | None = None) -> Host:
        """A host on ``site``'s LAN (10.N.0.2 onwards), or a public host (203.0.113.20 onwards)."""
        ns = self._new_namespace(name)
        if site is None:
            ip = str(DC[_FIRST_PUBLIC_HOST + self._plan.public_hosts])
            self._plan.public_hosts += 1
            self._attach(ns, [ip], DC.prefixlen, ROUTER_IP, self.internet.netns, "dc")
        else:
            index = self._plan.lan_hosts.get(site.name, 0)
            self._plan.lan_hosts[site.name] = index + 1
            ip = str(site.lan[2 + index])
            self._attach(ns, [ip], site.lan.prefixlen, site.gateway, site.netns, "lan")
        host = Host(name, ns, ip, site)
        self.hosts[name] = host
        return host

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this lab has made and not yet deleted."""
        return list(self._namespaces)

    # -- running things in a node ----------------------------------------------------

    def argv(self, node: Node, argv: Sequence[str]) -> list[str]:
        """``argv`` as a command line that runs it inside ``node``."""
        return netns.exec_argv(node.netns, argv)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment, plus ``tests/`` on PYTHONPATH (for ``-m natlab...``)."""
        path = os.pathsep.join(p for p in [str(_TESTS_DIR), os.environ.get("PYTHONPATH")] if p)
        return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", **(extra or {}))

    def run(
        self, node: Node, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``argv`` in ``node`` to completion; output captured as text unless told otherwise."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("env", self.env())
        return subprocess.run(
            self.argv(node, argv), check=check, timeout=timeout, text=True, **kwargs
        )

    def popen(self, node: Node, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``node``; the lab stops it on close if it still runs."""
        kwargs.setdefault("env", self.env())
        process: subprocess.Popen[Any] = subprocess.Popen(self.argv(node, argv), **kwargs)
        self._processes.append(process)
        return process

    def python(self, node: Node, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """This interpreter (with Passage and ``tests/`` importable) started in ``node``."""
        return self.popen(node, [sys.executable, *args], **kwargs)

    @overload
    def call(
        self,
        node: Node,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        timeout: float = ...,
    ) -> T: ...
    @overload
    def call(self, node: Node, fn: Callable[..., T], *args: Any, timeout: float = ...) -> T: ...
    def call(self, node: Node, fn: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
        """``fn(*args)`` in a new thread inside ``node``'s namespace; returns its result.

        If ``fn`` returns a coroutine, it runs to completion in its own event
        loop in that thread, so all the sockets it opens belong to ``node``.
        """
        return netns.call_in(node.netns, fn, *args, timeout=timeout)

    @overload
    async def acall(
        self, node: Node, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> T: ...
    @overload
    async def acall(self, node: Node, fn: Callable[..., T], *args: Any) -> T: ...
    async def acall(self, node: Node, fn: Callable[..., Any], *args: Any) -> Any:
        """:meth:`call` for async tests: the caller's event loop keeps running meanwhile."""
        return await netns.acall_in(node.netns, fn, *args)

    def socket(
        self, node: Node, kind: int = socket.SOCK_DGRAM, family: int = socket.AF_INET
    ) -> socket.socket:
        """A socket in ``node``'s namespace, usable from any thread or event loop here.

        The lab closes it on close unless it is closed before.

        For asyncio: ``loop.create_datagram_endpoint(..., sock=s)``,
        ``asyncio.open_connection(sock=s)`` after ``await loop.sock_connect(s, addr)``.
        """
        sock = self.call(node, socket.socket, family, kind)
        self._sockets.append(sock)  # closed with the lab, if the test has not closed it
        return sock

    def reflector(
        self,
        node: Node,
        udp: Sequence[tuple[str, int]] = (),
        tcp: Sequence[tuple[str, int]] = (),
    ) -> subprocess.Popen[str]:
        """A what-you-see server (:mod:`natlab.reflector`) running in ``node``, ready."""
        from natlab.reflector import start

        return start(self, node, udp, tcp)

    def passage(
        self, data_dir: Path, *extra_args: str, **options: Any
    ) -> AbstractContextManager[LabPassage]:
        """``passage serve`` in :attr:`server` (see :func:`natlab.serve.serve`)."""
        from natlab.serve import serve

        return serve(self, data_dir, *extra_args, **options)

    def counters(self, site: Site) -> dict[str, int]:
        """Packets counted by ``site``'s named nftables counters (:data:`natlab.nat.COUNTERS`)."""
        out = self.run(site, [netns.tool("nft"), "-j", "list", "counters", "table", "ip", "natlab"])
        found = {
            item["counter"]["name"]: int(item["counter"]["packets"])
            for item in json.loads(out.stdout)["nftables"]
            if "counter" in item
        }
        return {name: found[name] for name in COUNTERS}

    # -- tearing down --------------------------------------------------------------

    def close(self) -> None:
        """Stop the lab's processes and delete its namespaces; safe to call twice.

        Every step is tried even if one fails; the first failure is raised last.
        """
        errors: list[BaseException] = []
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        for process in self._stop_processes():
            errors.append(netns.LabError(f"process {process.args!r} did not exit"))
        for name in reversed(self._namespaces):
            try:
                netns.delete(name)
            except netns.LabError as exc:
                errors.append(exc)
        self._namespaces = [name for name in self._namespaces if (netns.NETNS_DIR / name).exists()]
        if errors:
            raise errors[0]

    def _stop_processes(self) -> Iterator[subprocess.Popen[Any]]:
        running = [p for p in self._processes if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=_STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                try:
                    process.wait(timeout=_STOP_WAIT)
                except subprocess.TimeoutExpired:
                    yield process
        for process in self._processes:
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        self._processes.clear()

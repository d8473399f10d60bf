"""RFC 5780 NAT behaviour discovery over real UDP sockets, around ``passage.stun.discovery``.

Two sockets, run side by side, each bound to the address the host routes
to the server from (so the report can tell "no NAT" from a NAT):

- mapping (RFC 5780 §4.3): test I to the primary address, test II to the
  server's other IP on the primary port, test III to the other IP and port
  when II mapped differently;
- filtering (§4.4), on a socket with no earlier traffic (§4.1): test I, then
  test II (change IP and port) and test III (change port) at once. An
  answer counts only if it really came from the address the change asks for
  (the datagram's source, not RESPONSE-ORIGIN). Sending III before II is
  answered changes nothing the NAT keeps: both go to the primary address,
  which test I already opened.

Requests are sent again as RFC 8489 §6.2.1 says (RTO 500 ms, doubling) until
``within`` seconds pass; a filtering probe that gets no answer waits that
long, so the probes of one socket run concurrently.
"""

from __future__ import annotations

import asyncio
import os
import socket

from passage.addresses import Address
from passage.stun.discovery import (
    BindingResult,
    FilteringBehavior,
    MappingBehavior,
    binding_request,
    filtering_behavior,
    mapping_behavior,
    read_binding_response,
)
from passage.turnclient import ClientTransactions

from ..report import NatReport

__all__ = ["discover_nat"]

NO_SECOND_ADDRESS = (
    "the server has no second address (no OTHER-ADDRESS; passage serve --alt-ip gives one)"
)

Answer = tuple[BindingResult, Address]
"""What a Binding request got back, and where the answer came from."""


class _Prober(asyncio.DatagramProtocol):
    """Binding requests from one unconnected UDP socket to any destination."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transactions = ClientTransactions(reliable=False)
        self._waiting: dict[bytes, tuple[Address, asyncio.Future[Answer | None]]] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def bound(cls, local_ip: str) -> _Prober:
        family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        prober = cls()
        prober._transport, _ = await prober._loop.create_datagram_endpoint(
            lambda: prober, local_addr=(local_ip, 0), family=family
        )
        return prober

    @property
    def local(self) -> Address:
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    async def probe(
        self,
        destination: Address,
        within: float,
        *,
        change_ip: bool = False,
        change_port: bool = False,
    ) -> Answer | None:
        """A Binding request to ``destination``; its answer and source, None if none came."""
        transaction_id = os.urandom(12)
        data = binding_request(transaction_id, change_ip=change_ip, change_port=change_port)
        future: asyncio.Future[Answer | None] = self._loop.create_future()
        self._waiting[transaction_id] = (destination, future)
        self._transactions.start(transaction_id, data, self._loop.time(), within)
        self._flush()
        try:
            return await future
        finally:
            self._waiting.pop(transaction_id, None)
            self._transactions.finish(transaction_id)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        transaction_id = data[8:20]  # the STUN header: type, length, cookie, then the ID
        waiting = self._waiting.get(transaction_id)
        result = read_binding_response(data, transaction_id) if waiting else None
        if waiting is None or result is None or waiting[1].done():
            return
        self._transactions.finish(transaction_id)
        waiting[1].set_result((result, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error: the probe times out, as if the packet were lost

    def _on_timer(self) -> None:
        self._timer = None
        for transaction_id in self._transactions.handle_timer(self._loop.time()):
            waiting = self._waiting.get(transaction_id)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result(None)
        self._flush()

    def _flush(self) -> None:
        assert self._transport is not None
        for transaction_id, data in self._transactions.take_outgoing():
            waiting = self._waiting.get(transaction_id)
            if waiting is not None:
                self._transport.sendto(data, waiting[0])
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self._transactions.get_timer()
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)


def route_ip(server: Address) -> str:
    """The local address this host sends to ``server`` from (a connected UDP socket sends
    nothing; it only asks the routing table). Raises OSError with no route."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(server)
        return str(sock.getsockname()[0])


async def discover_nat(server: Address, within: float) -> NatReport:
    """Run the mapping and filtering tests against ``server`` (an IP address and port)."""
    try:
        local_ip = route_ip(server)
    except OSError as exc:
        return NatReport(note=f"no route to the server ({exc.strerror or exc})")
    mapper, filterer = await _Prober.bound(local_ip), await _Prober.bound(local_ip)
    try:
        mapping, filtering = await asyncio.gather(
            _mapping(mapper, server, within), _filtering(filterer, server, within)
        )
    finally:
        mapper.close()
        filterer.close()
    first, behaviour, mapping_note = mapping
    if first is None:
        return NatReport(local=mapper.local, note=mapping_note)
    found, filtering_note = filtering
    notes = "; ".join(dict.fromkeys(n for n in (mapping_note, filtering_note) if n))
    return NatReport(
        local=mapper.local,
        mapped=first.mapped,
        other_address=first.other_address,
        mapping=behaviour,
        filtering=found,
        alg=first.alg_detected,
        note=notes,
    )


async def _mapping(
    prober: _Prober, server: Address, within: float
) -> tuple[BindingResult | None, MappingBehavior | None, str]:
    """RFC 5780 §4.3: (test I's result, the mapping behaviour, why it is unknown)."""
    answer = await prober.probe(server, within)
    if answer is None:
        return None, None, "no answer to a STUN Binding request over UDP"
    first = answer[0]
    if first.error is not None or first.mapped is None:
        return None, None, f"the server answered {_error(first)}"
    other = first.other_address
    if other is None:
        return first, None, NO_SECOND_ADDRESS
    second = await prober.probe((other[0], server[1]), within)
    if second is None or second[0].mapped is None:
        return first, None, "mapping: no answer from the server's second address"
    if second[0].mapped == first.mapped:
        return first, mapping_behavior(first.mapped, second[0].mapped), ""
    third = await prober.probe(other, within)
    if third is None or third[0].mapped is None:
        return first, None, "mapping: no answer from the server's other port"
    return first, mapping_behavior(first.mapped, second[0].mapped, third[0].mapped), ""


async def _filtering(
    prober: _Prober, server: Address, within: float
) -> tuple[FilteringBehavior | None, str]:
    """RFC 5780 §4.4: (the filtering behaviour, why it is unknown)."""
    answer = await prober.probe(server, within)
    if answer is None or answer[0].other_address is None:
        return None, ""  # the mapping test says why
    other = answer[0].other_address
    change_both, change_port = await asyncio.gather(
        prober.probe(server, within, change_ip=True, change_port=True),
        prober.probe(server, within, change_port=True),
    )
    for got in (change_both, change_port):
        if got is not None and got[0].error is not None:
            return None, f"filtering: the server answered {_error(got[0])}"
    if change_both is not None and change_both[1] != other:
        return None, "filtering: the server did not answer from its other address"
    if change_both is not None:
        return filtering_behavior(True), ""
    if change_port is not None and change_port[1] != (server[0], other[1]):
        return None, "filtering: the server did not answer from its other port"
    return filtering_behavior(False, change_port is not None), ""


def _error(result: BindingResult) -> str:
    if result.error is None:
        return "without a mapped address"
    return f"{result.error.code} {result.error.reason}".strip()

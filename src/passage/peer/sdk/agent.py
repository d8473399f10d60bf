"""Passage's ICE agent: aioice's ``Connection`` with several TURN servers and regular nomination.

aioice 0.13 (pinned: this builds on its check list) gives one TURN server per
connection and, as controlling agent, nominates aggressively (the first pair
that succeeds). :class:`IceAgent` changes three things:

- **Gathering.** Host and server-reflexive candidates as aioice gathers them,
  plus one relayed candidate per TURN server (UDP, TCP and TLS, each TLS port),
  with local preferences UDP > TCP > TLS (RFC 8445 §5.1.2.1) and a foundation
  per server, so the pair through the least constrained relay is preferred.
  Gathering ends when every server answered, or :attr:`GatherSettings.grace`
  after the first relayed candidate, or at :attr:`GatherSettings.timeout`: a
  firewall that drops UDP or a port makes those servers never answer.
- **Nomination.** Checks carry no USE-CANDIDATE; when
  :class:`~passage.peer.nomination.NominationPolicy` picks a pair, one more
  check with USE-CANDIDATE nominates it (regular nomination, RFC 8445 §8.1.1).
- **Triggered checks** on a pair whose check is in progress retransmit it at
  once (RFC 8445 §7.3.1.4 "SHOULD generate an immediate retransmit"; the same
  transaction, so a response to any copy completes it), where aioice waits for
  the next retransmission: two NATs' hole punching then completes a round trip
  after both sides have sent, not up to seconds later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice
from aioice import stun, turn
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import (
    CandidatePair,
    StunProtocol,
    candidate_pair_priority,
    server_reflexive_candidate,
)

from passage.addresses import Transport
from passage.peer.ice_servers import StunServer, TurnServer
from passage.peer.nomination import CheckState, Nominate, NominationPolicy, PairView
from passage.peer.path import Endpoint

__all__ = ["CheckSummary", "GatherSettings", "IceAgent"]

LOCAL_PREFERENCE = {Transport.UDP: 65535, Transport.TCP: 49151, Transport.TLS: 32767}
"""RFC 8445 §5.1.2.1 local preference of a relayed candidate, by how its TURN server is
reached; each further server of one transport gets one less."""

_OPEN = (CandidatePair.State.WAITING, CandidatePair.State.IN_PROGRESS)
"""States of a check that a refused permission ends."""

_STATES = {
    CandidatePair.State.FROZEN: CheckState.PENDING,
    CandidatePair.State.WAITING: CheckState.PENDING,
    CandidatePair.State.IN_PROGRESS: CheckState.PENDING,
    CandidatePair.State.SUCCEEDED: CheckState.SUCCEEDED,
    CandidatePair.State.FAILED: CheckState.FAILED,
}


@dataclass(frozen=True, slots=True)
class GatherSettings:
    timeout: float = 5.0
    """Seconds gathering may take at most."""
    grace: float = 1.0
    """Seconds to wait for the other servers once one relayed candidate is in."""


MAX_PROMPTED_RETRANSMITS = 3
"""Immediate retransmissions of one check that the peer's checks may prompt."""


@dataclass(slots=True)
class _InFlight:
    """A check whose transaction is running: its request, to retransmit when prompted."""

    request: stun.Message
    prompted: int = 0


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """One candidate pair and how its check went (for diagnostics and tests)."""

    local: Endpoint
    remote: Endpoint
    state: CheckState
    nominated: bool


# aioice 0.13 drops the attributes it has no entry for, and has none for the two of a
# 300 Try Alternate answer (RFC 8489 §14.15, §14.16): give it them, so _open_relay can
# follow a draining server to the one it names.
for _type, _name, _pack, _unpack in (
    (0x8023, "ALTERNATE-SERVER", stun.pack_address, stun.unpack_address),
    (0x8003, "ALTERNATE-DOMAIN", stun.pack_string, stun.unpack_string),
):
    _entry = (_type, _name, _pack, _unpack)
    stun.ATTRIBUTES_BY_TYPE.setdefault(_type, _entry)
    stun.ATTRIBUTES_BY_NAME.setdefault(_name, _entry)

MAX_REDIRECTS = 3
"""Alternate TURN servers one relayed candidate follows at most (300 Try Alternate)."""


class _RefusalReporting:
    """A TURN client that tells its agent which peers the server refused (403)."""

    def __init__(
        self,
        address: tuple[str, int],
        server: TurnServer,
        refused: Callable[[tuple[str, int]], None],
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            address,
            username=server.username,
            password=server.password,
            lifetime=turn.DEFAULT_ALLOCATION_LIFETIME,
            channel_refresh_time=turn.DEFAULT_CHANNEL_REFRESH_TIME,
        )
        self._refused = refused

    async def send_data(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            await super().send_data(data, addr)  # type: ignore[misc]
        except stun.TransactionFailed as error:
            if error.response.error_code == 403:
                self._refused(addr)
            raise


class _UdpTurnClient(_RefusalReporting, turn.TurnClientUdpProtocol):
    pass


class _TcpTurnClient(_RefusalReporting, turn.TurnClientTcpProtocol):
    pass


class IceAgent(aioice.Connection):
    """One ICE component over UDP (host, srflx, relayed candidates), for one peer."""

    def __init__(
        self,
        *,
        controlling: bool,
        stun_server: StunServer | None,
        turn_servers: Sequence[TurnServer],
        tls: ssl.SSLContext | None,
        policy: NominationPolicy,
        gathering: GatherSettings,
        use_ipv6: bool = False,
    ) -> None:
        super().__init__(
            ice_controlling=controlling,
            components=1,
            stun_server=(stun_server.host, stun_server.port) if stun_server else None,
            use_ipv6=use_ipv6,
        )
        self._turn_servers = tuple(turn_servers)
        self._tls = tls
        self._policy = policy
        self._gathering = gathering
        self._relay_servers: dict[StunProtocol, TurnServer] = {}
        self._first_success: float | None = None
        self._nomination: asyncio.Task[None] | None = None
        self._decision_timer: asyncio.TimerHandle | None = None
        self._in_flight: dict[CandidatePair, _InFlight] = {}
        self.remote_relays: dict[tuple[str, int], Transport] = {}
        """How each of the peer's relayed candidates reaches its TURN server (it says so)."""

    # --- gathering ---------------------------------------------------------------------

    async def get_component_candidates(
        self,
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109 (aioice)
    ) -> list[aioice.Candidate]:
        """Host candidates, then srflx and relayed ones gathered together (aioice calls this)."""
        loop = asyncio.get_running_loop()
        hosts: list[StunProtocol] = []
        for address in addresses:
            try:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: StunProtocol(self), local_addr=(address, 0)
                )
            except OSError:
                continue
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            hosts.append(protocol)
        self._protocols += hosts
        candidates = [protocol.local_candidate for protocol in hosts]
        reflexive = [
            asyncio.ensure_future(server_reflexive_candidate(protocol, self.stun_server))
            for protocol in hosts
            if self.stun_server and ":" not in protocol.local_candidate.host
        ]
        relayed = [
            asyncio.ensure_future(self._relayed(component, server, index))
            for index, server in enumerate(self._turn_servers)
        ]
        await self._wait_gathering(reflexive, relayed)
        for srflx in reflexive:
            if srflx.done() and not srflx.cancelled() and srflx.exception() is None:
                candidates.append(srflx.result()[0])
        for relay in relayed:
            if relay.done() and not relay.cancelled() and relay.exception() is None:
                candidate, relay_protocol = relay.result()
                candidates.append(candidate)
                self._protocols.append(relay_protocol)
        return candidates

    async def _wait_gathering(
        self, reflexive: Sequence[asyncio.Future[Any]], relayed: Sequence[asyncio.Future[Any]]
    ) -> None:
        """Until all are done, or grace after the first relayed candidate, or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._gathering.timeout
        pending = set(reflexive) | set(relayed)
        while pending:
            done, pending = await asyncio.wait(
                pending,
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                break
            if any(t in relayed and t.exception() is None for t in done if not t.cancelled()):
                deadline = min(deadline, loop.time() + self._gathering.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _relayed(
        self, component: int, server: TurnServer, index: int
    ) -> tuple[aioice.Candidate, StunProtocol]:
        """An allocation on ``server`` and its relayed candidate (RFC 8656 over UDP/TCP/TLS)."""
        protocol = await self._open_relay(server)
        relayed = protocol.transport.get_extra_info("sockname")
        related = protocol.transport.get_extra_info("related_address")
        preference = LOCAL_PREFERENCE[server.transport] - index
        protocol.local_candidate = aioice.Candidate(
            foundation=candidate_foundation("relay", f"udp-{server}", relayed[0]),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "relay", local_pref=preference),
            host=relayed[0],
            port=relayed[1],
            type="relay",
            related_address=related[0],
            related_port=related[1],
        )
        self._relay_servers[protocol] = server
        return protocol.local_candidate, protocol

    async def _open_relay(self, server: TurnServer) -> StunProtocol:
        """An allocation on ``server``, or on the alternate a draining server names (300 Try
        Alternate, RFC 8489 §10: same transport and credentials; over TLS the certificate is
        checked against ALTERNATE-DOMAIN, else the first server's name), at most
        :data:`MAX_REDIRECTS` hops, never back to a server already tried."""
        tried = {(server.host, server.port)}
        hostname: str | None = None
        while True:
            try:
                return await self._allocate_relay(server, hostname)
            except stun.TransactionFailed as error:
                alternate = error.response.attributes.get("ALTERNATE-SERVER")
                code = error.response.attributes.get("ERROR-CODE", (0, ""))[0]
                if code != 300 or alternate is None or len(tried) > MAX_REDIRECTS:
                    raise
                target = (str(alternate[0]), int(alternate[1]))
                if target in tried:
                    raise
                tried.add(target)
                hostname = error.response.attributes.get("ALTERNATE-DOMAIN") or (
                    hostname or server.host
                )
                server = dataclasses.replace(server, host=target[0], port=target[1])

    async def _allocate_relay(self, server: TurnServer, hostname: str | None) -> StunProtocol:
        """``aioice.turn.create_turn_endpoint``, with a TURN client that reports refusals;
        ``hostname``: the name a TLS server's certificate must carry (None: its host)."""
        loop = asyncio.get_running_loop()
        protocol = StunProtocol(self)
        refused = functools.partial(self._permission_refused, protocol)
        address = (server.host, server.port)
        client: turn.TurnClientProtocol
        transport: asyncio.BaseTransport
        if server.transport is Transport.UDP:
            transport, client = await loop.create_datagram_endpoint(
                lambda: _UdpTurnClient(address, server, refused), remote_addr=address
            )
        else:
            tls = (
                (self._tls or ssl.create_default_context())
                if server.transport is Transport.TLS
                else None
            )
            transport, client = await loop.create_connection(
                lambda: _TcpTurnClient(address, server, refused),
                host=server.host,
                port=server.port,
                ssl=tls,
                server_hostname=(hostname or server.host) if tls is not None else None,
            )
        try:
            await turn.TurnTransport(client)._connect(protocol)
        except BaseException:
            transport.close()
            raise
        return protocol

    def _permission_refused(self, protocol: StunProtocol, peer: tuple[str, int]) -> None:
        """The TURN server refused to relay to ``peer`` (403, RFC 8656 §9.1): checks through
        this relay to it cannot succeed, so they fail now rather than at their timeout."""
        for pair in self._check_list:
            if pair.protocol is protocol and pair.remote_addr == peer and pair.state in _OPEN:
                if pair.task is not None:
                    pair.task.cancel()
                self._check_done(pair, CandidatePair.State.FAILED)

    def relay_transport_of(self, candidate: aioice.Candidate) -> Transport | None:
        """How the relayed ``candidate`` (one of ours) reaches its TURN server."""
        for protocol, server in self._relay_servers.items():
            if protocol.local_candidate is candidate:
                return server.transport
        return None

    # --- checks and nomination ---------------------------------------------------------

    def _remote_key(self) -> bytes:
        assert self.remote_password is not None, "checks start once connect() has it"
        return self.remote_password.encode("utf8")

    async def check_start(self, pair: CandidatePair) -> None:
        """A connectivity check (RFC 8445 §7.2.4), in either role, without USE-CANDIDATE.

        As controlled agent, a pair the peer nominated is nominated once its check
        succeeds (§7.3.1.5), as aioice does; as controlling agent, success goes to the
        nomination policy.
        """
        if self.remote_is_lite:
            await super().check_start(pair)
            return
        self.check_state(pair, CandidatePair.State.IN_PROGRESS)
        request = self.build_request(pair, nominate=False)
        self._in_flight[pair] = _InFlight(request)
        try:
            _, addr = await pair.protocol.request(
                request, pair.remote_addr, integrity_key=self._remote_key()
            )
        except stun.TransactionError as error:
            if error.response is not None and error.response.error_code == 487:
                # Role conflict (RFC 8445 §7.2.5.1): switch, and check again in the new role.
                self.switch_role(ice_controlling="ICE-CONTROLLING" not in request.attributes)
                await self.check_start(pair)
                return
            self._check_done(pair, CandidatePair.State.FAILED)
            return
        finally:
            self._in_flight.pop(pair, None)
        # The response must come from where the request went (RFC 8445 §7.2.5.2.1).
        if addr != pair.remote_addr:
            self._check_done(pair, CandidatePair.State.FAILED)
            return
        if not self.ice_controlling:
            pair.nominated = pair.nominated or pair.remote_nominated
        elif self._first_success is None:
            self._first_success = asyncio.get_running_loop().time()
        self._check_done(pair, CandidatePair.State.SUCCEEDED)

    def _check_done(self, pair: CandidatePair, state: CandidatePair.State) -> None:
        self.check_state(pair, state)
        if self.ice_controlling:
            self._reconsider()  # first: a nomination it starts keeps the list from failing
        self.check_complete(pair)

    def _reconsider(self) -> None:
        """Ask the policy whether to nominate now; if not yet, when to ask again."""
        if self._nomination is not None or self._nominated or self._check_list_done:
            return
        loop = asyncio.get_running_loop()
        pairs = list(self._check_list)
        views = [
            PairView(
                index,
                candidate_pair_priority(
                    p.local_candidate, p.remote_candidate, self.ice_controlling
                ),
                _STATES[p.state],
            )
            for index, p in enumerate(pairs)
        ]
        decision = self._policy.decide(views, self._first_success, loop.time())
        if self._decision_timer is not None:
            self._decision_timer.cancel()
            self._decision_timer = None
        if isinstance(decision, Nominate):
            chosen = pairs[decision.key]
            self.check_state(chosen, CandidatePair.State.IN_PROGRESS)
            self._nomination = asyncio.create_task(self._nominate(chosen))
        elif decision.until is not None:
            self._decision_timer = loop.call_at(decision.until, self._reconsider)

    async def _nominate(self, pair: CandidatePair) -> None:
        """Regular nomination (RFC 8445 §8.1.1): check ``pair`` again, with USE-CANDIDATE."""
        request = self.build_request(pair, nominate=True)
        try:
            await pair.protocol.request(request, pair.remote_addr, integrity_key=self._remote_key())
        except stun.TransactionError:
            self._nomination = None
            self._check_done(pair, CandidatePair.State.FAILED)  # the next best, if any
            return
        pair.nominated = True
        self.check_state(pair, CandidatePair.State.SUCCEEDED)
        self.check_complete(pair)  # aioice records it as nominated: ICE completed

    def check_incoming(
        self, message: stun.Message, addr: tuple[str, int], protocol: StunProtocol
    ) -> None:
        """A check from the peer: if ours on that pair is in progress, retransmit it now
        (RFC 8445 §7.3.1.4), a few times at most, rather than at its next timeout."""
        for pair, in_flight in self._in_flight.items():
            if (
                pair.protocol is protocol
                and pair.remote_addr == addr
                and in_flight.prompted < MAX_PROMPTED_RETRANSMITS
            ):
                in_flight.prompted += 1
                protocol.send_stun(in_flight.request, addr)
                break
        super().check_incoming(message, addr, protocol)

    async def close(self) -> None:
        if self._decision_timer is not None:
            self._decision_timer.cancel()
        if self._nomination is not None:
            self._nomination.cancel()
        await super().close()

    # --- the outcome -------------------------------------------------------------------

    async def release_unused(self) -> int:
        """Close every socket and TURN allocation the nominated pair does not use (RFC 8445
        §8.3: once nominated, other candidates may be freed); how many were closed."""
        pair = self._nominated.get(1)
        if pair is None:
            return 0
        unused = [protocol for protocol in self._protocols if protocol is not pair.protocol]
        for protocol in unused:
            self._protocols.remove(protocol)
            self._relay_servers.pop(protocol, None)
        await asyncio.gather(*(protocol.close() for protocol in unused), return_exceptions=True)
        return len(unused)

    def checks(self) -> list[CheckSummary]:
        """Every pair of the check list as it stands: what was tried, and how it went."""
        return [
            CheckSummary(
                self.local_endpoint(pair.local_candidate),
                Endpoint(
                    pair.remote_candidate.type,
                    (pair.remote_candidate.host, pair.remote_candidate.port),
                    self.remote_relays.get(
                        (pair.remote_candidate.host, pair.remote_candidate.port)
                    ),
                ),
                _STATES[pair.state],
                pair.nominated,
            )
            for pair in self._check_list
        ]

    def selected(self) -> tuple[aioice.Candidate, aioice.Candidate] | None:
        """The nominated pair's (local, remote) candidates, once ICE completed."""
        pair = self._nominated.get(1)
        return (pair.local_candidate, pair.remote_candidate) if pair is not None else None

    def local_endpoint(self, candidate: aioice.Candidate) -> Endpoint:
        relay = self.relay_transport_of(candidate)
        server = next(
            (
                (s.host, s.port)
                for p, s in self._relay_servers.items()
                if p.local_candidate is candidate
            ),
            None,
        )
        return Endpoint(candidate.type, (candidate.host, candidate.port), relay, server)

"""The ``passage serve`` process: one data directory, one store, every service.

It runs the STUN/TURN relay (UDP, TCP, TLS; ``passage.turn.aio``) with the
usage ledger, and on the API port, behind the front door
(``passage.mounts``): the HTTPS API (ACS-compatible identities and relay
configurations, usage, keys) with the sync task that keeps this node's keys
and revocations current, the Hybrid Connections relay and signaling
(``/signal/{room}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from passage import __version__
from passage.addresses import Address, Transport, format_address
from passage.api.server import ApiServer
from passage.api.service import IdentityService, load_state, new_key_text
from passage.api.sync import POLL_INTERVAL, IdentitySync
from passage.cli.logging import set_log_format
from passage.config import Config, ConfigError, worker_count
from passage.console.aio import Console
from passage.datadir import DataDir, adopt_auth_secret, prepare_data_dir
from passage.descriptors import DescriptorBudget, raise_limit
from passage.drain import Drain
from passage.endpoint import AdvertisedEndpoint
from passage.frontdoor import FrontDoor
from passage.hostaddr import advertised_endpoint, own_addresses, relay_addresses
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.aio.meters import UsageFlusher
from passage.hybrid.aio.relay import HybridRelay, RelaySettings
from passage.hybrid.gateway import InMemoryGatewayStore
from passage.hybrid.inflight import InFlightLimits
from passage.identity.ice_servers import RelayTopology
from passage.identity.relay_credentials import IdentityRelayUsers
from passage.identity.state import IdentityState
from passage.lifecycle import Lifecycle
from passage.live import LiveNode, LiveView
from passage.mounts import RESERVED_NAMES, front_door
from passage.readiness import Readiness
from passage.reload import ReloadPlan, plan_reload
from passage.runtime import (
    RuntimeRecord,
    host_boot_id,
    new_boot_id,
    process_start,
    remove_record,
    write_record,
)
from passage.scrape import PlainFamily, Sources, registry
from passage.settings import settings_view
from passage.signal import SignalLimits
from passage.signal.aio import SignalingServer
from passage.store.database import (
    Database,
    is_unavailable,
    open_database,
    sqlite_url,
    url_without_password,
)
from passage.store.hybrid import HybridStore
from passage.store.identities import TURN_REST_SECRET, IdentityStore
from passage.store.ledger import RESTART_END_REASON, LedgerNode, UsageLedger
from passage.store.spill import UsageSpill
from passage.telemetry import OperatorsListener
from passage.tlscontexts import ServerContexts
from passage.tlsmaterial import TlsMaterialError
from passage.turn.aio.edge import TurnEdge, UsageSink, stream_socket, udp_socket
from passage.turn.aio.fast_path import check_fast_path, start_fast_path
from passage.turn.aio.offload import start_kernel_channels
from passage.turn.aio.refusals import RefusalLog
from passage.turn.alternate import Alternates
from passage.turn.auth import CredentialChain, CredentialSource, RestSecretUsers, StaticUsers
from passage.turn.binding import AlternateAddresses
from passage.turn.credentials import RestSecrets
from passage.turn.server import TurnServer
from passage.usage import UsageOverflow
from passage.workers.aio.pool import WorkerPool, WorkerStartError
from passage.workers.protocol import Start
from passage.workers.quota import SharedQuota

if TYPE_CHECKING:  # redis is the cluster extra's: imported only with --redis-url
    from passage.cluster.aio import ClusterLink

logger = logging.getLogger("passage")


@dataclass(slots=True)
class Running:
    """A started server: what it listens on, and how to stop it."""

    edge: TurnEdge | None
    """The TURN relay in this process; None when worker processes run it (``workers``)."""
    database: Database
    front_door: FrontDoor
    """The API port and the plain-HTTP port: the API, the relay and signaling behind them."""
    api: ApiServer
    relay: HybridRelay
    signaling: SignalingServer
    sync_task: asyncio.Task[None]
    config: Config
    """The configuration it runs with: the one it started with, as reloads changed it."""
    datadir: DataDir
    tls_contexts: ServerContexts
    """The certificate every TLS listener presents (TURN over TLS, the HTTPS API)."""
    identity_state: IdentityState
    drain: Drain = field(default_factory=Drain)
    """Draining once SIGTERM came (:mod:`passage.lifecycle`): ``/readyz`` reads it."""
    udp: list[Address] = field(default_factory=list)
    tcp: list[Address] = field(default_factory=list)
    tls: list[Address] = field(default_factory=list)
    https: list[Address] = field(default_factory=list)
    http: list[Address] = field(default_factory=list)
    discovery: list[Address] = field(default_factory=list)
    """The other three RFC 5780 UDP addresses (their TCP listeners are in ``tcp``)."""
    cluster: ClusterLink | None = None
    """The link to the cluster's Redis (``--redis-url``); None: a single node."""
    readiness: Readiness = field(default_factory=Readiness)
    """What ``/readyz`` reports of this process: listeners bound, draining."""
    operators: OperatorsListener | None = None
    """``/metrics``, ``/healthz`` and ``/readyz`` on the metrics port, unless it is 0."""
    hybrid_usage: UsageFlusher | None = None
    """Writes the relay's bytes per hybrid connection and rule to the usage ledger."""
    console: Console | None = None
    """The web console: its live pages' streams end first when the server stops."""
    reread: Callable[[], Config] | None = None
    """Reads the configuration as a reload (SIGHUP) would: what the Settings show against."""
    workers: WorkerPool | None = None
    """The worker processes relaying TURN (``--workers N``, N > 1)."""
    shared_sockets: list[socket.socket] = field(default_factory=list)
    """The TURN sockets bound here for the workers, kept open while they run."""
    spill: UsageSpill | None = None
    """Usage records past ``--usage-buffer-records`` while the store is down."""
    full_alternates: Alternates = field(default_factory=Alternates)
    """Cluster mode: where a new Allocate goes (300) when this node is full."""
    store_stale: bool = False
    """Cluster mode: the store has been unreachable past ``store_staleness``."""

    async def stop(self) -> None:
        """Leave the cluster, stop signaling, the relay and the front door, end every
        allocation, flush usage, close the store; ``/readyz`` says so until the operators'
        listener goes last."""
        if not self.readiness.draining:
            self.readiness.start_draining("shutting down")
        if self.cluster is not None:
            await self.cluster.close()
        self.sync_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sync_task
        await self.signaling.close()
        if self.console is not None:
            await self.console.close()
        await self.relay.close()
        if self.hybrid_usage is not None:
            await self.hybrid_usage.close()
        await self.front_door.stop()
        if self.edge is not None:
            await self.edge.stop()
        if self.workers is not None:
            await self.workers.stop()
        for sock in self.shared_sockets:
            sock.close()
        if self.operators is not None:
            await self.operators.stop()
        await self.database.close()
        if self.spill is not None:
            self.spill.close()

    def start_draining(self, alternates: Alternates) -> None:
        """New Allocates go to ``alternates`` (300) from now on, here or in every worker."""
        if self.edge is not None:
            self.edge.core.start_draining(alternates)
        if self.workers is not None:
            self.workers.start_draining(alternates)

    async def flush_usage(self) -> None:
        """Write the usage metered so far (workers send theirs every flush interval)."""
        if self.edge is not None:
            await self.edge.flush_usage()

    def allocations_per_user(self) -> dict[str, int]:
        """Allocations per quota key on this node (every worker's), for the cluster."""
        if self.edge is not None:
            return self.edge.core.allocations_per_user()
        return self.workers.quota.per_key() if self.workers is not None else {}

    def allocations_elsewhere(self, elsewhere: dict[str, int]) -> None:
        """The cluster's other nodes hold ``elsewhere`` per quota key: count them too."""
        if self.edge is not None:
            self.edge.core.allocations_elsewhere = elsewhere
        if self.workers is not None:
            self.workers.quota.elsewhere = elsewhere

    @property
    def allocations(self) -> int:
        """Allocations live now, in this process or (as last reported) in the workers."""
        if self.edge is not None:
            return len(self.edge.core.allocations)
        return len(self.workers.live_allocations()) if self.workers is not None else 0

    @property
    def load(self) -> int:
        """The load this node advertises to the cluster: its allocations, or with workers
        what they hold of the quota the parent keeps (kept ports included, as the quota
        counts them), exact at once where their snapshots are up to a second old."""
        if self.workers is not None:
            return self.workers.quota.total
        return self.allocations

    async def reload(self, new: Config) -> ReloadPlan:
        """Apply what of ``new`` can change while running (:mod:`passage.reload`): re-read
        the data directory (the auth secret, a generated certificate due for renewal) and
        the certificate and key, give the TURN core its new policy and credentials, set the
        log level; then flush usage. Returns the plan; what needs a restart is left as is.

        Raises :class:`ConfigError` (a :class:`passage.datadir.DataDirError` among them)
        before anything changes when the data directory or the certificate cannot be used.
        """
        plan = plan_reload(self.config, new)
        datadir = prepare_data_dir(plan.config)  # checks an operator's pair loads together
        credentials = credential_source(plan.config, datadir, self.identity_state)
        try:
            self.tls_contexts.reload(datadir.tls_cert, datadir.tls_key)
        except TlsMaterialError as error:  # replaced again since prepare_data_dir read it
            raise ConfigError(error.message) from None
        if self.edge is not None:
            self.edge.core.reconfigure(plan.config.turn, credentials)
        if self.workers is not None:  # each worker does the same with its own copy
            self.workers.reload(plan.config, datadir)
        logging.getLogger().setLevel(plan.config.log_level.upper())
        set_log_format(plan.config.log_format)
        self.config, self.datadir = plan.config, datadir
        if self.edge is not None:
            await self.edge.flush_usage()
        return plan


def _live_nodes(running: Running, now: float) -> list[LiveNode]:
    """The cluster's live nodes as the registry has them; none for a single node."""
    link = running.cluster
    if link is None:
        return []
    return [
        LiveNode(
            name=node.name, region=node.region, turn_host=node.turn_host,
            turn_port=node.turn_port, public_url=node.public_url, load=node.load,
            draining=node.draining, seen_at=node.seen_at, this_node=node.name == link.name,
        )
        for node in link.nodes.live(now)
    ]  # fmt: skip


def credential_source(config: Config, datadir: DataDir, state: IdentityState) -> CredentialSource:
    """Static users, then relay credentials the API minted, then REST credentials."""
    sources: list[CredentialSource] = [StaticUsers(dict(config.users)), IdentityRelayUsers(state)]
    if datadir.auth_secrets:
        sources.append(RestSecretUsers(RestSecrets(datadir.auth_secrets)))
    return CredentialChain(sources)


def nonce_key(datadir: DataDir) -> bytes:
    """The key of this node's stateless nonces, derived from the first REST secret.

    The nodes of one deployment share that secret (REST credentials must pass on each),
    so a nonce one node issued passes at another: a client sent elsewhere by 300 Try
    Alternate keeps its nonce, and libwebrtc gives up on a 438 to an Allocate. A nonce
    says only when and to which address it was issued; the secret cannot be read back.
    """
    secret = datadir.auth_secrets[0].encode()
    return hmac.new(secret, b"passage stateless nonce key v1", hashlib.sha256).digest()


def _audience_hosts(config: Config, endpoint: AdvertisedEndpoint) -> tuple[str, ...]:
    """Hosts a Hybrid Connections token may name: loopback, this node's names and addresses."""
    hosts = ["localhost", "127.0.0.1", "::1", endpoint.host]
    hosts += [ip for ip in config.listen_ips if not ipaddress.ip_address(ip).is_unspecified]
    return tuple(dict.fromkeys(hosts))


def nat_discovery(config: Config) -> AlternateAddresses | None:
    """The four RFC 5780 transport addresses, when ``--alt-ip`` gives a second IP."""
    ips = config.nat_discovery_ips
    if ips is None:
        return None
    return AlternateAddresses(ips, (config.turn_port, config.alternate_port))


def relay_topology(config: Config, endpoint: AdvertisedEndpoint) -> RelayTopology:
    return RelayTopology(
        region=config.region,
        own_hosts=(endpoint.host,),
        other_relays=config.region_relays,
        client_regions=tuple(
            (ipaddress.ip_network(cidr), region) for cidr, region in config.client_regions
        ),
        turn_port=config.turn_port,
        turns_port=config.turns_port,
        turns_extra_ports=config.turns_extra_ports,
    )


def turn_edge(
    config: Config,
    datadir: DataDir,
    state: IdentityState,
    *,
    nonce_key: bytes,
    usage_sink: UsageSink,
    usage_overflow: UsageOverflow | None = None,
    clock: Callable[[], float] = time.time,
    on_quota: Callable[[str, int], None] | None = None,
) -> TurnEdge:
    """The TURN core and its asyncio edge, listening nowhere yet: this process's relay,
    or one worker's (``passage.worker_main``)."""
    relays = relay_addresses(config)
    core = TurnServer(
        config.turn,
        credential_source(config, datadir, state),
        nonce_key=nonce_key,
        rng=random.Random(secrets.randbits(64)),
        relay_families=relays.families,
        on_refused=RefusalLog(logging.getLogger("passage.turn")),
        alternates=nat_discovery(config),
        own_addresses=own_addresses(config, relays),
        on_quota=on_quota,
    )
    edge = TurnEdge(
        core,
        relays,
        usage_sink=usage_sink,
        usage_interval=config.usage_flush_interval,
        usage_overflow=usage_overflow,
        usage_buffer_records=config.usage_buffer_records,
        clock=clock,
        own_addresses=lambda: own_addresses(config, relays),
    )
    fast_path = start_fast_path(config.fast_path, lambda: core.config.max_bytes_per_second > 0)
    if fast_path is not None:
        edge.use_fast_path(fast_path)
    return edge


async def start(
    config: Config,
    datadir: DataDir,
    *,
    clock: Callable[[], float] = time.time,
    poll_interval: float = POLL_INTERVAL,
    workers: int = 1,
) -> Running:
    """Open the store and bind every listener; raises OSError if a port is taken.

    ``clock`` (Unix seconds) is every service's notion of now: tests pass their own,
    and a longer ``poll_interval`` to see what only cluster events deliver. ``workers``
    > 1 runs TURN in that many processes (``passage.workers``), which see the real time.
    Raises :class:`~passage.turn.aio.fast_path.FastPathUnavailable` for ``--fast-path on``
    without the extension.
    """
    check_fast_path(config.fast_path)
    _raise_descriptor_limit()
    database = await open_database(
        config.database_url or sqlite_url(datadir.path), schema=config.database_schema
    )
    try:
        store = IdentityStore(database)
        if config.redis_url is not None and not config.auth_secrets:
            shared = await store.shared_setting(TURN_REST_SECRET, datadir.auth_secrets[0])
            datadir = adopt_auth_secret(datadir, shared)
        state = await load_state(store, config.region, clock())
        sync = IdentitySync(store, state, clock)
        await sync.poll()
        hybrid_admin = HybridAdmin(
            HybridStore(database),
            clock=clock,
            new_key=new_key_text,
            reserved_names=RESERVED_NAMES,
        )
        await hybrid_admin.ensure_root_rule()
        boot = secrets.token_hex(8)
        ledger = UsageLedger(database, LedgerNode(datadir.node_id, boot))
        spill = UsageSpill(datadir.path, ledger, boot)
        await _replay_spill(spill)  # first: an earlier run's final records end its allocations
        await _close_orphans(ledger, clock())
    except BaseException:
        await database.close()
        raise
    relays = relay_addresses(config)
    endpoint = advertised_endpoint(config, relays)
    alternates = nat_discovery(config)
    nonces = nonce_key(datadir)  # every worker's, and every node's sharing the secret
    edge, pool = None, None
    live_turn: TurnEdge | WorkerPool
    if workers <= 1:
        edge = live_turn = turn_edge(
            config, datadir, state, nonce_key=nonces, usage_sink=ledger.record,
            usage_overflow=spill, clock=clock,
        )  # fmt: skip
    else:
        pool = live_turn = WorkerPool(
            workers,
            lambda index, listeners: Start(index, nonces, config, datadir, state, listeners),
            SharedQuota(config.turn.max_allocations_per_user, config.turn.max_allocations_total),
            usage_sink=ledger.record,
            close_lost=ledger.close_lost,
            usage_overflow=spill,
            usage_buffer_records=config.usage_buffer_records,
        )
    service = IdentityService(store, state, relay_topology(config, endpoint), clock)
    hybrid = HybridRelay(
        hybrid_admin.namespace,
        InMemoryGatewayStore(random.choice),
        RelaySettings(
            node_id=secrets.token_hex(8),
            public_url=config.public_url,
            bases=endpoint.websocket_bases(),
            audience_hosts=_audience_hosts(config, endpoint),
            max_listeners=config.max_listeners,
            max_message=config.hc_max_message,
            max_token_lifetime=float(config.hc_max_token_lifetime),
            in_flight=InFlightLimits(
                per_connection=config.hc_http_in_flight_per_connection,
                total=config.hc_http_in_flight,
            ),
        ),
        clock=clock,
    )
    signaling = SignalingServer(state, SignalLimits(room_size=config.signal_room_size), clock=clock)
    live = LiveView(
        allocations=live_turn.live_allocations,
        end_allocation=live_turn.end_allocation,
        turn=live_turn.turn_counters,
        throughput=live_turn.throughput.points,
        listeners=hybrid.live_listeners,
        bridges=hybrid.live_bridges,
        rooms=signaling.live_rooms,
        settings=lambda: settings_view(running.config, running.reread),  # as reloads change it
        nodes=lambda now: _live_nodes(running, now),
    )
    api = ApiServer(service, ledger, hybrid_admin=hybrid_admin, live=live, clock=clock)
    console = Console(api, clock=clock)
    door = front_door(
        api, hybrid, signaling, console, limits=config.http, descriptors=DescriptorBudget(),
        access_log=config.access_log,
    )  # fmt: skip
    store_poll = StorePoll(sync, hybrid_admin, clock)
    polling = asyncio.create_task(store_poll.forever(poll_interval))
    running = Running(
        edge, database, door, api, hybrid, signaling, polling,
        config=config, datadir=datadir, identity_state=state,
        tls_contexts=ServerContexts(datadir.tls_cert, datadir.tls_key), console=console,
        spill=spill,
    )  # fmt: skip
    running.hybrid_usage = UsageFlusher(
        hybrid.meters, ledger.hybrid.record, interval=config.usage_flush_interval, clock=clock,
        overflow=spill,
    )  # fmt: skip
    running.hybrid_usage.start()
    try:
        if config.metrics_port:  # first: /readyz says "not ready" until the rest is bound
            running.operators = OperatorsListener(
                registry(
                    Sources(
                        edge,
                        door,
                        hybrid,
                        signaling,
                        running.readiness,
                        _worker_metrics(pool),
                        spill,
                        pool,
                    )  # fmt: skip
                ),
                running.readiness,
                database.ping,
            )
            await running.operators.listen(config.metrics_ip, config.metrics_port)
        if edge is not None:
            await _listen_turn(config, edge, alternates, running)
            kernel = start_kernel_channels(
                config.offload,
                [*config.listen_ips, *relays.bind.values()],
                capped=config.turn.max_bytes_per_second > 0,
            )
            if kernel is not None:  # the kernel relays the channels; the C router none
                edge.offload = kernel
        elif pool is not None:
            running.workers = pool
            await pool.start(_shared_sockets(config, workers, running))
            logger.info("TURN runs in %d worker processes: %s", workers,
                        ", ".join(str(pid) for pid in pool.pids))  # fmt: skip
            pool.share_identity(state)
        for ip in config.listen_ips:  # the API last: once it accepts, every listener is bound
            if config.api_port:
                tls = running.tls_contexts.context(("http/1.1",))
                running.https.append(await door.listen(ip, config.api_port, tls))
            if config.http_port:
                running.http.append(await door.listen(ip, config.http_port, None))
        running.readiness.listening = True
        if config.redis_url is not None:  # once it serves: the registry announces it
            running.cluster = await _join_cluster(config, endpoint, running, clock)
            _share_changes(running.cluster, service, hybrid_admin, store_poll)
            store_poll.on_read = lambda: _bound_staleness(running, store_poll, config)
    except BaseException:
        await running.stop()
        raise
    return running


def _bound_staleness(running: Running, store_poll: StorePoll, config: Config) -> None:
    """Cluster mode: past ``store_staleness`` without the store, identities' relay
    credentials get no new allocation (another node's revocation may have been missed)."""
    stale = store_poll.clock() - store_poll.read_at > config.store_staleness
    if stale and not running.store_stale:
        logger.warning(
            "the store has been unreachable for over %.0f s: new allocations for "
            "identities are refused until it is back", config.store_staleness,
        )  # fmt: skip
    running.store_stale = stale
    if running.edge is not None:
        running.edge.core.store_stale = stale
    if running.workers is not None:
        running.workers.share_cluster(running.full_alternates, stale)


async def _join_cluster(
    config: Config,
    endpoint: AdvertisedEndpoint,
    running: Running,
    clock: Callable[[], float],
) -> ClusterLink:
    """Start this node's link to the cluster's Redis; it runs degraded while Redis is away."""
    from passage.cluster import ClusterKeys, NodeInfo
    from passage.cluster.aio import ClusterLink, RedisGateway
    from passage.cluster.aio.quota import AllocationCounts
    from passage.cluster.aio.rooms import RedisRoomDirectory

    assert config.redis_url is not None and config.node_name is not None
    assert config.public_url is not None
    boot_id = secrets.token_hex(8)
    public_url, name = config.public_url, config.node_name

    def advert(now: float) -> NodeInfo:
        return NodeInfo(
            name=name,
            boot_id=boot_id,
            public_url=public_url,
            turn_host=endpoint.host,
            turn_port=config.turn_port,
            turns_port=config.turns_port if running.tls else 0,
            region=config.region,
            load=running.load,
            draining=running.drain.draining,
            seen_at=now,
        )

    link = ClusterLink(config.redis_url, ClusterKeys(config.redis_prefix), advert, clock)
    running.relay.join(RedisGateway(link))
    running.signaling.join_cluster(RedisRoomDirectory(link))

    def degraded(reason: str | None) -> None:
        running.readiness.degraded = reason or ""

    link.on_state.append(degraded)
    await link.start()
    counts = AllocationCounts(link, running.allocations_per_user, running.allocations_elsewhere)
    link.run(counts.forever())
    link.run(_alternates_when_full(link, running))
    return link


async def _alternates_when_full(link: ClusterLink, running: Running) -> None:
    """Keep the TURN core told which node to send a new Allocate to when this one is full
    (300 Try Alternate rather than 486): the least loaded other live node, of this node's
    region when one is (read at each heartbeat: a reload does not change the region)."""
    from passage.cluster import NODE_HEARTBEAT
    from passage.lifecycle import cluster_alternates

    while True:
        running.full_alternates = await cluster_alternates(link, running.config.region)
        if running.edge is not None:
            running.edge.core.full_alternates = running.full_alternates
        if running.workers is not None:
            running.workers.share_cluster(running.full_alternates, running.store_stale)
        await asyncio.sleep(NODE_HEARTBEAT)


def _share_changes(
    link: ClusterLink, service: IdentityService, hybrid_admin: HybridAdmin, store_poll: StorePoll
) -> None:
    """Changes made here go to every node after they commit; changes made elsewhere are
    read from the store as soon as their event arrives (the poll stays the backstop)."""
    from passage.cluster import ClusterEvent, EventKind
    from passage.identity.ice_servers import ClusterRelay

    async def publish(kind: EventKind, subject: str) -> None:
        await link.publish(ClusterEvent(kind, link.name, subject))

    async def hc_changed(path: str) -> None:
        await publish(EventKind.HC_CHANGED, path)

    async def apply(event: ClusterEvent) -> None:
        if event.kind is EventKind.HC_CHANGED:
            await store_poll.hybrid_connections()
        else:
            await store_poll.identities()

    service.committed = publish
    service.cluster_relays = lambda: tuple(
        ClusterRelay(node.region, node.turn_host, node.turn_port, node.turns_port)
        for node in (link.nodes.relays(link.clock()) if link.up else ())
    )
    hybrid_admin.on_commit = hc_changed
    link.on_event.append(apply)


def _worker_metrics(
    pool: WorkerPool | None,
) -> Callable[[], list[list[PlainFamily]]] | None:
    """The workers' metric reports for ``/metrics`` (they are ``scrape.turn_families``)."""
    if pool is None:
        return None
    return lambda: [cast(list[PlainFamily], list(report)) for report in pool.metric_reports()]


def _shared_sockets(
    config: Config, workers: int, running: Running
) -> list[list[tuple[str, socket.socket]]]:
    """Every TURN listener, bound ``workers`` times with ``SO_REUSEPORT``: one socket each.

    The addresses go in ``running`` as ``_listen_turn`` puts them; a port 0 is the port
    the first socket got.
    """
    per_worker: list[list[tuple[str, socket.socket]]] = [[] for _ in range(workers)]

    def bind(kind: str, host: str, port: int, into: list[Address]) -> None:
        make = udp_socket if kind == "udp" else stream_socket
        first = make(host, port, reuse_port=True)
        running.shared_sockets.append(first)
        bound = first.getsockname()
        into.append((str(bound[0]), int(bound[1])))
        per_worker[0].append((kind, first))
        for sockets in per_worker[1:]:
            sock = make(host, int(bound[1]), reuse_port=True)
            running.shared_sockets.append(sock)
            sockets.append((kind, sock))

    for ip in config.listen_ips:
        bind("udp", ip, config.turn_port, running.udp)
        bind("tcp", ip, config.turn_port, running.tcp)
        for port in config.tls_ports:
            bind("tls", ip, port, running.tls)
    alternates = nat_discovery(config)
    for host, port in alternates.listeners()[1:] if alternates else ():
        bind("udp", host, port, running.discovery)
        bind("tcp", host, port, running.tcp)
    return per_worker


async def _replay_spill(spill: UsageSpill) -> None:
    """Write what an earlier run spilled while the store was down (it stopped, or was
    killed, before the store came back)."""
    if spill.records:
        logger.warning(
            "usage spill: %d records an earlier run could not write wait in %s; writing them",
            spill.records, spill.path,
        )  # fmt: skip
        await spill.replay()


async def _close_orphans(ledger: UsageLedger, now: float) -> None:
    """End what an earlier run of this node could not (``kill -9``, a crash, power loss)."""
    closed = await ledger.close_orphans(now)
    if closed:
        logger.warning(
            "closed %d allocation%s left open by an earlier run of this node, which did not "
            "stop cleanly (end reason %s; billed as the ledger had them)",
            closed, "" if closed == 1 else "s", RESTART_END_REASON,
        )  # fmt: skip


def _raise_descriptor_limit() -> None:
    """Take every file descriptor the hard limit allows: a soft limit of 1,024 is a few
    hundred allocations (``descriptor_reserve`` keeps some from HTTP clients)."""
    raised = raise_limit()
    if raised.after > raised.before:
        logger.info("file descriptor limit raised from %d to %d", raised.before, raised.after)
    else:
        logger.debug("file descriptor limit: %d", raised.after)


async def _listen_turn(
    config: Config,
    edge: TurnEdge,
    alternates: AlternateAddresses | None,
    running: Running,
) -> None:
    """STUN/TURN over UDP and TCP on ``turn_port``, TLS on every TLS port, RFC 5780's others."""
    for ip in config.listen_ips:
        running.udp.append(await edge.listen_udp(ip, config.turn_port))
        running.tcp.append(await edge.listen_stream(ip, config.turn_port))
        if config.tls_ports:
            tls = running.tls_contexts.context()
            for port in config.tls_ports:
                running.tls.append(await edge.listen_stream(ip, port, tls))
    # RFC 5780 §6: the other three of (A1|A2, P1|P2), UDP and TCP; (A1, P1) is above.
    for host, port in alternates.listeners()[1:] if alternates else ():
        running.discovery.append(await edge.listen_udp(host, port))
        running.tcp.append(await edge.listen_stream(host, port))


async def serve(
    config: Config, datadir: DataDir, reread: Callable[[], Config] | None = None
) -> None:
    """Run until SIGINT, or until a drain (SIGTERM) is done, then shut down cleanly (all
    usage flushed); reload on SIGHUP with the configuration ``reread`` loads
    (:mod:`passage.lifecycle`).

    While it runs, ``DATA_DIR/server.json`` (:mod:`passage.runtime`) says where.
    """
    workers = worker_count(config, len(os.sched_getaffinity(0)))
    try:
        running = await start(config, datadir, workers=workers)
    except WorkerStartError as error:
        raise ConfigError(str(error)) from None
    except OSError as error:
        # The CLI checked every port and address before; another process got there since.
        raise ConfigError(
            f"could not start listening: {error.strerror or error} (a port or address "
            "was taken after passage serve checked it; try again)"
        ) from None
    record = runtime_record(config, datadir, running)
    try:
        write_record(datadir.path, record)  # RuntimeRecordError: one line, exit 2
    except BaseException:
        await running.stop()
        raise
    sys.stderr.write(banner(config, datadir, running) + "\n")
    sys.stderr.flush()
    running.reread = reread
    lifecycle = Lifecycle(running, record, reread or (lambda: config))
    lifecycle.install(asyncio.get_running_loop())
    try:
        await lifecycle.stopped.wait()
        logger.info("shutting down: ending %d allocations", running.allocations)
    finally:
        await lifecycle.close()
        remove_record(datadir.path, record.boot_id)
        await running.stop()
        logger.info("stopped; usage ledger flushed")


def runtime_record(config: Config, datadir: DataDir, running: Running) -> RuntimeRecord:
    """What ``server.json`` says of this start: the process, and where clients reach it."""
    endpoint = advertised_endpoint(config, relay_addresses(config))
    if not running.tls:
        endpoint = dataclasses.replace(endpoint, tls_ports=())
    pid = os.getpid()
    return RuntimeRecord(
        pid=pid,
        boot_id=new_boot_id(),
        started_at=time.time(),
        version=__version__,
        endpoint=endpoint,
        local_api_url=_local_api_url(config, datadir, endpoint),
        public_url=config.public_url or endpoint.websocket_url(),
        ca_file=str(datadir.ca_cert.resolve()) if datadir.ca_cert is not None else None,
        process_start=process_start(pid),
        host_boot=host_boot_id(),
        hc_max_token_lifetime=config.hc_max_token_lifetime,
        database_url=url_without_password(config.database_url or sqlite_url(datadir.path)),
        database_schema=config.database_schema,
    )


def _local_api_url(config: Config, datadir: DataDir, endpoint: AdvertisedEndpoint) -> str | None:
    """Where a command on this host calls the API: a listen IP (loopback for a wildcard),
    which the generated certificate names; the advertised host with an operator's one."""
    port, scheme = (config.api_port, "https") if config.api_port else (config.http_port, "http")
    if not port:
        return None
    if scheme == "https" and datadir.ca_cert is None:
        return endpoint.api_url()
    ip = config.listen_ips[0]
    if ipaddress.ip_address(ip).is_unspecified:
        ip = "::1" if ":" in ip else "127.0.0.1"
    return f"{scheme}://{format_address((ip, port))}/"


def banner(config: Config, datadir: DataDir, running: Running) -> str:
    """What a user needs to point a client at this server."""
    relays = relay_addresses(config)
    endpoint = advertised_endpoint(config, relays)
    lines = [f"Passage is running (data in {datadir.path}, realm {config.turn.realm!r})", ""]
    lines += [
        f"  {uri}"
        for uri in endpoint.ice_uris()
        if running.tls or uri.transport is not Transport.TLS
    ]
    alternates = nat_discovery(config)
    if alternates is not None:
        (ip1, ip2), (port1, port2) = alternates.ips, alternates.ports
        lines += [
            "",
            f"  NAT behaviour discovery (RFC 5780): STUN on {ip1} and {ip2}, "
            f"ports {port1} and {port2} (UDP and TCP)",
        ]
    lines += [
        "",
        f"  relay ports {config.relay_ports[0]}-{config.relay_ports[1]} on "
        + ", ".join(relays.bind.values()),
    ]
    if running.https:
        lines += [
            "",
            f"  API: {endpoint.api_url()} (identities, relay configuration, hybrid connections)",
            f"  signaling: {endpoint.websocket_url()}/signal/ROOM (voip user tokens)",
        ]
    if running.http:
        lines += [f"  API without TLS: {endpoint.api_url(plain_http=True)}"]
    if datadir.ca_cert is not None:
        lines += [f"  TLS CA for clients: {datadir.ca_cert}"]
    if running.https or running.http:
        lines += [f"  connection string: passage connection-string --data-dir {datadir.path}"]
    lines += [
        f"  credentials: passage turn-credentials --user NAME --ttl 3600 --data-dir {datadir.path}"
    ]
    if config.users:
        lines += ["  static users: " + ", ".join(name for name, _ in config.users)]
    if running.cluster is not None:
        link = running.cluster
        state = "joined" if link.up else "degraded: Redis unreachable, serving alone"
        lines += [f"  cluster: node {link.name} ({state})"]
    return "\n".join(lines)


STORE_READ_TIMEOUT = 10.0
"""Seconds a poll of the store may take before it counts as the store unreachable."""


class StorePoll:
    """Re-reads keys, revocations and hybrid connections changed elsewhere: every
    ``interval`` seconds, and at once when a cluster event says something changed. While
    the store is unreachable it says so once, not every second, and keeps what it read."""

    def __init__(
        self, sync: IdentitySync, hybrid_admin: HybridAdmin, clock: Callable[[], float]
    ) -> None:
        self.sync = sync
        self.hybrid_admin = hybrid_admin
        self.clock = clock
        self.read_at = clock()
        """When revocations were last read whole (the start read them)."""
        self.on_read: Callable[[], None] | None = None
        """Called after every poll (cluster mode: how stale what was read is now)."""
        self._identities = asyncio.Lock()
        self._hybrid = asyncio.Lock()
        self._unreachable = False

    async def forever(self, interval: float) -> None:
        """Poll until cancelled. ``on_read`` runs after every poll and, while one hangs (a
        store gone silent: nothing refuses, nothing answers), every ``interval`` too, so
        the staleness bound holds however the store fails."""
        while True:
            await asyncio.sleep(interval)
            reading = asyncio.ensure_future(self._read_all())
            try:
                while not reading.done():
                    await asyncio.wait({reading}, timeout=interval)
                    if self.on_read is not None:
                        self.on_read()
            finally:
                reading.cancel()

    async def _read_all(self) -> None:
        await self.identities()
        await self.hybrid_connections()

    async def identities(self) -> None:
        async with self._identities:
            if await self._poll(self.sync.poll, "identity changes"):
                self.read_at = self.clock()

    async def hybrid_connections(self) -> None:
        async with self._hybrid:
            await self._poll(self.hybrid_admin.refresh, "hybrid connections")

    async def _poll(self, poll: Callable[[], Awaitable[object]], what: str) -> bool:
        try:
            # A read the store never answers (a silent link) is given up, and the next
            # poll connects afresh, rather than waiting for TCP to time out (minutes).
            async with asyncio.timeout(STORE_READ_TIMEOUT):
                await poll()
        except Exception as error:
            if not is_unavailable(error):
                logger.exception("could not read %s from the store", what)
            elif not self._unreachable:
                self._unreachable = True
                logger.warning(
                    "the store is unreachable (%s): serving on what was last read, "
                    "retrying every second", type(error).__name__,
                )  # fmt: skip
            return False
        if self._unreachable:
            self._unreachable = False
            logger.warning("the store is reachable again")
        return True

"""Allocation quotas shared by worker processes (``passage serve --workers N``): two TURN
cores and the parent's :class:`SharedQuota`, joined in memory as the channel joins them:
every ``on_quota`` is a ``Holding``, every ``BindRelay`` an ``Admit`` first."""

from __future__ import annotations

import itertools

import pytest
from turn_harness import (
    REALM,
    Client,
    Clock,
    FakeRelay,
    answer,
    error_code,
    make_server,
    new_client,
)

from passage.stun import AttributeType, Message, MessageClass, Method
from passage.turn.alternate import Alternate, Alternates
from passage.turn.config import TurnConfig
from passage.turn.events import BindRelay
from passage.turn.server import SERVER_QUOTA_REASON, TurnServer
from passage.workers.quota import SERVER_QUOTA, USER_QUOTA, SharedQuota

UDP = ((AttributeType.REQUESTED_TRANSPORT, 17),)
_ports = itertools.count(1000)


class Worker:
    """One worker's core, wired to the parent's book."""

    def __init__(self, index: int, quota: SharedQuota, config: TurnConfig) -> None:
        self.index = index
        self.quota = quota
        self.core: TurnServer = make_server(config, on_quota=self.holding)
        self.clients: list[Client] = []

    def holding(self, quota_key: str, held: int) -> None:
        self.quota.set(self.index, quota_key, held)

    def allocate(self, clock: Clock, user: str = "alice", even_port: bool = False) -> Message:
        """A new client 5-tuple on this worker allocates; the parent admits the bind first."""
        password = {"alice": "wonderland", "bob": "builder"}[user]
        client = new_client(self.core, clock, port=next(_ports), username=user, password=password)
        attributes = (*UDP, (AttributeType.EVEN_PORT, True)) if even_port else UDP
        self.clients.append(client)
        response, actions = client.request(Method.ALLOCATE, attributes)
        binds = [a for a in actions if isinstance(a, BindRelay)]
        if not binds:
            assert response is not None
            return response
        (bind,) = binds
        held = self.core.quota_held(bind.quota_key)
        refused = self.quota.admit(self.index, bind.quota_key, held, bind.units - 1)
        if refused is not None:
            done = self.core.relay_quota_refused(client.five_tuple, refused, clock.now)
        else:
            route = (FakeRelay("relay"), ("192.0.2.10", next(_ports)))
            reserved = (
                (FakeRelay("kept"), ("192.0.2.10", next(_ports))) if bind.reserve_next else None
            )
            done = self.core.relay_bound(client.five_tuple, [route], reserved, clock.now)
        result = answer(done)
        assert result is not None
        return result


def workers(quota: SharedQuota, config: TurnConfig) -> tuple[Worker, Worker]:
    return Worker(1, quota, config), Worker(2, quota, config)


def reason(message: Message) -> str | None:
    value = message.get(AttributeType.ERROR_CODE, object)
    return getattr(value, "reason", None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_user_quota_holds_across_workers(clock: Clock) -> None:
    config = TurnConfig(realm=REALM, max_allocations_per_user=3)
    quota = SharedQuota(config.max_allocations_per_user, config.max_allocations_total)
    one, two = workers(quota, config)
    codes = [error_code(w.allocate(clock)) for w in (one, two, one, two)]
    assert codes == [None, None, None, 486]  # each worker alone would have allowed 3
    refused = two.allocate(clock)
    assert error_code(refused) == 486 and reason(refused) == USER_QUOTA
    assert error_code(two.allocate(clock, user="bob")) is None  # another user is not counted
    assert quota.held("alice") == 3 and quota.total == 4


def test_an_ended_allocation_frees_its_unit_for_another_worker(clock: Clock) -> None:
    config = TurnConfig(realm=REALM, max_allocations_per_user=1)
    quota = SharedQuota(1, 100)
    one, two = workers(quota, config)
    assert error_code(one.allocate(clock)) is None
    assert error_code(two.allocate(clock)) == 486
    one.clients[0].request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    assert quota.held("alice") == 0
    assert error_code(two.allocate(clock)) is None


def test_the_server_quota_holds_across_workers(clock: Clock) -> None:
    config = TurnConfig(realm=REALM, max_allocations_total=2)
    quota = SharedQuota(config.max_allocations_per_user, config.max_allocations_total)
    one, two = workers(quota, config)
    assert error_code(one.allocate(clock)) is None
    assert error_code(two.allocate(clock, user="bob")) is None
    refused = one.allocate(clock, user="bob")
    assert error_code(refused) == 486 and reason(refused) == SERVER_QUOTA


def test_a_full_cluster_node_s_worker_answers_300_to_the_least_loaded_other_node(
    clock: Clock,
) -> None:
    """Cluster mode: the parent finds the node full, the worker names another node (300
    Try Alternate), as one process does; a user's own quota is still 486."""
    config = TurnConfig(realm=REALM, max_allocations_total=1, max_allocations_per_user=1)
    quota = SharedQuota(config.max_allocations_per_user, config.max_allocations_total)
    one, two = workers(quota, config)
    other = Alternates((Alternate(("192.0.2.99", 3478)),))
    two.core.full_alternates = other
    assert error_code(one.allocate(clock)) is None
    refused = two.allocate(clock, user="bob")
    assert error_code(refused) == 300
    assert refused.get(AttributeType.ALTERNATE_SERVER, tuple) == ("192.0.2.99", 3478)
    quota.max_total = 5
    assert error_code(two.allocate(clock)) == 486  # alice holds her one on worker 1
    assert SERVER_QUOTA == SERVER_QUOTA_REASON  # the parent refuses in the core's words


def test_a_kept_port_counts_as_a_unit_when_admitted(clock: Clock) -> None:
    """EVEN-PORT(R) takes two units (RFC 8656 §7.2): the parent admits both at once."""
    config = TurnConfig(realm=REALM, max_allocations_per_user=2)
    quota = SharedQuota(2, 100)
    one, two = workers(quota, config)
    kept = one.allocate(clock, even_port=True)
    assert kept.message_class is MessageClass.SUCCESS
    assert kept.get(AttributeType.RESERVATION_TOKEN, bytes) is not None
    assert quota.held("alice") == 2
    assert error_code(two.allocate(clock)) == 486
    # With one unit left, EVEN-PORT(R) is refused by the parent even though the core has room.
    quota_three = SharedQuota(3, 100)
    three, four = workers(quota_three, TurnConfig(realm=REALM, max_allocations_per_user=3))
    assert error_code(three.allocate(clock)) is None
    assert error_code(four.allocate(clock)) is None
    assert error_code(four.allocate(clock, even_port=True)) == 486


def test_a_refused_admission_frees_the_unit_at_once(clock: Clock) -> None:
    quota = SharedQuota(1, 100)
    config = TurnConfig(realm=REALM, max_allocations_per_user=1)
    one, two = workers(quota, config)
    assert error_code(one.allocate(clock)) is None
    assert error_code(two.allocate(clock)) == 486
    assert quota.held("alice") == 1  # two's pending allocation is not counted any more
    assert two.core.quota_held("alice") == 0


def test_the_parent_sum_is_the_workers_sum_after_every_kind_of_change(clock: Clock) -> None:
    config = TurnConfig(realm=REALM, max_allocations_per_user=50)
    quota = SharedQuota(50, 100)
    one, two = workers(quota, config)
    for worker in (one, two, one, one, two):
        worker.allocate(clock)
    one.allocate(clock, even_port=True)
    one.clients[0].request(Method.REFRESH, ((AttributeType.LIFETIME, 0),))
    two.core.client_closed(two.clients[1].five_tuple, clock.now)
    clock.advance(31)  # the kept port's reservation expires
    one.core.handle_timer(clock.now)
    expected = one.core.quota_held("alice") + two.core.quota_held("alice")
    assert quota.held("alice") == expected == 4


def test_a_dead_worker_holds_nothing(clock: Clock) -> None:
    quota = SharedQuota(2, 100)
    config = TurnConfig(realm=REALM, max_allocations_per_user=2)
    one, two = workers(quota, config)
    one.allocate(clock)
    one.allocate(clock)
    assert error_code(two.allocate(clock)) == 486
    quota.forget(one.index)  # kill -9: its allocations are gone with it
    assert quota.held("alice") == 0 and quota.total == 0
    assert error_code(two.allocate(clock)) is None


def test_a_user_s_allocations_on_other_cluster_nodes_count_too(clock: Clock) -> None:
    config = TurnConfig(realm=REALM, max_allocations_per_user=3)
    quota = SharedQuota(3, 100)
    one, two = workers(quota, config)
    quota.elsewhere = {"alice": 2}  # what the cluster's other nodes hold, read each second
    assert error_code(one.allocate(clock)) is None
    assert error_code(two.allocate(clock)) == 486
    assert quota.per_key() == {"alice": 1}  # what this node tells the cluster

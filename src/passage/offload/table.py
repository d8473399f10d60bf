"""Which channels are in the kernel, in which meter slot, and whose bytes they counted.

The control plane's bookkeeping, pure: the adapter tells :class:`ChannelTable`
which channels each allocation should have offloaded *now* (:meth:`sync`, after
every change the TURN core made to the allocation's routes, and at expiry), and
gets back the map writes to do. It reads the meters whenever it flushes usage
and hands the readings to :meth:`collect`, which says how many bytes and
packets each allocation relayed in the kernel since the last reading.

Slots are bounded (the ``meters`` map has a fixed size). A removed channel's
slot is *draining* until the next :meth:`collect`: packets already inside the
program when its entries went away still count there, and are attributed to
the allocation that owned them before the slot is used again. A slot is zeroed
by the adapter when it is handed out again (:attr:`Changes.install`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from passage.offload.maps import ZERO_METER, ChannelPath, Meter


@dataclass(frozen=True, slots=True)
class Installed:
    """A channel the adapter must write: zero ``slot``'s meter, then both flow entries."""

    path: ChannelPath
    slot: int


@dataclass(frozen=True, slots=True)
class Removed:
    """A channel whose two flow entries the adapter must delete."""

    path: ChannelPath
    slot: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What one :meth:`ChannelTable.sync` asks of the kernel maps, removals first."""

    remove: tuple[Removed, ...] = ()
    install: tuple[Installed, ...] = ()
    refused: tuple[ChannelPath, ...] = ()
    """Channels left to userspace because every slot is taken (counted, not an error)."""

    def __bool__(self) -> bool:
        return bool(self.remove or self.install or self.refused)


@dataclass(slots=True)
class _Slot:
    owner: str
    path: ChannelPath | None
    """``None`` while draining (removed, not yet collected)."""
    seen: Meter = ZERO_METER


@dataclass(slots=True)
class ChannelTable:
    """The offloaded channels of every allocation, and the meter slots they count in."""

    capacity: int
    """Meter slots: the most channels in the kernel at once (the ``meters`` map's size)."""
    _slots: dict[int, _Slot] = field(default_factory=dict)
    _by_owner: dict[str, dict[ChannelPath, int]] = field(default_factory=dict)
    _free: list[int] = field(default_factory=list)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.capacity <= 0:
            raise ValueError("capacity must be positive")

    def __len__(self) -> int:
        """Channels offloaded now (draining slots not counted)."""
        return sum(len(paths) for paths in self._by_owner.values())

    def paths(self, owner: str) -> frozenset[ChannelPath]:
        """The channels of ``owner`` in the kernel now."""
        return frozenset(self._by_owner.get(owner, {}))

    def sync(self, owner: str, desired: Iterable[ChannelPath]) -> Changes:
        """Make ``owner``'s offloaded channels exactly ``desired``; the map writes that takes.

        A channel whose path changed (a peer re-bound on the same number, a new
        client port) is one removal and one installation.
        """
        wanted = set(desired)
        current = self._by_owner.setdefault(owner, {})
        removed = tuple(
            self._drain(current, path) for path in sorted(set(current) - wanted, key=repr)
        )
        installed: list[Installed] = []
        refused: list[ChannelPath] = []
        for path in sorted(wanted - set(current), key=repr):
            slot = self._take(owner, path)
            if slot is None:
                refused.append(path)
                continue
            current[path] = slot
            installed.append(Installed(path, slot))
        if not current:
            del self._by_owner[owner]
        return Changes(removed, tuple(installed), tuple(refused))

    def release(self, owner: str) -> Changes:
        """``owner`` ended: remove all its channels (their bytes are still collected)."""
        return self.sync(owner, ())

    def collect(self, readings: Mapping[int, Meter]) -> dict[str, Meter]:
        """Per owner, what the kernel relayed since the last call; frees drained slots.

        ``readings`` holds the current meter of every slot in use (the adapter
        reads :meth:`slots_in_use`). A slot missing from it counted nothing new.
        """
        deltas: dict[str, Meter] = {}
        for slot, state in list(self._slots.items()):
            reading = readings.get(slot, state.seen)
            delta = reading - state.seen
            if any(delta):
                deltas[state.owner] = deltas.get(state.owner, ZERO_METER) + delta
            state.seen = reading
            if state.path is None:
                del self._slots[slot]
                self._free.append(slot)
        return deltas

    def slots_in_use(self) -> list[int]:
        """Slots to read before :meth:`collect`: live and draining ones."""
        return sorted(self._slots)

    def _take(self, owner: str, path: ChannelPath) -> int | None:
        if self._free:
            slot = self._free.pop()
        elif self._next < self.capacity:
            slot = self._next
            self._next += 1
        else:
            return None
        self._slots[slot] = _Slot(owner, path)
        return slot

    def _drain(self, current: dict[ChannelPath, int], path: ChannelPath) -> Removed:
        slot = current.pop(path)
        self._slots[slot].path = None
        return Removed(path, slot)

"""The loaded XDP program: its maps, typed; attaching it to interfaces and taking it off.

Attachment is a BPF *link* (``bpf_link_create``), not the older netlink
attachment: the link lives as long as the file descriptor this process holds,
so when Passage stops, or is killed with ``kill -9``, the kernel detaches the
program by itself. Nothing is pinned, so nothing outlives the process. A
program named ``passage_xdp`` found attached the old way (by a tool or an
earlier build) is taken off before attaching; any other XDP program on the
interface is left alone, and attaching fails with a message naming it.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from passage.offload import maps
from passage.offload.capabilities import (
    OffloadUnavailable,
    effective_capabilities,
    explain_missing,
    missing_capabilities,
)
from passage.offload.maps import ChannelPath, Meter, Neighbour, Outcome
from passage.offload.xdp import libbpf
from passage.offload.xdp.kernel import Rtnetlink

OBJECT_NAME = "passage_xdp.o"


class AttachMode(enum.StrEnum):
    """How the program hooks into an interface."""

    AUTO = "auto"
    """Generic on veths (native ``XDP_TX`` there needs an XDP program on the other end too);
    native elsewhere, generic when the driver has no native XDP."""
    NATIVE = "native"
    """In the driver, before an skb exists: the fast one, where the driver supports it."""
    GENERIC = "generic"
    """After the skb is built (``xdpgeneric``): works on every interface."""


_FLAGS = {
    AttachMode.NATIVE: libbpf.XDP_FLAGS_DRV_MODE,
    AttachMode.GENERIC: libbpf.XDP_FLAGS_SKB_MODE,
}


@dataclass(frozen=True, slots=True)
class Capacities:
    """Map sizes: what the kernel holds at most. Channels beyond them stay in userspace."""

    channels: int = 65536
    """Offloaded channels at once (meter slots); the flow map holds two entries per channel."""
    neighbours: int = 16384
    """Next hops remembered (least recently used ones are forgotten, then learned again)."""


DEFAULT_CAPACITIES = Capacities()


def default_object() -> Path:
    """Where ``make offload`` puts the compiled program."""
    return Path(str(resources.files("passage.offload") / "bpf" / OBJECT_NAME))


def check_capabilities() -> None:
    """Return when this process may load and attach XDP; else :class:`OffloadUnavailable`."""
    with open("/proc/self/status", encoding="ascii") as status:
        missing = missing_capabilities(effective_capabilities(status.read()))
    if missing:
        raise OffloadUnavailable(explain_missing(missing))


@dataclass(frozen=True, slots=True)
class Attachment:
    ifindex: int
    name: str
    mode: AttachMode
    link_fd: int


class XdpProgram:
    """The program loaded from ``object_path`` with its maps; closed with :meth:`close`."""

    def __init__(
        self, object_path: Path | None = None, capacities: Capacities = DEFAULT_CAPACITIES
    ):
        path = object_path or default_object()
        if not path.exists():
            raise OffloadUnavailable(
                f"the XDP program is not built ({path}): run `make offload` "
                "(it needs Debian's clang and libbpf-dev)"
            )
        check_capabilities()
        self.capacities = capacities
        self.cpus = libbpf.check(libbpf.call("libbpf_num_possible_cpus")(), "possible CPUs")
        self._object = libbpf.check_pointer(
            libbpf.call("bpf_object__open_file")(str(path).encode(), None), f"open {path}"
        )
        self.attachments: dict[int, Attachment] = {}
        try:
            self._size("flows", 2 * capacities.channels)
            self._size("meters", capacities.channels)
            self._size("neighbours", capacities.neighbours)
            result = libbpf.call("bpf_object__load")(self._object)
            if result < 0:
                detail = "\n".join(libbpf.recent_messages()[-12:])
                raise OffloadUnavailable(
                    f"the kernel refused the XDP program ({os.strerror(-result)}):\n{detail}"
                )
            program = libbpf.check_pointer(
                libbpf.call("bpf_object__find_program_by_name")(
                    self._object, maps.PROGRAM_NAME.encode()
                ),
                "find the program",
            )
            self.fd = libbpf.check(libbpf.call("bpf_program__fd")(program), "program fd")
            self._flows = self._map_fd("flows")
            self._neighbours = self._map_fd("neighbours")
            self._interfaces = self._map_fd("interfaces")
            self._meters = self._map_fd("meters")
            self._outcomes = self._map_fd("outcomes")
        except BaseException:
            libbpf.call("bpf_object__close")(self._object)
            raise

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Detach from every interface and free the program and its maps. Safe twice."""
        for ifindex in list(self.attachments):
            self.detach(ifindex)
        if self._object:
            libbpf.call("bpf_object__close")(self._object)
            self._object = 0

    def attach(self, ifindex: int, mode: AttachMode = AttachMode.AUTO) -> Attachment:
        """Hook the program into ``ifindex``; a stale ``passage_xdp`` there is taken off first."""
        with Rtnetlink() as kernel:
            link = kernel.link(ifindex)
            if link.xdp_program is not None:
                self._remove_stale(ifindex, link.name, link.xdp_program)
        chosen = mode
        if mode is AttachMode.AUTO:
            chosen = AttachMode.GENERIC if link.kind == "veth" else AttachMode.NATIVE
        try:
            fd = self._link(ifindex, chosen)
        except OSError as exc:
            if mode is not AttachMode.AUTO or exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise OffloadUnavailable(
                    f"cannot attach XDP ({chosen}) to {link.name}: {exc.strerror}"
                ) from exc
            chosen = AttachMode.GENERIC
            fd = self._link(ifindex, chosen)
        self.set_interface(ifindex, link.mtu)
        attachment = Attachment(ifindex, link.name, chosen, fd)
        self.attachments[ifindex] = attachment
        return attachment

    def detach(self, ifindex: int) -> None:
        """Take the program off ``ifindex`` (closing the link detaches it)."""
        attachment = self.attachments.pop(ifindex, None)
        if attachment is not None:
            os.close(attachment.link_fd)

    def _link(self, ifindex: int, mode: AttachMode) -> int:
        options = LinkOptions(ctypes.sizeof(libbpf.LinkCreateOpts), _FLAGS[mode])
        return libbpf.check(
            libbpf.call("bpf_link_create")(self.fd, ifindex, libbpf.BPF_XDP, options.pointer()),
            f"attach XDP ({mode}) to interface {ifindex}",
        )

    def _remove_stale(self, ifindex: int, name: str, program_id: int) -> None:
        found = program_name(program_id)
        if found != maps.PROGRAM_NAME:
            raise OffloadUnavailable(
                f"{name} already has an XDP program (id {program_id}, {found!r}); "
                "Passage does not replace another program"
            )
        for flags in (libbpf.XDP_FLAGS_SKB_MODE, libbpf.XDP_FLAGS_DRV_MODE):
            result = libbpf.call("bpf_xdp_detach")(ifindex, flags, None)
            if result == -errno.EBUSY:
                raise OffloadUnavailable(
                    f"{name}'s XDP hook is held by a running process (program {program_id}, "
                    "passage_xdp): is another passage serve offloading on it?"
                )

    # -- maps --------------------------------------------------------------------------

    def install(self, path: ChannelPath, slot: int) -> None:
        """Write ``path``'s two flow entries (meter ``slot`` zeroed first)."""
        self.zero_meter(slot)
        for entry in maps.flow_entries(path, slot):
            self._update(self._flows, entry.key, entry.value, "install a channel")

    def remove(self, path: ChannelPath) -> None:
        """Delete ``path``'s two flow entries; a missing one is not an error."""
        for key in maps.flow_keys(path):
            result = libbpf.call("bpf_map_delete_elem")(self._flows, key)
            if result < 0 and result != -errno.ENOENT:
                libbpf.check(result, "remove a channel")

    def flows(self) -> dict[bytes, maps.DecodedFlow]:
        """Every flow entry, decoded (for inspection and tests)."""
        return {
            key: maps.decode_flow(value)
            for key, value in self._entries(self._flows, maps.FLOW_KEY.size, maps.FLOW.size)
        }

    def set_neighbour(self, ip: str, neighbour: Neighbour) -> None:
        self._update(
            self._neighbours,
            maps.neighbour_key(ip),
            maps.neighbour_value(neighbour),
            "set a neighbour",
        )

    def neighbour(self, ip: str) -> Neighbour | None:
        raw = self._lookup(self._neighbours, maps.neighbour_key(ip), maps.NEIGHBOUR.size)
        return maps.decode_neighbour(raw) if raw is not None else None

    def set_interface(self, ifindex: int, mtu: int) -> None:
        key = maps.SLOT.pack(ifindex)
        self._update(self._interfaces, key, maps.interface_value(mtu), "set an interface")

    def zero_meter(self, slot: int) -> None:
        zero = bytes(self._per_cpu(maps.METER.size))
        self._update(self._meters, maps.slot_key(slot), zero, "zero a meter")

    def meters(self, slots: list[int]) -> dict[int, Meter]:
        """The summed per-CPU meters of ``slots``."""
        size = self._per_cpu(maps.METER.size)
        found = {}
        for slot in slots:
            raw = self._lookup(self._meters, maps.slot_key(slot), size)
            if raw is not None:
                found[slot] = maps.sum_meters(raw, self.cpus)
        return found

    def outcomes(self) -> dict[Outcome, int]:
        """Packets per outcome since load, all CPUs summed."""
        size = self._per_cpu(maps.COUNTER.size)
        counted = {}
        for outcome in Outcome:
            raw = self._lookup(self._outcomes, maps.slot_key(outcome), size)
            counted[outcome] = maps.sum_counters(raw, self.cpus) if raw is not None else 0
        return counted

    def test_run(self, frame: bytes, repeat: int = 1) -> tuple[int, bytes, int]:
        """Run the program on ``frame`` (``BPF_PROG_TEST_RUN``): verdict, frame out, ns per run."""
        data_out = ctypes.create_string_buffer(len(frame) + 256)
        data_in = ctypes.create_string_buffer(frame, len(frame))
        options = libbpf.TestRunOpts(
            sz=ctypes.sizeof(libbpf.TestRunOpts),
            data_in=ctypes.cast(data_in, ctypes.c_void_p),
            data_out=ctypes.cast(data_out, ctypes.c_void_p),
            data_size_in=len(frame),
            data_size_out=len(data_out),
            repeat=repeat,
        )
        libbpf.check(
            libbpf.call("bpf_prog_test_run_opts")(self.fd, ctypes.byref(options)), "test run"
        )
        return options.retval, data_out.raw[: options.data_size_out], options.duration

    # -- helpers -----------------------------------------------------------------------

    def _size(self, name: str, entries: int) -> None:
        found = libbpf.check_pointer(
            libbpf.call("bpf_object__find_map_by_name")(self._object, name.encode()), name
        )
        libbpf.check(libbpf.call("bpf_map__set_max_entries")(found, entries), f"size {name}")

    def _map_fd(self, name: str) -> int:
        found = libbpf.check_pointer(
            libbpf.call("bpf_object__find_map_by_name")(self._object, name.encode()), name
        )
        return libbpf.check(libbpf.call("bpf_map__fd")(found), f"{name} fd")

    def _per_cpu(self, size: int) -> int:
        return ((size + 7) & ~7) * self.cpus

    def _update(self, fd: int, key: bytes, value: bytes, what: str) -> None:
        libbpf.check(libbpf.call("bpf_map_update_elem")(fd, key, value, libbpf.BPF_ANY), what)

    def _lookup(self, fd: int, key: bytes, size: int) -> bytes | None:
        buffer = ctypes.create_string_buffer(size)
        result = libbpf.call("bpf_map_lookup_elem")(fd, key, buffer)
        if result == -errno.ENOENT:
            return None
        libbpf.check(result, "map lookup")
        return buffer.raw

    def _entries(self, fd: int, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
        found = []
        key: bytes | None = None
        following = ctypes.create_string_buffer(key_size)
        while libbpf.call("bpf_map_get_next_key")(fd, key, following) == 0:
            key = following.raw
            value = self._lookup(fd, key, value_size)
            if value is not None:
                found.append((key, value))
        return found


class LinkOptions:
    """A ``bpf_link_create_opts`` kept alive while libbpf reads it."""

    def __init__(self, size: int, flags: int) -> None:
        self._options = libbpf.LinkCreateOpts(sz=size, flags=flags)

    def pointer(self) -> ctypes._Pointer[libbpf.LinkCreateOpts]:
        return ctypes.pointer(self._options)


def program_name(program_id: int) -> str:
    """The name of the loaded program ``program_id`` (``""`` if it is gone)."""
    fd = libbpf.call("bpf_prog_get_fd_by_id")(program_id)
    if fd < 0:
        return ""
    try:
        info = ctypes.create_string_buffer(libbpf.PROG_INFO_SIZE)
        size = ctypes.c_uint32(libbpf.PROG_INFO_SIZE)
        libbpf.check(
            libbpf.call("bpf_obj_get_info_by_fd")(fd, info, ctypes.byref(size)), "program info"
        )
        raw = info.raw[libbpf.PROG_INFO_NAME : libbpf.PROG_INFO_NAME + 16]
        return raw.split(b"\x00", 1)[0].decode(errors="replace")
    finally:
        os.close(fd)

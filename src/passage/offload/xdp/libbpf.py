"""libbpf 1.x through ctypes: the dozen calls the offload makes, typed, errors as OSError.

Why libbpf and not the raw ``bpf()`` syscall: see docs/offload.md. In short,
libbpf parses the ELF object, creates the maps from its BTF definitions and
patches their file descriptors into the program; done by hand that is an ELF
reader and a relocator to keep in step with clang. libbpf's ABI is stable
since 1.0, and Debian's ``libbpf1`` is already on most hosts (iproute2 needs
it). It is loaded only when the offload is asked for: ``import passage``
never touches it.

libbpf 1.x conventions: calls returning ``int`` return ``-errno``; calls
returning a pointer return NULL and set ``errno``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from passage.offload.capabilities import OffloadUnavailable

log = logging.getLogger("passage.offload")

LIBRARY = "libbpf.so.1"

BPF_XDP = 37
"""``enum bpf_attach_type``: BPF_XDP, for ``bpf_link_create``."""
XDP_FLAGS_UPDATE_IF_NOEXIST = 1
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
BPF_ANY = 0
BPF_PROG_TYPE_XDP = 6
PROG_INFO_SIZE = 256
"""Bytes offered for ``struct bpf_prog_info`` (zero beyond what the kernel knows is allowed)."""
PROG_INFO_TYPE, PROG_INFO_NAME = 0, 64
"""Offsets in ``struct bpf_prog_info`` of ``type`` and ``name[16]``."""


class LinkCreateOpts(ctypes.Structure):
    """``struct bpf_link_create_opts``, up to ``flags`` (libbpf reads ``sz`` to know)."""

    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class TestRunOpts(ctypes.Structure):
    """``struct bpf_test_run_opts`` (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


_PrintFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
    "bpf_object__load": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_object__close": (None, [ctypes.c_void_p]),
    "bpf_object__find_program_by_name": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "bpf_object__find_map_by_name": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "bpf_program__fd": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_map__fd": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_map__set_max_entries": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "bpf_link_create": (
        ctypes.c_int,
        [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(LinkCreateOpts)],
    ),
    "bpf_map_update_elem": (
        ctypes.c_int,
        [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint64],
    ),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]),
    "bpf_map_delete_elem": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p]),
    "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]),
    "bpf_prog_get_fd_by_id": (ctypes.c_int, [ctypes.c_uint32]),
    "bpf_obj_get_info_by_fd": (
        ctypes.c_int,
        [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)],
    ),
    "bpf_xdp_detach": (ctypes.c_int, [ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p]),
    "bpf_prog_test_run_opts": (ctypes.c_int, [ctypes.c_int, ctypes.POINTER(TestRunOpts)]),
    "libbpf_num_possible_cpus": (ctypes.c_int, []),
    "libbpf_set_print": (ctypes.c_void_p, [_PrintFn]),
}


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _forward_print(level: int, fmt: bytes | None, args: int | None) -> int:
    """libbpf's log lines (the verifier's among them) into our log, at debug level."""
    buffer = ctypes.create_string_buffer(4096)
    _libc().vsnprintf(buffer, ctypes.c_size_t(len(buffer)), fmt, ctypes.c_void_p(args))
    text = buffer.value.decode(errors="replace").rstrip()
    if text:
        log.debug("libbpf: %s", text)
        _recent.append(text)
        del _recent[:-40]
    return 0


_recent: list[str] = []
"""libbpf's last lines: put into the error when a load fails (the verifier says why there)."""
_print_callback = _PrintFn(_forward_print)


def recent_messages() -> list[str]:
    return list(_recent)


@functools.cache
def library() -> ctypes.CDLL:
    """libbpf, loaded and typed once; :class:`OffloadUnavailable` when it is not installed."""
    name = ctypes.util.find_library("bpf") or LIBRARY
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise OffloadUnavailable(
            f"--offload xdp needs libbpf 1.x ({LIBRARY}): install Debian's libbpf1 ({exc})"
        ) from exc
    for function, (restype, argtypes) in _SIGNATURES.items():
        try:
            call = getattr(lib, function)
        except AttributeError as exc:
            raise OffloadUnavailable(
                f"--offload xdp needs libbpf 1.1 or later; {name} has no {function}"
            ) from exc
        call.restype = restype
        call.argtypes = argtypes
    lib.libbpf_set_print(_print_callback)
    return lib


def check(result: int, what: str) -> int:
    """``result`` if it is not negative; else an OSError named after ``what``."""
    if result < 0:
        code = -result
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def check_pointer(pointer: int | None, what: str) -> int:
    """A non-NULL pointer, or the OSError of the errno libbpf left."""
    if not pointer:
        code = ctypes.get_errno() or errno.EINVAL
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return pointer


def call(function: str) -> Callable[..., Any]:
    """A typed libbpf function by name."""
    fn: Callable[..., Any] = getattr(library(), function)
    return fn

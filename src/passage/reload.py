"""What a reload (SIGHUP, ``passage reload``) changes: a pure diff of two configurations.

A running server re-reads its configuration and calls :func:`plan_reload` with
the configuration it runs and the one just read. The plan says which settings
take effect now, which differ but need a restart (they keep their running
value), and the configuration to run with from now on. Nothing here touches a
socket, a file or a clock.

Reloadable: the certificate and key, the secrets of REST credentials, static
users, peer allow and deny ranges, quotas, lifetimes and bandwidth caps, the
log level and format, the alternate servers a drain redirects to and the drain timeout.
Everything that decides what is bound or advertised (ports, addresses, the data
directory, the store) needs a restart, as do the realm (every long-term key and
live allocation depends on it) and the rate limiters' settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from passage.config import OPTIONS, SECTIONS, Config, Option

__all__ = ["RELOADABLE", "ReloadPlan", "plan_reload"]

RELOADABLE: frozenset[str] = frozenset(
    {
        "tls_cert",
        "tls_key",
        "auth_secrets",
        "users",
        "log_level",
        "log_format",
        "alternate_servers",
        "tls_alternate_servers",
        "drain_timeout",
        "turn_software",
        "turn_default_lifetime",
        "turn_max_lifetime",
        "turn_permission_lifetime",
        "turn_channel_lifetime",
        "turn_reservation_lifetime",
        "turn_max_allocations_per_user",
        "turn_max_allocations_total",
        "turn_max_permissions_per_allocation",
        "turn_max_channels_per_allocation",
        "turn_max_bytes_per_second",
        "turn_allow_loopback_peers",
        "turn_allowed_peer_ranges",
        "turn_denied_peer_ranges",
    }
)
"""The :attr:`passage.config.Option.dest` of every setting a reload applies at once."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The outcome of comparing the running configuration with a new one."""

    config: Config
    """What to run with now: the running configuration, every reloadable setting new."""

    applied: tuple[str, ...]
    """TOML keys of the reloadable settings whose value changes, in :data:`OPTIONS` order."""

    needs_restart: tuple[str, ...]
    """TOML keys of the settings that differ but take effect only at the next start."""

    def describe(self) -> str:
        """``changed: users, turn.max_bytes_per_second`` or ``no setting changed``."""
        return "changed: " + ", ".join(self.applied) if self.applied else "no setting changed"


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Compare ``running`` with ``new``; see :class:`ReloadPlan`.

    Options not in :data:`OPTIONS` do not exist, so every field of :class:`Config`
    is judged; a setting's value counts as changed when it is not equal (order of
    repeated values included: the first auth secret is the one that mints).
    """
    applied: list[str] = []
    restart: list[str] = []
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for option in OPTIONS:
        before, after = _value(running, option), _value(new, option)
        if before == after:
            continue
        if option.dest not in RELOADABLE:
            restart.append(option.toml_key)
            continue
        applied.append(option.toml_key)
        (nested[option.section] if option.section else top)[option.name] = after
    sections = {
        section: dataclasses.replace(getattr(running, section), **changes)
        for section, changes in nested.items()
        if changes
    }
    config = dataclasses.replace(running, **top, **sections)
    return ReloadPlan(config, tuple(applied), tuple(restart))


def _value(config: Config, option: Option) -> Any:
    holder = getattr(config, option.section) if option.section else config
    return getattr(holder, option.name)

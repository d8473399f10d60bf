"""The settings a server runs with, as an operator may see them: secrets masked.

:func:`shown_settings` walks :data:`passage.config.OPTIONS` in order and
writes each value as text. What would let someone in is never shown: the
REST shared secrets (``auth_secrets``) and static users' passwords are
masked, and so is a password in ``database_url`` or ``redis_url``. ``GET /settings`` and the
console's Settings page show this list.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from passage.config import OPTIONS, PORT_RANGE, Config, ConfigError, Option
from passage.live import Setting, SettingsView
from passage.reload import RELOADABLE

__all__ = ["MASK", "settings_view", "shown_settings"]

MASK = "********"


def _masked_secrets(value: object) -> str:
    count = len(value) if isinstance(value, tuple) else 0
    return f"{count} secret{'' if count == 1 else 's'} ({MASK})" if count else ""


def _masked_users(value: object) -> str:
    users = value if isinstance(value, tuple) else ()
    return ", ".join(f"{name}:{MASK}" for name, _ in users)


def _masked_url(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        parts = urllib.parse.urlsplit(value)
        if parts.password is None:
            return value
        host = parts.netloc.rpartition("@")[2]
        user = urllib.parse.quote(parts.username or "", safe="")
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
    except ValueError:
        return MASK  # not a URL we can take apart: show none of it


_SECRET: dict[str, Callable[[object], str]] = {
    "auth_secrets": _masked_secrets,
    "users": _masked_users,
    "database_url": _masked_url,
    "redis_url": _masked_url,
}
"""Options whose value holds a secret, and how each is shown."""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return ", ".join("=".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value)
    return str(value)


def _value_of(config: Config, option: Option) -> object:
    holder = getattr(config, option.section) if option.section else config
    return getattr(holder, option.name)


def _shown(config: Config, option: Option) -> str:
    value = _value_of(config, option)
    mask = _SECRET.get(option.name) if not option.section else None
    if mask is not None:
        return mask(value)
    if option.kind is PORT_RANGE and isinstance(value, tuple):
        return f"{value[0]}-{value[1]}"
    return _text(value)


def shown_settings(config: Config, reloaded: Config | None = None) -> list[Setting]:
    """Every option, in ``--help`` order, with its value as text; secrets masked. With
    ``reloaded`` (the configuration a reload would read now), each that differs says its
    value after the reload and whether a reload applies it (else it needs a restart)."""
    shown = []
    for option in OPTIONS:
        text = _shown(config, option)
        secret = not option.section and option.name in _SECRET
        after = None
        if reloaded is not None and _value_of(reloaded, option) != _value_of(config, option):
            after = _shown(reloaded, option)
            if after == text:  # a secret changed behind the same mask
                after = f"{text} (changed)"
        applies = option.dest in RELOADABLE
        shown.append(Setting(option.toml_key, option.flag, text, secret, after, applies))
    return shown


def settings_view(config: Config, reread: Callable[[], Config] | None) -> SettingsView:
    """The settings ``config`` holds, and what a reload would change, asking ``reread``
    for the configuration as it reads now (None: nothing to compare with)."""
    if reread is None:
        return SettingsView(shown_settings(config), reload_checked=False)
    try:
        reloaded = reread()
    except ConfigError as error:
        return SettingsView(shown_settings(config), reload_checked=True, reload_error=str(error))
    return SettingsView(shown_settings(config, reloaded), reload_checked=True)

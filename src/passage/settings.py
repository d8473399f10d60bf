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

from passage.config import OPTIONS, PORT_RANGE, Config, Option
from passage.live import Setting

__all__ = ["MASK", "shown_settings"]

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


def shown_settings(config: Config) -> list[Setting]:
    """Every option, in ``--help`` order, with its value as text; secrets masked."""
    shown = []
    for option in OPTIONS:
        value = _value_of(config, option)
        mask = _SECRET.get(option.name) if not option.section else None
        if mask is not None:
            text = mask(value)
        elif option.kind is PORT_RANGE and isinstance(value, tuple):
            text = f"{value[0]}-{value[1]}"
        else:
            text = _text(value)
        shown.append(Setting(option.toml_key, option.flag, text, mask is not None))
    return shown

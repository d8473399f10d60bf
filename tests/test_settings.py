"""What an operator may see of the settings: secrets masked, and what a reload would change."""

from __future__ import annotations

import dataclasses

from passage.config import Config, ConfigError, load_config
from passage.settings import _masked_url, settings_view, shown_settings


def test_a_database_password_is_masked() -> None:
    assert _masked_url("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:********@db:5432/x"
    assert _masked_url("postgresql://db/x") == "postgresql://db/x"
    assert "s3cret" not in _masked_url("postgresql://bob:s3cret@[::1/x")


def _config(**changes: object) -> Config:
    return dataclasses.replace(load_config({}, {}), **changes)


def test_what_a_reload_would_change_applies_or_needs_a_restart() -> None:
    running = _config(users=(("alice", "one"),), max_listeners=25)
    reloaded = dataclasses.replace(
        running,
        users=(("alice", "two"),),
        max_listeners=30,
        turn=dataclasses.replace(running.turn, max_bytes_per_second=5000),
    )
    shown = {s.name: s for s in shown_settings(running, reloaded)}
    assert (shown["max_listeners"].after_reload, shown["max_listeners"].reload_applies) == (
        "30",
        False,
    )
    bandwidth = shown["turn.max_bytes_per_second"]
    assert (bandwidth.value, bandwidth.after_reload, bandwidth.reload_applies) == (
        "0",
        "5000",
        True,
    )
    # A new password shows that it changed, never what it is.
    assert shown["users"].after_reload == "alice:******** (changed)"
    assert "two" not in str(shown["users"])
    assert shown["turn.realm"].after_reload is None


def test_a_configuration_that_no_longer_reads_is_reported() -> None:
    def broken() -> Config:
        raise ConfigError("passage.toml: turn_port must be a port")

    view = settings_view(_config(), broken)
    assert view.reload_checked and view.reload_error == "passage.toml: turn_port must be a port"
    assert all(setting.after_reload is None for setting in view.settings)
    assert not settings_view(_config(), None).reload_checked


def test_a_redis_password_is_masked() -> None:
    shown = {s.name: s for s in shown_settings(_config(redis_url="redis://:hunter2@r:6379/0"))}
    assert shown["redis_url"].value == "redis://:********@r:6379/0"

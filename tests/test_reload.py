"""The reload plan (``passage.reload``): what a SIGHUP applies, what waits for a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from passage.config import OPTIONS, Config, load_config
from passage.reload import RELOADABLE, plan_reload
from passage.turn.config import TurnConfig


def test_every_reloadable_name_is_a_setting() -> None:
    """A typo in the table would silently make a setting need a restart."""
    assert RELOADABLE <= {option.dest for option in OPTIONS}


def test_nothing_changed_is_said_so() -> None:
    plan = plan_reload(Config(), Config())
    assert (plan.applied, plan.needs_restart) == ((), ())
    assert plan.config == Config()
    assert plan.describe() == "no setting changed"


def test_reloadable_settings_take_their_new_values() -> None:
    running = Config(users=(("alice", "a"),), log_level="info")
    new = Config(
        users=(("bob", "b"),),
        log_level="debug",
        auth_secrets=("s1",),
        tls_cert=Path("new.pem"),
        tls_key=Path("new.key"),
        turn=TurnConfig(max_bytes_per_second=1000, denied_peer_ranges=("198.51.100.0/24",)),
    )
    plan = plan_reload(running, new)
    assert plan.config == new
    assert plan.applied == (
        "tls_cert", "tls_key", "auth_secrets", "users", "log_level",
        "turn.max_bytes_per_second", "turn.denied_peer_ranges",
    )  # fmt: skip
    assert plan.needs_restart == ()
    assert plan.describe().startswith("changed: tls_cert, tls_key, auth_secrets, users")


def test_settings_that_need_a_restart_keep_their_running_values() -> None:
    running = Config(turn_port=3478, api_port=8443, listen_ips=("127.0.0.1",))
    new = dataclasses.replace(
        running, turn_port=3479, api_port=9443, listen_ips=("::1",), users=(("bob", "b"),),
        turn=TurnConfig(realm="other", max_allocations_per_user=5),
    )  # fmt: skip
    plan = plan_reload(running, new)
    assert plan.needs_restart == ("listen_ips", "turn_port", "api_port", "turn.realm")
    assert plan.applied == ("users", "turn.max_allocations_per_user")
    assert (plan.config.turn_port, plan.config.api_port) == (3478, 8443)
    assert plan.config.listen_ips == ("127.0.0.1",)
    assert plan.config.turn.realm == "passage"
    assert plan.config.turn.max_allocations_per_user == 5
    assert plan.config.users == (("bob", "b"),)


def test_secrets_are_named_never_shown() -> None:
    plan = plan_reload(Config(), Config(auth_secrets=("hunter2",), users=(("u", "pw0rd"),)))
    shown = plan.describe() + repr(plan.applied)
    assert "hunter2" not in shown and "pw0rd" not in shown
    assert "auth_secrets" in shown and "users" in shown


def test_the_order_of_auth_secrets_is_a_change() -> None:
    """The first secret is the one that mints: swapping them is a rotation."""
    plan = plan_reload(Config(auth_secrets=("a", "b")), Config(auth_secrets=("b", "a")))
    assert plan.applied == ("auth_secrets",)


def test_a_file_read_twice_plans_as_the_flags_win(tmp_path: Path) -> None:
    """A flag given at start still wins over the file at a reload: the file's new port is
    not even a change, its new quota is."""
    path = tmp_path / "passage.toml"
    path.write_text("turn_port = 4000\n[turn]\nmax_allocations_per_user = 7\n")
    flags = {"config": str(path), "turn_port": "5000"}
    running = load_config(flags, {})
    path.write_text("turn_port = 4001\n[turn]\nmax_allocations_per_user = 8\n")
    plan = plan_reload(running, load_config(flags, {}))
    assert plan.applied == ("turn.max_allocations_per_user",)
    assert plan.needs_restart == ()
    assert plan.config.turn_port == 5000

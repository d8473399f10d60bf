"""Configuration: defaults < TOML file < PASSAGE_* environment < flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from passage.cli.main import build_parser
from passage.config import OPTIONS, SECTIONS, Config, ConfigError, load_config, worker_count
from passage.turn.config import TurnConfig


def flags(*argv: str) -> dict[str, object]:
    """What ``passage serve ARGV`` hands to load_config."""
    return vars(build_parser().parse_args(["serve", *argv]))


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "passage.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source() -> None:
    config = load_config(flags(), {})
    assert config == Config()
    assert config.data_dir == Path(".passage")
    assert config.listen_ips == ("0.0.0.0",)
    assert config.relay_ports == (49152, 65535)
    assert config.turn == TurnConfig()


def test_precedence_defaults_toml_env_flags(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        'turn_port = 4000\nturns_port = 4001\nlog_level = "warning"\n'
        '[turn]\nrealm = "from-toml"\nmax_lifetime = 1200\n',
    )
    environ = {"PASSAGE_TURNS_PORT": "5001", "PASSAGE_TURN_REALM": "from-env"}
    config = load_config(flags("--config", str(path), "--realm", "from-flag"), environ)
    assert config.turn_port == 4000  # TOML over default
    assert config.turns_port == 5001  # env over TOML
    assert config.turn.realm == "from-flag"  # flag over env over TOML
    assert config.turn.max_lifetime == 1200  # TOML, in the [turn] table
    assert config.log_level == "warning"
    assert config.turn.default_lifetime == TurnConfig().default_lifetime  # default kept


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "turn_port = 4100\n")
    assert load_config(flags(), {"PASSAGE_CONFIG": str(path)}).turn_port == 4100


def test_repeatable_flags_collect_in_order_and_replace_lower_sources() -> None:
    environ = {"PASSAGE_LISTEN_IPS": "10.0.0.1"}
    config = load_config(
        flags("--listen-ip", "192.0.2.1", "--listen-ip", "::", "--deny-peer", "203.0.113.7/24"),
        environ,
    )
    assert config.listen_ips == ("192.0.2.1", "::")
    assert config.turn.denied_peer_ranges == ("203.0.113.0/24",)  # normalised


def test_environment_lists_are_comma_separated() -> None:
    environ = {
        "PASSAGE_AUTH_SECRETS": "new, old",
        "PASSAGE_USERS": "alice:pa:ss,bob:pw",
        "PASSAGE_TURN_ALLOWED_PEER_RANGES": "10.1.0.0/16",
    }
    config = load_config(flags(), environ)
    assert config.auth_secrets == ("new", "old")
    assert config.users == (("alice", "pa:ss"), ("bob", "pw"))
    assert config.turn.allowed_peer_ranges == ("10.1.0.0/16",)


def test_empty_environment_variable_counts_as_unset() -> None:
    assert load_config(flags(), {"PASSAGE_TURN_PORT": ""}).turn_port == 3478


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False)]
)
def test_environment_booleans(value: str, expected: bool) -> None:
    config = load_config(flags(), {"PASSAGE_TURN_ALLOW_LOOPBACK_PEERS": value})
    assert config.turn.allow_loopback_peers is expected


def test_boolean_flag_overrides_environment() -> None:
    environ = {"PASSAGE_TURN_ALLOW_LOOPBACK_PEERS": "yes"}
    assert (
        load_config(flags("--no-allow-loopback-peers"), environ).turn.allow_loopback_peers is False
    )
    assert load_config(flags("--allow-loopback-peers"), {}).turn.allow_loopback_peers is True


def test_bad_environment_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PASSAGE_TURN_ALLOW_LOOPBACK_PEERS"):
        load_config(flags(), {"PASSAGE_TURN_ALLOW_LOOPBACK_PEERS": "maybe"})


def test_relay_ports_parse_from_every_source(tmp_path: Path) -> None:
    assert load_config(flags("--relay-ports", "50000-50100"), {}).relay_ports == (50000, 50100)
    assert load_config(flags(), {"PASSAGE_RELAY_PORTS": "6000-6001"}).relay_ports == (6000, 6001)
    path = write_toml(tmp_path, "relay_ports = [7000, 7010]\n")
    assert load_config(flags("--config", str(path)), {}).relay_ports == (7000, 7010)


@pytest.mark.parametrize("text", ["50000", "50100-50000", "0-100", "1-70000", "a-b", "1-2-3", ""])
def test_relay_ports_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--relay-ports: expected LOW-HIGH"):
        load_config(flags("--relay-ports", text), {})


def test_unknown_toml_key_names_key_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[turn]\nrelm = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(flags("--config", str(path)), {})
    message = str(caught.value)
    assert str(path) in message
    assert "unknown key 'turn.relm'" in message
    assert "did you mean 'turn.realm'" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "listen_port = 1\n")
    with pytest.raises(ConfigError, match=r"passage\.toml: unknown key 'listen_port'"):
        load_config(flags("--config", str(path)), {})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('turn_port = "3478"\n', "turn_port"),
        ("turn_port = 70000\n", "turn_port"),
        ('listen_ips = "0.0.0.0"\n', "listen_ips"),
        ('[turn]\nallow_loopback_peers = "yes"\n', "turn.allow_loopback_peers"),
        ("[turn]\nmax_lifetime = true\n", "turn.max_lifetime"),
        ('public_ip = "not-an-ip"\n', "public_ip"),
        ('turn = "x"\n', "[turn]"),
    ],
)
def test_bad_toml_types_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(flags("--config", str(path)), {})
    assert f"{path}: {key}" in str(caught.value)


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(flags("--config", str(write_toml(tmp_path, "turn_port = \n"))), {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(flags("--config", str(tmp_path / "absent.toml")), {})


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--turn-port: expected an integer from 1 to 65535"):
        load_config(flags("--turn-port", "http"), {})
    with pytest.raises(ConfigError, match="--user: expected NAME:PASSWORD"):
        load_config(flags("--user", "alice"), {})


def test_turns_port_zero_disables_tls_but_turn_port_may_not_be_zero() -> None:
    assert load_config(flags("--turns-port", "0"), {}).turns_port == 0
    with pytest.raises(ConfigError, match="--turn-port"):
        load_config(flags("--turn-port", "0"), {})


def test_tls_cert_and_key_come_together() -> None:
    with pytest.raises(ConfigError, match="together"):
        load_config(flags("--tls-cert", "cert.pem"), {})
    config = load_config(flags("--tls-cert", "c.pem", "--tls-key", "k.pem"), {})
    assert (config.tls_cert, config.tls_key) == (Path("c.pem"), Path("k.pem"))


def test_default_lifetime_may_not_exceed_max_lifetime() -> None:
    with pytest.raises(ConfigError, match="default_lifetime"):
        load_config(flags("--default-lifetime", "4000", "--max-lifetime", "3600"), {})


def test_secrets_absent_from_repr() -> None:
    config = load_config(flags("--auth-secret", "s3cr3t-value", "--user", "alice:hunter2-pw"), {})
    assert config.auth_secrets == ("s3cr3t-value",)
    text = repr(config)
    assert "s3cr3t-value" not in text
    assert "hunter2-pw" not in text
    assert "alice" not in text


def test_bad_user_error_does_not_echo_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(flags(), {"PASSAGE_USERS": "alice-with-no-colon-secret"})
    assert "alice-with-no-colon-secret" not in str(caught.value)


def test_every_field_has_exactly_one_option() -> None:
    """A field added to Config or TurnConfig without a row in OPTIONS fails here."""
    expected = {("", f.name) for f in dataclasses.fields(Config) if f.name not in SECTIONS}
    for section, cls in SECTIONS.items():
        expected |= {(section, f.name) for f in dataclasses.fields(cls)}
    rows = [(option.section, option.name) for option in OPTIONS]
    assert sorted(rows) == sorted(expected)


def test_flags_and_environment_variables_are_unique() -> None:
    assert len({option.flag for option in OPTIONS}) == len(OPTIONS)
    assert len({option.env for option in OPTIONS}) == len(OPTIONS)


def test_documentation_lists_every_option() -> None:
    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for option in OPTIONS:
        for spelling in (option.flag, option.env, f"`{option.name}`"):
            assert spelling in text, spelling


def test_example_file_loads(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "passage.example.toml"
    config = load_config(flags("--config", str(example)), {})
    assert config == Config()  # the example spells out the defaults


def test_turns_extra_ports_add_tls_listeners_from_every_source(tmp_path: Path) -> None:
    assert load_config(flags(), {}).tls_ports == (5349,)
    config = load_config(flags("--turns-extra-port", "443", "--turns-extra-port", "8449"), {})
    assert config.turns_extra_ports == (443, 8449)
    assert config.tls_ports == (5349, 443, 8449)
    assert load_config(flags(), {"PASSAGE_TURNS_EXTRA_PORTS": "443"}).turns_extra_ports == (443,)
    path = write_toml(tmp_path, "turns_port = 0\nturns_extra_ports = [443]\n")
    assert load_config(flags("--config", str(path)), {}).tls_ports == (443,)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--turns-extra-port", "5349"), "turns_port and turns_extra_ports are both 5349"),
        (("--turns-extra-port", "443", "--turns-extra-port", "443"), "both 443"),
        (("--turns-extra-port", "8443"), "turns_extra_ports and api_port are both 8443"),
        (("--turns-extra-port", "0"), "--turns-extra-port"),
    ],
)
def test_turns_extra_ports_must_be_distinct_ports(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags(*argv), {})


def test_alt_ip_pairs_with_the_listen_ip_and_defaults_to_the_next_port(tmp_path: Path) -> None:
    config = load_config(flags("--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.2"), {})
    assert config.nat_discovery_ips == ("192.0.2.1", "192.0.2.2")
    assert (config.alt_port, config.alternate_port) == (0, 3479)  # RFC 5780 §5, as coturn
    config = load_config(
        flags("--listen-ip", "::1", "--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.2",
              "--alt-port", "4000"),
        {},
    )  # fmt: skip
    assert config.nat_discovery_ips == ("192.0.2.1", "192.0.2.2")  # the IPv4 one
    assert config.alternate_port == 4000
    path = write_toml(
        tmp_path, 'listen_ips = ["192.0.2.1"]\nalt_ip = "192.0.2.2"\nalt_port = 3480\n'
    )
    config = load_config(flags("--config", str(path)), {"PASSAGE_ALT_PORT": "3481"})
    assert (config.alt_ip, config.alternate_port) == ("192.0.2.2", 3481)
    assert load_config(flags(), {}).nat_discovery_ips is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--alt-ip", "192.0.2.2"), "needs a specific listen IP"),  # default listen IP 0.0.0.0
        (("--listen-ip", "::1", "--alt-ip", "192.0.2.2"), "needs a specific listen IP"),
        (("--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.1"), "another specific IP"),
        (("--listen-ip", "192.0.2.1", "--listen-ip", "192.0.2.2", "--alt-ip", "192.0.2.2"),
         "another specific IP"),
        (("--listen-ip", "192.0.2.1", "--alt-ip", "0.0.0.0"), "another specific IP"),
        (("--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.2", "--public-ip", "203.0.113.1"),
         "public_ip"),
        (("--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.2", "--alt-port", "3478"),
         "turn_port and alt_port are both 3478"),
        (("--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.2", "--turn-port", "65535"),
         "set --alt-port"),
        (("--listen-ip", "192.0.2.1", "--alt-ip", "192.0.2.2", "--turns-port", "3479"),
         "turns_port and alt_port are both 3479"),
    ],
)  # fmt: skip
def test_alt_ip_mistakes_are_named(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags(*argv), {})


def test_alt_ip_with_public_ip_equal_to_the_listen_ip_is_fine() -> None:
    config = load_config(
        flags(
            "--listen-ip", "203.0.113.1", "--alt-ip", "203.0.113.2", "--public-ip", "203.0.113.1"
        ),
        {},
    )
    assert config.nat_discovery_ips == ("203.0.113.1", "203.0.113.2")


def test_metrics_and_log_settings_from_every_source(tmp_path: Path) -> None:
    default = load_config(flags(), {})
    assert (default.metrics_port, default.metrics_ip) == (9641, "127.0.0.1")
    assert (default.log_format, default.access_log) == ("text", False)
    config = load_config(
        flags("--metrics-port", "0", "--log-format", "JSON", "--access-log"),
        {"PASSAGE_METRICS_IP": "::1"},
    )
    assert (config.metrics_port, config.metrics_ip) == (0, "::1")
    assert (config.log_format, config.access_log) == ("json", True)
    path = write_toml(tmp_path, 'metrics_port = 19641\nlog_format = "json"\naccess_log = true\n')
    from_file = load_config(flags("--config", str(path)), {})
    assert (from_file.metrics_port, from_file.log_format, from_file.access_log) == (
        19641, "json", True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--log-format", "xml"), "--log-format: expected one of text, json, got 'xml'"),
        (("--metrics-port", "8443"), "api_port and metrics_port are both 8443"),
        (("--metrics-port", "70000"), "--metrics-port: expected an integer from 0 to 65535"),
    ],
)
def test_metrics_and_log_mistakes_are_named(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags(*argv), {})


def test_workers_is_auto_unless_given_and_takes_a_count_from_every_source(tmp_path: Path) -> None:
    assert load_config(flags(), {}).workers == 0  # auto
    assert load_config(flags("--workers", "4"), {}).workers == 4
    assert load_config(flags("--workers", "auto"), {"PASSAGE_WORKERS": "3"}).workers == 0
    assert load_config(flags(), {"PASSAGE_WORKERS": "3"}).workers == 3
    path = write_toml(tmp_path, 'workers = "auto"\n')
    assert load_config(flags("--config", str(path)), {}).workers == 0
    path = write_toml(tmp_path, "workers = 2\n")
    assert load_config(flags("--config", str(path)), {}).workers == 2


@pytest.mark.parametrize("value", ["0", "-1", "257", "many", "2.5"])
def test_workers_refuses_what_is_not_auto_or_1_to_256(value: str) -> None:
    with pytest.raises(ConfigError, match='--workers: expected "auto" or an integer'):
        load_config(flags("--workers", value), {})


def test_auto_workers_is_one_per_cpu_and_one_with_offload() -> None:
    assert worker_count(Config(), cpus=8) == 8
    assert worker_count(Config(workers=3), cpus=8) == 3
    assert worker_count(Config(workers=1), cpus=8) == 1
    assert worker_count(Config(offload="auto"), cpus=8) == 1
    assert worker_count(Config(), cpus=0) == 1


def test_several_workers_with_offload_is_refused() -> None:
    with pytest.raises(ConfigError, match="workers 2 with offload xdp"):
        load_config(flags("--workers", "2", "--offload", "xdp"), {})
    assert load_config(flags("--workers", "1", "--offload", "xdp"), {}).workers == 1

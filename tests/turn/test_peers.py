"""Peer filtering: the default deny list, embedded IPv4 forms, and operator ranges."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.turn.peers import PeerDenied, PeerPolicy

DEFAULT = PeerPolicy()

# One address per default deny class, IPv4 and IPv6.
DENIED_BY_DEFAULT = [
    ("0.0.0.0", PeerDenied.UNSPECIFIED),
    ("0.1.2.3", PeerDenied.UNSPECIFIED),
    ("127.0.0.1", PeerDenied.LOOPBACK),
    ("127.255.255.254", PeerDenied.LOOPBACK),
    ("10.0.0.1", PeerDenied.PRIVATE),
    ("172.16.0.1", PeerDenied.PRIVATE),
    ("172.31.255.255", PeerDenied.PRIVATE),
    ("192.168.1.1", PeerDenied.PRIVATE),
    ("100.64.0.1", PeerDenied.SHARED),
    ("100.127.255.254", PeerDenied.SHARED),
    ("169.254.169.254", PeerDenied.LINK_LOCAL),
    ("224.0.0.1", PeerDenied.MULTICAST),
    ("239.255.255.250", PeerDenied.MULTICAST),
    ("255.255.255.255", PeerDenied.BROADCAST),
    ("240.0.0.1", PeerDenied.RESERVED),
    ("192.0.0.8", PeerDenied.RESERVED),
    ("192.88.99.1", PeerDenied.RESERVED),
    ("192.0.2.1", PeerDenied.DOCUMENTATION),
    ("198.51.100.7", PeerDenied.DOCUMENTATION),
    ("203.0.113.9", PeerDenied.DOCUMENTATION),
    ("198.18.0.1", PeerDenied.BENCHMARKING),
    ("198.19.255.255", PeerDenied.BENCHMARKING),
    ("::", PeerDenied.UNSPECIFIED),
    ("::1", PeerDenied.LOOPBACK),
    ("fc00::1", PeerDenied.UNIQUE_LOCAL),
    ("fd12:3456::1", PeerDenied.UNIQUE_LOCAL),
    ("fe80::1", PeerDenied.LINK_LOCAL),
    ("febf::1", PeerDenied.LINK_LOCAL),
    ("fec0::1", PeerDenied.RESERVED),
    ("ff02::1", PeerDenied.MULTICAST),
    ("ff0e::101", PeerDenied.MULTICAST),
    ("100::1", PeerDenied.RESERVED),
    ("2001:db8::1", PeerDenied.DOCUMENTATION),
    ("3fff::1", PeerDenied.DOCUMENTATION),
    ("2001:2::1", PeerDenied.BENCHMARKING),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", PeerDenied.TEREDO),
    ("2001:10::1", PeerDenied.RESERVED),
    ("2001:20::1", PeerDenied.RESERVED),
    ("4000::1", PeerDenied.RESERVED),
    ("1::1", PeerDenied.RESERVED),
]


@pytest.mark.parametrize(("ip", "reason"), DENIED_BY_DEFAULT)
def test_default_deny_class(ip: str, reason: PeerDenied) -> None:
    assert DEFAULT.check(ip) is reason


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "223.255.255.255",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "64:ff9b:1:808:8:800::",  # local-use NAT64 /48 of 8.8.8.8 (RFC 6052 §2.2)
    ],
)
def test_public_addresses_may_relay(ip: str) -> None:
    assert DEFAULT.check(ip) is None


def _v4_forms(v4: str) -> dict[str, str]:
    """Every IPv6 spelling that carries ``v4``, keyed by its name."""
    value = int(ipaddress.IPv4Address(v4))
    hi, lo = value >> 16, value & 0xFFFF
    c, d = (value >> 8) & 0xFF, value & 0xFF
    return {
        "mapped": f"::ffff:{v4}",
        "mapped-hex": f"::ffff:{hi:x}:{lo:x}",
        "mapped-long": f"0:0:0:0:0:ffff:{v4}",
        "compatible": f"::{v4}",
        "translated": f"::ffff:0:{v4}",
        "nat64": f"64:ff9b::{v4}",
        # RFC 6052 §2.2, /48: v4 bits 0-15 in bits 48-63, u octet (64-71), bits 16-31.
        "nat64-local-48": f"64:ff9b:1:{hi:x}:{c:x}:{d << 8:x}::",
        "6to4": f"2002:{hi:x}:{lo:x}::1",
        "6to4-host": f"2002:{hi:x}:{lo:x}:1:2:3:4:5",
    }


EMBEDDED_CASES = [
    (v4, form, text, reason)
    for v4, reason in [
        ("127.0.0.1", PeerDenied.LOOPBACK),
        ("10.0.0.1", PeerDenied.PRIVATE),
        ("169.254.169.254", PeerDenied.LINK_LOCAL),
        ("0.0.0.0", PeerDenied.UNSPECIFIED),
    ]
    for form, text in _v4_forms(v4).items()
]


@pytest.mark.parametrize(
    ("form", "text", "reason"),
    [(form, text, reason) for _, form, text, reason in EMBEDDED_CASES],
    ids=[f"{v4}-{form}" for v4, form, _, _ in EMBEDDED_CASES],
)
def test_embedded_ipv4_gets_its_ipv4_verdict(form: str, text: str, reason: PeerDenied) -> None:
    # CVE-2020-26262 (0.0.0.0) and CVE-2026-27624 (::ffff:127.0.0.1) class bypasses.
    ipaddress.IPv6Address(text)  # the test spells a real IPv6 address
    assert DEFAULT.check(text) is reason


def test_nat64_local_use_48_layout_is_rfc6052() -> None:
    # RFC 6052 §2.4 example: 192.0.2.33 under 2001:db8:122::/48 is
    # 2001:db8:122:c000:2:2100::; here under 64:ff9b:1::/48.
    assert DEFAULT.check("64:ff9b:1:c000:2:2100::") is PeerDenied.DOCUMENTATION
    assert DEFAULT.check("64:ff9b:1:a9fe:a9:fe00::") is PeerDenied.LINK_LOCAL


@pytest.mark.parametrize(
    "ip",
    [
        "64:ff9b:1::10.0.0.1",  # a /96 carved out of the /48: suffix not zero
        "64:ff9b:1::8.8.8.8",
        "64:ff9b:1:808:108:800::",  # u octet (bits 64-71) not zero, RFC 6052 §2.2
        "64:ff9b:1:808:8:800:0:1",
    ],
)
def test_nat64_local_use_outside_the_48_layout_is_reserved(ip: str) -> None:
    assert DEFAULT.check(ip) is PeerDenied.RESERVED


def test_nat64_prefix_outside_the_well_known_96_is_reserved() -> None:
    assert DEFAULT.check("64:ff9b:0:0:1::808:808") is PeerDenied.RESERVED


@pytest.mark.parametrize("v4", ["8.8.8.8", "1.1.1.1"])
def test_ipv4_compatible_is_reserved_even_for_public_ipv4(v4: str) -> None:
    assert DEFAULT.check(f"::{v4}") is PeerDenied.RESERVED


def test_teredo_is_denied_even_for_public_embedded_ipv4() -> None:
    assert DEFAULT.check("2001:0:808:808::1") is PeerDenied.TEREDO


def test_allow_loopback_opens_loopback_and_its_mapped_forms_only() -> None:
    policy = PeerPolicy.from_config(allow_loopback=True, allowed=(), denied=())
    for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::ffff:0:127.0.0.1"]:
        assert policy.check(ip) is None, ip
    assert policy.check("0.0.0.0") is PeerDenied.UNSPECIFIED
    assert policy.check("::") is PeerDenied.UNSPECIFIED
    assert policy.check("10.0.0.1") is PeerDenied.PRIVATE
    # A translator would not deliver to its own loopback; never a test peer.
    assert policy.check("64:ff9b::127.0.0.1") is PeerDenied.LOOPBACK
    assert policy.check("2002:7f00:1::1") is PeerDenied.LOOPBACK
    assert policy.check("::127.0.0.1") is PeerDenied.LOOPBACK


def test_loopback_denied_without_allow_loopback() -> None:
    policy = PeerPolicy.from_config(allow_loopback=False, allowed=(), denied=())
    assert policy.check("127.0.0.1") is PeerDenied.LOOPBACK


def test_allowed_range_opens_exactly_that_range() -> None:
    policy = PeerPolicy.from_config(allow_loopback=False, allowed=["10.1.2.3/32"], denied=())
    assert policy.check("10.1.2.3") is None
    assert policy.check("::ffff:10.1.2.3") is None
    assert policy.check("10.1.2.4") is PeerDenied.PRIVATE
    assert policy.check("::ffff:10.1.2.4") is PeerDenied.PRIVATE
    # Through a translator it is a different path: the IPv6 range must be allowed.
    assert policy.check("64:ff9b::10.1.2.3") is PeerDenied.PRIVATE


def test_allowed_documentation_ranges_for_the_nat_lab() -> None:
    policy = PeerPolicy.from_config(
        allow_loopback=False, allowed=["198.51.100.0/24", "203.0.113.0/24"], denied=()
    )
    assert policy.check("198.51.100.7") is None
    assert policy.check("203.0.113.200") is None
    assert policy.check("192.0.2.1") is PeerDenied.DOCUMENTATION


def test_allowed_ipv6_range() -> None:
    policy = PeerPolicy.from_config(allow_loopback=False, allowed=["fd00::/8"], denied=())
    assert policy.check("fd00::5") is None
    assert policy.check("fc00::5") is PeerDenied.UNIQUE_LOCAL


def test_denied_beats_allowed_and_allow_loopback() -> None:
    policy = PeerPolicy.from_config(
        allow_loopback=True,
        allowed=["10.0.0.0/8", "127.0.0.0/8"],
        denied=["10.9.0.0/16", "127.0.0.2", "8.8.8.8/32", "2606:4700::/32"],
    )
    assert policy.check("10.1.0.1") is None
    assert policy.check("10.9.0.1") is PeerDenied.CONFIGURED
    assert policy.check("127.0.0.1") is None
    assert policy.check("127.0.0.2") is PeerDenied.CONFIGURED
    assert policy.check("8.8.8.8") is PeerDenied.CONFIGURED
    assert policy.check("2606:4700:4700::1111") is PeerDenied.CONFIGURED


@pytest.mark.parametrize(
    "ip", ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1", "64:ff9b:1:808:8:800::"]
)
def test_denied_ipv4_range_covers_its_embedded_forms(ip: str) -> None:
    policy = PeerPolicy.from_config(allow_loopback=False, allowed=(), denied=["8.8.8.0/24"])
    assert policy.check(ip) is PeerDenied.CONFIGURED


def test_mapped_ipv6_range_in_config_means_the_ipv4_range() -> None:
    policy = PeerPolicy.from_config(
        allow_loopback=False, allowed=["::ffff:10.0.0.0/104"], denied=["::ffff:8.8.8.8/128"]
    )
    assert policy.allowed == (ipaddress.IPv4Network("10.0.0.0/8"),)
    assert policy.check("10.2.3.4") is None
    assert policy.check("8.8.8.8") is PeerDenied.CONFIGURED


def test_public_address_denied_by_config() -> None:
    policy = PeerPolicy.from_config(allow_loopback=False, allowed=(), denied=["1.1.1.0/24"])
    assert policy.check("1.1.1.1") is PeerDenied.CONFIGURED
    assert policy.check("1.0.0.1") is None


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.1.2.3/8", "banana", "", "fe80::/129"])
def test_from_config_rejects_bad_ranges_with_a_clear_message(bad: str) -> None:
    with pytest.raises(ValueError, match="denied_peer_ranges") as excinfo:
        PeerPolicy.from_config(allow_loopback=False, allowed=(), denied=[bad])
    assert repr(bad) in str(excinfo.value)
    with pytest.raises(ValueError, match="allowed_peer_ranges"):
        PeerPolicy.from_config(allow_loopback=False, allowed=[bad], denied=())


@pytest.mark.parametrize(
    "ip",
    [
        "",
        "banana",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "010.0.0.1",
        " 8.8.8.8",
        "8.8.8.8 ",
        "8.8.8.8/32",
        "8.8.8.8:3478",
        "[2001:4860:4860::8888]",
        ":::",
        "1" * 1000,
        "8.8.8.8%eth0",
        "2001:4860:4860::8888%eth0",
        "\x00",
    ],
)
def test_invalid_text_is_invalid_not_an_exception(ip: str) -> None:
    assert DEFAULT.check(ip) is PeerDenied.INVALID


def test_non_string_is_invalid() -> None:
    assert DEFAULT.check(0x08080808) is PeerDenied.INVALID  # type: ignore[arg-type]
    assert DEFAULT.check(["8.8.8.8"]) is PeerDenied.INVALID  # type: ignore[arg-type]


@pytest.mark.parametrize("ip", ["fe80::1%eth0", "fe80::1%1"])
def test_scoped_link_local_is_link_local(ip: str) -> None:
    assert DEFAULT.check(ip) is PeerDenied.LINK_LOCAL


def test_cache_is_bounded_and_gives_the_same_verdicts() -> None:
    policy = PeerPolicy()
    for n in range(10_000):
        policy.check(str(ipaddress.IPv4Address(0x0A000000 + n)))
    assert len(policy._verdicts) <= 4096
    assert policy.check("10.0.0.1") is PeerDenied.PRIVATE
    assert policy.check("8.8.8.8") is None
    assert policy.check("8.8.8.8") is None


def test_policy_repr_shows_ranges_not_the_cache() -> None:
    policy = PeerPolicy.from_config(allow_loopback=False, allowed=["10.0.0.0/8"], denied=())
    policy.check("10.0.0.1")
    assert "_verdicts" not in repr(policy)
    assert policy == PeerPolicy.from_config(allow_loopback=False, allowed=["10.0.0.0/8"], denied=())


@given(st.text(max_size=80))
def test_check_never_raises_on_text(text: str) -> None:
    assert DEFAULT.check(text) is None or isinstance(DEFAULT.check(text), PeerDenied)


@given(st.ip_addresses(v=6))
def test_check_never_raises_on_ipv6(address: ipaddress.IPv6Address) -> None:
    verdict = DEFAULT.check(str(address))
    assert verdict is not PeerDenied.INVALID


ALLOWING = PeerPolicy.from_config(
    allow_loopback=True, allowed=["10.1.0.0/16"], denied=["10.1.2.0/24", "8.8.0.0/16"]
)


@given(st.ip_addresses(v=4))
def test_ipv4_and_its_mapped_form_get_the_same_verdict(address: ipaddress.IPv4Address) -> None:
    for policy in (DEFAULT, ALLOWING):
        verdict = policy.check(str(address))
        assert policy.check(f"::ffff:{address}") is verdict
        assert policy.check(f"::ffff:0:{address}") is verdict
        if verdict is not None:
            # Through a translator the verdict is never weaker than the IPv4 one.
            assert policy.check(f"64:ff9b::{address}") is not None

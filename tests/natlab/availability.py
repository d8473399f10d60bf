"""Can this machine build the lab? Asked once per process, answered in plain words.

The lab needs ``ip`` (iproute2) and ``nft`` (nftables), the right to create
network namespaces (root, or CAP_SYS_ADMIN and CAP_NET_ADMIN), veth pairs,
bridges and nftables NAT in them. :func:`reason` tries exactly that on a
throw-away namespace. Tests skip with the reason when the answer is no, unless
``PASSAGE_NATLAB_REQUIRED=1`` says this machine must have it (CI does), in
which case they fail with it.
"""

from __future__ import annotations

import functools
import os

from natlab import netns

REQUIRED_ENV = "PASSAGE_NATLAB_REQUIRED"

_PROBE_RULES = """table ip probe {
  chain postrouting { type nat hook postrouting priority srcnat; masquerade random; }
}
"""


@functools.cache
def reason() -> str | None:
    """Why the lab cannot run here, or ``None`` when it can."""
    probe = f"{netns.new_tag()}-probe"
    try:
        netns.tool("ip")
        netns.tool("nft")
        netns.add(probe)
        netns.ip_batch(
            probe,
            ["link add name probe0 type veth peer name probe1", "link add name probe2 type bridge"],
        )
        netns.nft(probe, _PROBE_RULES)
    except netns.LabError as exc:
        text = str(exc)
        prefix = "network namespaces unavailable: "
        return text if text.startswith(prefix) else prefix + text
    finally:
        try:
            netns.delete(probe)
        except netns.LabError:
            pass
    return None


def required() -> bool:
    """Whether this machine was declared able to run the lab."""
    return os.environ.get(REQUIRED_ENV, "") not in ("", "0")


def require() -> None:
    """Return if the lab can run; else raise :class:`~natlab.netns.LabUnavailable`."""
    why = reason()
    if why is not None:
        raise netns.LabUnavailable(why)

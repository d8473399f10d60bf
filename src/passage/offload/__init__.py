"""A kernel fast path for TURN channels whose client and peer are both on UDP (docs/offload.md).

This package is the pure part: the XDP program's map layouts (:mod:`.maps`),
the control plane's table of offloaded channels and meter slots
(:mod:`.table`), the rtnetlink messages it asks the kernel with
(:mod:`.netlink`) and the capability rules (:mod:`.capabilities`). The C
program is ``bpf/passage_xdp.c`` (built by ``make offload``); loading it,
attaching it and writing its maps is :mod:`passage.offload.xdp`.
"""

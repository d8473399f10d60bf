"""Attach the offload on the given addresses, say "attached", and hold it until killed.

Run inside a lab namespace by test_lab_offload.py to show that ``kill -9`` leaves
no program behind.
"""

from __future__ import annotations

import sys
import time

from passage.offload.xdp.control import ChannelOffload

if __name__ == "__main__":
    offload = ChannelOffload.start(sys.argv[1:])
    sys.stdout.write("attached\n")
    sys.stdout.flush()
    while True:
        time.sleep(60)

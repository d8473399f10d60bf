"""Every Redis key and channel name of one cluster, under its prefix (``--redis-prefix``).

Keys are the prefix, a colon and a fixed word, then the variable part; two clusters (or
two test runs) with different prefixes never touch each other's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClusterKeys"]


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    prefix: str

    @property
    def nodes(self) -> str:
        """A set: the name of every node that ever announced itself (pruned when expired)."""
        return f"{self.prefix}:nodes"

    def node(self, name: str) -> str:
        """A string, expiring: node ``name``'s current record (JSON)."""
        return f"{self.prefix}:node:{name}"

    def alive(self, name: str) -> str:
        """A string, expiring with the record: the boot id of node ``name``'s running process."""
        return f"{self.prefix}:alive:{name}"

    @property
    def events(self) -> str:
        """The channel every node listens on: changes to apply now."""
        return f"{self.prefix}:events"

    def inbox(self, name: str) -> str:
        """The channel node ``name`` alone listens on: messages for it."""
        return f"{self.prefix}:inbox:{name}"

    def listeners(self, path: str) -> str:
        """A hash: listener id → ``node boot``, where that listener of ``path`` is held."""
        return f"{self.prefix}:hc:{path}"

    def allocations(self, node: str) -> str:
        """A hash, expiring: quota key (user) → allocations it holds on node ``node``."""
        return f"{self.prefix}:allocs:{node}"

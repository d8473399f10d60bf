"""Cluster mode over Redis (``redis.asyncio``): the link every node keeps
(:class:`ClusterLink`: the registry heartbeat, the shared event channel, the node's own
inbox and asks between nodes), the shared gateway store of Hybrid Connections
(:class:`RedisGateway`) and the per-user allocation counts."""

from passage.cluster.aio.gateway import RedisGateway
from passage.cluster.aio.link import ClusterLink, redis_target

__all__ = ["ClusterLink", "RedisGateway", "redis_target"]

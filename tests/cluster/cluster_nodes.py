"""Cluster nodes for tests: in-process ``passage serve`` nodes on 127.0.0.2, .3 and .4
sharing one PostgreSQL schema and one Redis key prefix, each through its own
:class:`TcpProxy` in front of Redis and one in front of PostgreSQL, so that a test can
cut one node's link to either."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster_services import POSTGRES_URL, REDIS_URL
from tcp_proxy import TcpProxy

from passage.cluster.aio import ClusterLink
from passage_server import Server, free_port, in_process

HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}


@dataclass
class Node:
    name: str
    server: Server
    redis_link: TcpProxy
    postgres_link: TcpProxy

    @property
    def link(self) -> ClusterLink:
        assert self.server.running.cluster is not None
        return self.server.running.cluster

    @property
    def host(self) -> str:
        return HOSTS[self.name]

    @property
    def ws_base(self) -> str:
        return f"ws://{self.host}:{self.server.running.http[0][1]}"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.server.running.http[0][1]}"


def _redis_target() -> tuple[str, int]:
    rest = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)


def _through(proxy: TcpProxy, url: str) -> str:
    """``url`` (``scheme://[user@]host:port/rest``) pointed at ``proxy`` instead."""
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    user, at, _ = authority.rpartition("@")
    return f"{scheme}://{user}{at}{proxy.host}:{proxy.port}/{path}"


def _postgres_target() -> tuple[str, int]:
    authority = POSTGRES_URL.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    host, _, port = authority.rpartition(":")
    return (host, int(port)) if host else (authority, 5432)


@asynccontextmanager
async def cluster_node(
    tmp_path: Path,
    name: str,
    *,
    prefix: str,
    schema: str,
    redis_down: bool = False,
    **settings: Any,
) -> AsyncIterator[Node]:
    """Node ``name`` (``a``, ``b`` or ``c``) of the cluster ``prefix``/``schema``;
    ``redis_down``: its link to Redis is cut before it starts."""
    host = HOSTS[name]
    http_port = free_port((socket.SOCK_STREAM,), host=host)
    proxy = await TcpProxy(_redis_target()).start()
    postgres = await TcpProxy(_postgres_target()).start()
    if redis_down:
        proxy.cut()
    database = REDIS_URL.rsplit("/", 1)[1] if REDIS_URL.count("/") > 2 else "0"
    try:
        async with in_process(
            tmp_path / name,
            listen_ips=(host,),
            data_dir=tmp_path / name / "data",
            http_port=http_port,
            database_url=_through(postgres, POSTGRES_URL),
            database_schema=schema,
            redis_url=proxy.url("redis", f"/{database}"),
            redis_prefix=prefix,
            node_name=name,
            public_url=f"ws://{host}:{http_port}",
            public_host=host,
            **settings,
        ) as server:
            yield Node(name, server, proxy, postgres)
    finally:
        await proxy.close()
        await postgres.close()


@asynccontextmanager
async def cluster(
    tmp_path: Path, names: str, *, prefix: str, schema: str, **settings: Any
) -> AsyncIterator[list[Node]]:
    """Nodes ``names`` (e.g. ``"abc"``), each having seen the others in the registry."""
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                cluster_node(tmp_path, name, prefix=prefix, schema=schema, **settings)
            )
            for name in names
        ]
        for node in nodes:
            await node.link.beat()
        yield nodes

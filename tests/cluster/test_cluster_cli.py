"""Management commands on a cluster node's data directory act on the cluster's store, the
one the running ``passage serve`` uses, with no ``PASSAGE_DATABASE_URL`` set by hand."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_services import POSTGRES_URL
from serve_nodes import serve_node
from sqlalchemy import make_url

from passage.cli.management import call_remote, remote_target
from passage.config import Config

pytestmark = pytest.mark.usefixtures("no_passage_environment")

PASSWORD = "never-written-down"


def passage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passage", *args], capture_output=True, text=True, timeout=60
    )


def with_password(url: str) -> str:
    """``url`` with a password in it (the test PostgreSQL trusts loopback, so it is unused)."""
    parsed = make_url(url)
    if parsed.password is not None:
        return url
    return parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def test_commands_on_a_node_use_its_store_and_say_which(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    database_url = with_password(POSTGRES_URL)
    password = make_url(database_url).password
    assert password
    with serve_node(
        tmp_path, "a", prefix=redis_prefix, schema=pg_schema, database_url=database_url
    ) as node:
        data_dir = str(node.info.data_dir)
        record = (node.info.data_dir / "server.json").read_text()
        assert password not in record
        recorded = make_url(database_url)._replace(password=None)
        store = f"store {recorded.render_as_string(hide_password=False)} (schema {pg_schema})"

        created = passage("hc", "create", "cli-on-a-node", "--data-dir", data_dir)
        assert created.returncode == 0, created.stderr
        assert created.stderr.startswith(f"passage: using the server running on {data_dir} (")
        assert store in created.stderr.splitlines()[0]
        # The hybrid connection is in the cluster's schema, read here without any server.
        listed = passage(
            "hc", "list", "--data-dir", str(tmp_path / "elsewhere"),
            "--database-url", POSTGRES_URL, "--database-schema", pg_schema,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "cli-on-a-node" in listed.stdout

        # connection-string reads the cluster's keys: the node accepts what it signs.
        text = passage("connection-string", "--data-dir", data_dir)
        assert text.returncode == 0, text.stderr
        flags = argparse.Namespace(
            connection_string=text.stdout.strip(), ca_file=str(node.info.ca_cert)
        )
        target = remote_target(flags, Config())
        assert target is not None
        assert call_remote(target, "GET", "/usage")["value"] == []

        wrong = passage("keys", "show", "--data-dir", data_dir, "--database-schema", "other")
        assert wrong.returncode == 2
        assert wrong.stderr.splitlines() == [
            f"passage: error: --database-schema other: not the schema of the server running "
            f"on {data_dir} (pid {node.process.pid}, https://{node.host}:{node.info.api_port}/, "
            f"{store}); give --database-schema {pg_schema}, or leave both --database-url and "
            "--database-schema out to use its store"
        ]
    assert password not in node.log.read_text()

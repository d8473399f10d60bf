"""``passage pipe`` between two hosts of the NAT lab: files through, both ways, intact.

Each side is the real command (``python -m passage pipe``) in its host's
namespace, stdin from a file of random bytes and stdout to a file. One side
names itself with the deployment's connection string (``pipe`` creates a user
for the run and deletes it after), the other with a user token and the API URL.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from natlab import Lab, presets
from natlab.peering import connection_string, voip_tokens
from passage.cli.management import with_store
from passage.config import Config
from passage.identity.ids import IdentityId

WAIT = 60.0
"""Seconds either side may take before the test gives up rather than hangs."""


def test_pipe_across_two_nats_carries_files_both_ways(lab: Lab, tmp_path: Path) -> None:
    pair = presets.two_eim_nats(lab)
    rng = random.Random(7)
    sent = {"alice": rng.randbytes(300_000), "bob": rng.randbytes(200_000)}
    for name, data in sent.items():
        (tmp_path / f"{name}.in").write_bytes(data)
    with lab.passage(tmp_path / "passage") as passage:
        ca = str(passage.info.ca_cert)
        (token,) = voip_tokens(lab, passage, 1)
        who = {
            "alice": ["--connection-string", str(connection_string(lab, passage))],
            "bob": ["--token", token, "--endpoint", passage.info.api_url],
        }
        processes = {}
        for name, node in (("alice", pair.a), ("bob", pair.b)):
            with (
                (tmp_path / f"{name}.in").open("rb") as stdin,
                (tmp_path / f"{name}.out").open("wb") as stdout,
                (tmp_path / f"{name}.err").open("wb") as stderr,
            ):
                processes[name] = lab.python(
                    node, "-m", "passage", "pipe", "--room", "files", "--ca-file", ca,
                    *who[name], stdin=stdin, stdout=stdout, stderr=stderr,
                )  # fmt: skip
        for name, process in processes.items():
            assert process.wait(timeout=WAIT) == 0, (tmp_path / f"{name}.err").read_text()
    errors = {name: (tmp_path / f"{name}.err").read_text() for name in sent}
    assert (tmp_path / "bob.out").read_bytes() == sent["alice"]
    assert (tmp_path / "alice.out").read_bytes() == sent["bob"]
    for name in sent:
        assert re.search(r"^passage pipe: direct-nat \(", errors[name], re.M), errors[name]

    # The user alice's pipe created for its run is gone.
    created = re.search(r"created user (\S+) for this run", errors["alice"])
    assert created is not None, errors["alice"]
    identity = IdentityId(created.group(1))
    record = with_store(Config(data_dir=passage.info.data_dir), lambda _, ids: ids.get(identity))
    assert record is not None and record.deleted

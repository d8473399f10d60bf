"""Fixtures any test may ask for by name."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

# The metrics port's default (9641) is one port per host: every passage serve a test
# starts, in a subprocess or not, and every concurrent test run would want it. Tests
# that scrape it give a free port of their own.
METRICS_OFF = ("PASSAGE_METRICS_PORT", "0")
os.environ.setdefault(*METRICS_OFF)


def pytest_configure(config: pytest.Config) -> None:
    """Servers the tests start relay TURN in one process (``--workers 1``) unless a test
    says otherwise: the default, one worker per CPU, would double the processes of every
    server on a two-core machine shared by concurrent runs, for tests that look at one
    process's behaviour. ``tests/workers`` runs several workers, and the default, on purpose.
    """
    os.environ.setdefault("PASSAGE_WORKERS", "1")


@pytest.fixture
def no_passage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``PASSAGE_*`` variable of the machine running the tests reaches the code under test
    (a module opts in with ``pytestmark = pytest.mark.usefixtures("no_passage_environment")``)."""
    for name in list(os.environ):
        if name.startswith("PASSAGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(*METRICS_OFF)  # the one exception: see METRICS_OFF


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """``passage serve``, ``expose`` and ``connect`` run in-process configure the root logger;
    put it back for the next test, whichever test ran them (a handler and level left behind
    made later tests' stderr depend on the order the tests ran in)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def restore_umask() -> Iterator[None]:
    """``passage serve`` run in-process sets the process's umask to 077 (its files are its
    user's alone); put it back, or a later test's files are unreadable to other users (the
    container test's venv, run as nobody, then failed with exit status 126)."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.fixture(params=["on", "off"])  # passage_server.RELAY_PATHS, not imported this early
def relay_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test against the C fast path and the Python relay (``--fast-path on|off``),
    through ``PASSAGE_FAST_PATH``, which ``passage_process`` servers and ``in_process``
    (``local_config``) read. A module opts in with
    ``pytestmark = pytest.mark.usefixtures("relay_path")``; a whole run can pin one path
    by exporting the variable. Without the extension, "on" is skipped here and
    ``tests/turn/fastpath`` fails where a compiler could have built it."""
    from passage_server import relay_path_environ

    mode = str(request.param)
    for name, value in relay_path_environ(mode).items():
        monkeypatch.setenv(name, value)
    return mode

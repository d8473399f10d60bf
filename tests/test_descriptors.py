"""passage.descriptors: the limit raised at start, and what is left, counted now and then."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

from passage.descriptors import DescriptorBudget, count_open

RAISE = """
import resource
from passage.descriptors import raise_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
raised = raise_limit()
print(raised.before, raised.after, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    out = subprocess.run([sys.executable, "-c", RAISE], check=True, capture_output=True, text=True)
    before, after, now, hard = (int(n) for n in out.stdout.split())
    expected = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    assert (before, after, now) == (64, expected, expected)


def test_open_descriptors_are_counted() -> None:
    before = count_open()
    assert before is not None
    read, write = os.pipe()
    try:
        assert count_open() == before + 2
    finally:
        os.close(read)
        os.close(write)


def test_the_budget_counts_at_most_every_interval_and_estimates_between() -> None:
    counted = iter([100, 300])
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return next(counted)

    budget = DescriptorBudget(lambda: 1024, count, recount_interval=1.0)
    assert budget.limit() == 1024
    assert budget.left(0.0) == 924
    budget.opened()
    budget.opened()
    budget.closed()
    assert budget.left(0.5) == 923  # no count: 100 + 1 opened since
    assert len(calls) == 1
    assert budget.left(1.0) == 724  # counted again: others (TURN) took 200 meanwhile
    assert len(calls) == 2


def test_a_system_that_does_not_count_gives_no_budget() -> None:
    assert DescriptorBudget(lambda: 1024, lambda: None).left(0.0) is None

"""Make the shared harness in ``tests/`` (``passage_server``) importable from here.

Without ``__init__.py`` files pytest puts only this directory on ``sys.path``
(rootdir-relative "prepend" import mode), not ``tests/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

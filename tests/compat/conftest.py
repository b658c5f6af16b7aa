"""Compatibility tests import whole frameworks and reload them under --reload.

The first reload of a heavy framework waits for the fork server to finish preloading the
framework (seconds on a loaded 2-core machine: Litestar measured 4 s at load average 4), so
these tests get a longer, still bounded, budget than the suite's default 30 s.
"""

from __future__ import annotations

import pytest

COMPAT_TIMEOUT_S = 90


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/compat/" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(COMPAT_TIMEOUT_S))

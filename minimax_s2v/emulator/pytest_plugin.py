"""The ``minimax_emulator`` pytest fixture, registered through the ``pytest11`` entry point.

A test gets a running emulator with instant task durations; settings come from the
``minimax_emulator`` marker::

    @pytest.mark.minimax_emulator(seed=7, late_fail_ratio=0.5)
    async def test_my_service(minimax_emulator):
        client = Client(minimax_emulator.api_key, base_url=minimax_emulator.url)

The emulator runs on its own loop in a thread, so the fixture works in sync tests and under
any async test runner.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._thread import EmulatorThread

__all__ = ["minimax_emulator"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that configures the fixture."""
    config.addinivalue_line(
        "markers",
        "minimax_emulator(**settings): EmulatorConfig fields for the minimax_emulator fixture",
    )


@pytest.fixture
def minimax_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorThread]:
    """A running MiniMax emulator on a free loopback port, stopped after the test."""
    marker = request.node.get_closest_marker("minimax_emulator")
    settings = dict(marker.kwargs) if marker else {}
    with EmulatorThread(**settings) as emulator:
        yield emulator

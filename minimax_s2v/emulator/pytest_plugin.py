"""The ``minimax_emulator`` and ``minimax_client`` pytest fixtures (a ``pytest11`` plugin).

Installed with the package, nothing to register::

    import pytest
    from minimax_s2v import VideoRequest

    @pytest.mark.asyncio
    @pytest.mark.minimax_emulator(seed=7, speed="demo")
    async def test_my_service(minimax_client, minimax_emulator):
        await minimax_client.generate(VideoRequest(subject="https://example.com/f.jpg"))
        assert minimax_emulator.state()["tasks_created"] == 1

- ``minimax_emulator``: a running emulator on a free loopback port, instant by default. It
  runs on its own loop in a thread, so it serves sync tests and any async test runner.
- ``minimax_client``: an open :class:`~minimax_s2v.Client` of that emulator, polling every
  few milliseconds (:data:`EMULATOR_POLLING`) instead of the real service's seconds, closed
  after the test. It is an async fixture: with pytest-asyncio (any mode) it runs on the
  test's loop; without it, an async plugin that runs ``@pytest.fixture`` coroutines (anyio).
- The ``minimax_emulator`` marker takes :class:`~minimax_s2v.emulator.EmulatorConfig`
  settings by name, plus ``speed`` (what ``--speed`` takes: ``instant``, ``demo``,
  ``realistic`` or a factor). They are checked when the fixture starts: a misspelt or
  mistyped one fails the test with one line naming it.
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import attrs
import pytest

from .. import Client, PollPolicy, RetryPolicy
from ._config import Durations, EmulatorConfig
from ._thread import EmulatorThread

__all__ = ["EMULATOR_POLLING", "EMULATOR_RETRY", "minimax_client", "minimax_emulator"]

#: Polling for an emulator on loopback: the first poll after 20 ms, never more than 0.5 s
#: apart, with a rate cap far above what a test makes.
EMULATOR_POLLING = PollPolicy(first_interval=0.02, max_interval=0.5, max_rate=500, max_in_flight=64)
#: Retries for an emulator: a planned fault is retried after milliseconds, not seconds.
EMULATOR_RETRY = RetryPolicy(wait_initial=0.01, wait_max=0.2, wait_jitter=0.01)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that configures the fixture."""
    config.addinivalue_line(
        "markers",
        "minimax_emulator(**settings): EmulatorConfig fields (and speed=) for the "
        "minimax_emulator fixture",
    )


def emulator_config(args: tuple[object, ...], settings: dict[str, Any]) -> EmulatorConfig:
    """The configuration a ``minimax_emulator`` marker asks for; fails the test if it is wrong."""
    config, problem = _configure(args, settings)
    if config is None:
        # Outside any except block: the report is the one line, no chained traceback.
        pytest.fail(f"minimax_emulator marker: {problem}", pytrace=False)
    return config


def _configure(
    args: tuple[object, ...], settings: dict[str, Any]
) -> tuple[EmulatorConfig | None, str]:
    if args:
        return None, f"takes settings by name, e.g. minimax_emulator(seed=7), not {args!r}"
    settings = dict(settings)
    if "speed" in settings:
        if "durations" in settings:
            return None, "give speed or durations, not both"
        try:
            settings["durations"] = Durations.from_speed(settings.pop("speed"))
        except ValueError as error:
            return None, str(error)
    known = attrs.fields_dict(EmulatorConfig)
    for name in sorted(settings):
        if name not in known:
            close = difflib.get_close_matches(name, [*known, "speed"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return None, f"unknown setting {name!r}{hint}; settings are speed, {', '.join(known)}"
    try:
        return EmulatorConfig(**settings), ""
    except (TypeError, ValueError) as error:
        return None, str(error)


@pytest.fixture
def minimax_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorThread]:
    """A running MiniMax emulator on a free loopback port, stopped after the test."""
    marker = request.node.get_closest_marker("minimax_emulator")
    config = emulator_config(marker.args, marker.kwargs) if marker else EmulatorConfig()
    with EmulatorThread(config) as emulator:
        yield emulator


def _async_fixture(function: Callable[..., Any]) -> Any:
    # pytest-asyncio's strict mode (its default) runs only fixtures it decorated; without
    # it, another async plugin (anyio) runs plain @pytest.fixture coroutines.
    try:
        from pytest_asyncio import fixture
    except ImportError:
        return pytest.fixture(function)
    return fixture(function)


@_async_fixture
async def minimax_client(minimax_emulator: EmulatorThread) -> AsyncIterator[Client]:
    """An open Client of the ``minimax_emulator``, polling and retrying in milliseconds."""
    client = Client(
        minimax_emulator.api_key,
        base_url=minimax_emulator.url,
        polling=EMULATOR_POLLING,
        retry=EMULATOR_RETRY,
        fsync_downloads=False,
    )
    async with client:
        yield client

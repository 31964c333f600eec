"""What the emulator reports about itself has a declared shape (a TypedDict)."""

from __future__ import annotations

import typing

import aiohttp

from minimax_s2v.emulator import Emulator, EmulatorState, EmulatorThread, TaskState
from tests.raw_api import submit


def test_state_is_declared_as_a_typed_dict() -> None:
    """`Emulator.state()` and `EmulatorThread.state()` return `EmulatorState`, not a plain dict."""
    assert typing.get_type_hints(Emulator.state)["return"] is EmulatorState
    assert typing.get_type_hints(EmulatorThread.state)["return"] is EmulatorState


async def test_state_has_exactly_the_declared_keys(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The live answer, over HTTP and in-process, has the keys the TypedDicts declare."""
    await submit(http, emulator)
    plain = emulator.state()
    assert set(plain) == EmulatorState.__required_keys__
    with_tasks = emulator.state(tasks=True)
    assert set(with_tasks) == EmulatorState.__required_keys__ | {"tasks"}
    assert set(with_tasks["tasks"][0]) == TaskState.__required_keys__
    async with http.get(emulator.url / "_emulator/state", params={"tasks": "1"}) as response:
        assert set(await response.json()) == set(with_tasks)

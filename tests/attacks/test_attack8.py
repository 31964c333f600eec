"""Attacks from outside: what a caller's own code or a hostile API can put in the way."""

from __future__ import annotations

import aiohttp
import pytest

from minimax_s2v import SubmissionUncertainError
from minimax_s2v.emulator import Emulator
from tests.client_setup import face_request, fast_client


class InstrumentationBugError(Exception):
    """What a caller's tracing hook raises: nothing the library knows."""


def failing_after(path: str) -> aiohttp.TraceConfig:
    """An aiohttp trace config whose hook raises once a request to ``path`` was answered."""

    async def on_end(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.path == path:
            raise InstrumentationBugError("the metrics backend is down")

    config = aiohttp.TraceConfig()
    config.on_request_end.append(on_end)
    return config


async def test_an_unexpected_error_after_the_create_call_leaves_the_submission_uncertain() -> None:
    """An error the library does not know, raised once the create call went out, is uncertain.

    Here a tracing hook of the caller's own fails after MiniMax answered: the task exists
    and is paid for. It must not be lost as a raw exception with the journal still saying
    "sending", nor sent again: the submission is uncertain, kept so that resume() and
    recover() can still find it, with the hook's error as its cause.
    """
    async with Emulator() as emu:
        trace = failing_after("/v1/video_generation")
        async with fast_client(emu, trace_configs=[trace]) as client:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
            assert isinstance(lost.value.__cause__, InstrumentationBugError)
            uncertain = await client.store.uncertain()
            assert [submission.nonce for submission in uncertain] == [lost.value.nonce]
        assert emu.state()["tasks_created"] == 1  # sent once, never again


async def test_an_unexpected_error_as_the_create_call_starts_is_uncertain_too() -> None:
    """The same hook failing as the request starts: inside aiohttp, whether it left is unknown.

    Uncertain rather than raised as it came: it is never sent again (one task at most), and
    its journal entry stays for resume() to ask about.
    """

    async def on_start(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path == "/v1/video_generation":
            raise InstrumentationBugError("the tracer refused the span")

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    async with Emulator() as emu:
        async with fast_client(emu, trace_configs=[config]) as client:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
            assert isinstance(lost.value.__cause__, InstrumentationBugError)
            assert "InstrumentationBugError: the tracer refused the span" in str(lost.value)
        assert emu.state()["tasks_created"] == 0  # it never left, and was not sent again


async def test_an_unexpected_error_holding_the_key_leaves_no_trace_of_it() -> None:
    """A hook's error that quotes the request's headers never carries the key onwards."""

    async def on_end(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        raise InstrumentationBugError(f"could not export {dict(params.headers)}")

    config = aiohttp.TraceConfig()
    config.on_request_end.append(on_end)
    async with Emulator() as emu:
        async with fast_client(emu, trace_configs=[config]) as client:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
    error: BaseException | None = lost.value
    seen = 0
    while error is not None:
        seen += 1
        assert emu.api_key not in str(error)
        assert emu.api_key not in repr(error.args)
        error = error.__cause__ or error.__context__
    assert seen >= 2  # the uncertainty, and what stands for the hook's error

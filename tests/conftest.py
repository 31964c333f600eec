"""Shared fixtures: an in-process emulator, an HTTP session, and a plain callback receiver."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from yarl import URL

import minimax_s2v
from minimax_s2v.emulator import Emulator
from tests import profiles  # noqa: F401 - loads the Hypothesis profile before any test module
from tests.redis_server import redis_server

# Retries go at once in this suite, as stamina's set_testing() makes them: the policies stay
# as configured (attempts, which errors, the waits they compute). A test of real waiting
# turns it off for its own block (`with minimax_s2v.set_testing(False):`).
minimax_s2v.set_testing()

pytest_plugins = ["pytester"]

# An Authorization value in a log line, unless scrubbed.
_BEARER = re.compile(r"Bearer (?!<redacted>)\S")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for a test module (its tests use prefixes of their own)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: the package's log lines (INFO and up) name no key and no Authorization."""
    caplog.set_level(logging.INFO, logger="minimax_s2v")
    yield
    # At teardown caplog.text holds only the teardown's lines: read the earlier phases.
    records = caplog.get_records("setup") + caplog.get_records("call")
    text = "\n".join(record.getMessage() for record in records)
    assert not _BEARER.search(text), "a log line carries an Authorization header"
    assert "emulator-key" not in text, "a log line carries the emulator's API key"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with instant tasks on a free loopback port."""
    async with Emulator(seed=1) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, as a user without the SDK would have."""
    async with aiohttp.ClientSession() as session:
        yield session


@attrs.define
class PlainReceiver:
    """A callback endpoint written from the public docs: echo the challenge, ack updates."""

    url: URL
    bodies: list[dict[str, Any]] = attrs.field(factory=list)
    echo: Callable[[str], Awaitable[object]] | None = None


@pytest.fixture
async def plain_receiver() -> AsyncIterator[PlainReceiver]:
    """A plain aiohttp app on loopback that records every callback body."""
    holder: list[PlainReceiver] = []

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        receiver = holder[0]
        receiver.bodies.append(body)
        if "challenge" in body:
            answer = body["challenge"]
            if receiver.echo is not None:
                answer = await receiver.echo(answer)
            return web.json_response({"challenge": answer})
        return web.json_response({"status": "success"})

    app = web.Application()
    app.router.add_post("/callback", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    holder.append(PlainReceiver(URL.build(scheme="http", host=host, port=port, path="/callback")))
    yield holder[0]
    await runner.cleanup()

"""A client wired to a callback receiver on a free loopback port, against an emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from yarl import URL

from minimax_s2v import Client, PollPolicy
from minimax_s2v.emulator import Emulator
from minimax_s2v.receiver import CallbackReceiver
from tests.client_setup import NO_WAIT, fast_client
from tests.processes import free_port

SECRET = "receiver-test-secret-0123456789"


def new_receiver(port: int, path: str = "/minimax", **options: Any) -> CallbackReceiver:
    options.setdefault("secret", SECRET)
    options.setdefault("fallback_after", 30.0)
    return CallbackReceiver(f"http://127.0.0.1:{port}{path}", **options)


POLLING = PollPolicy(first_interval=0.05, max_interval=0.2, max_rate=1000, max_in_flight=64)


@asynccontextmanager
async def served_client(
    emu: Emulator, **options: Any
) -> AsyncIterator[tuple[Client, CallbackReceiver]]:
    """A standalone receiver on a free port and a client of ``emu`` using it."""
    port = free_port()
    receiver = new_receiver(port, **options)
    async with receiver.serve("127.0.0.1", port):
        async with fast_client(emu, receiver=receiver, polling=POLLING) as client:
            yield client, receiver


@asynccontextmanager
async def remote_served_client(
    emulator_url: URL, **options: Any
) -> AsyncIterator[tuple[Client, CallbackReceiver]]:
    """Like served_client, for an emulator in another process at ``emulator_url``."""
    port = free_port()
    receiver = new_receiver(port, **options)
    async with receiver.serve("127.0.0.1", port):
        client = Client(
            "emulator-key",
            base_url=emulator_url,
            receiver=receiver,
            polling=POLLING,
            retry=NO_WAIT,
        )
        async with client:
            yield client, receiver

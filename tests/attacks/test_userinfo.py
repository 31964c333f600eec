"""Credentials in a URL's user-info part never show in reprs or messages."""

from __future__ import annotations

import pytest

from minimax_s2v import CallbackReceiver, CallbackUnreachableError, Client
from minimax_s2v.emulator import Emulator
from minimax_s2v.stores.redis import RedisStore
from tests.client_setup import TEST_RETRY, face_request
from tests.processes import free_port


def test_reprs_hide_user_info() -> None:
    """The receiver's, the client's and RedisStore's reprs drop user and password."""
    receiver = CallbackReceiver("https://user:hunter22@example.com/cb", secret="s" * 32)
    client = Client("sk-test-key-123456", base_url="https://user:hunter22@api.example.com")
    store = RedisStore("redis://hunter22@127.0.0.1:1/0")
    for shown in (repr(receiver), repr(client), repr(store)):
        assert "hunter22" not in shown, shown


async def test_unreachable_callback_error_hides_user_info() -> None:
    """CallbackUnreachableError names the public URL, not its credentials."""
    receiver = CallbackReceiver(f"http://user:hunter22@127.0.0.1:{free_port()}/cb", secret="s" * 32)
    async with (
        Emulator() as emu,
        Client(emu.api_key, base_url=emu.url, receiver=receiver, retry=TEST_RETRY) as client,
    ):
        with pytest.raises(CallbackUnreachableError) as info:
            await client.submit(face_request())
    assert "hunter22" not in str(info.value)
    assert "127.0.0.1" in str(info.value)

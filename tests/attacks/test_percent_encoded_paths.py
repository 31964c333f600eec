"""A %-encoded spelling of a valid callback URL must get 404.

README trust rule 1: "A token that does not verify (malformed, non-hex, non-ASCII,
%-encoded) gets 404." Observed on the snapshot: the hosts decode the path before the core
sees it, so a valid URL with a %-encoded token character, nonce character, slash (``%2F``) or
mount character is accepted (200) and applied, in ``serve()``, ``setup()`` and ``asgi()``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from yarl import URL

from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import CallbackReceiver
from tests.client_setup import face_request
from tests.receiver_setup import MOUNTS, SECRET, client_of, mounted


async def raw_post(port: int, path: str, body: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


@pytest.mark.parametrize("kind", MOUNTS)
@pytest.mark.parametrize("spelling", ["token", "nonce", "slash", "mount"])
async def test_percent_encoded_spelling_gets_404(kind: str, spelling: str) -> None:
    public = None if kind == "serve" else "http://127.0.0.1:1/minimax"
    receiver = CallbackReceiver(public, secret=SECRET, fallback_after=30.0)
    async with Emulator(durations=Durations(preparing=60.0)) as emu, mounted(kind, receiver):
        async with client_of(emu, receiver) as client:
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            nonce, token = url.parts[-2], url.parts[-1]
            path = {
                "token": f"/minimax/{nonce}/%{ord(token[0]):02x}{token[1:]}",
                "nonce": f"/minimax/%{ord(nonce[0]):02x}{nonce[1:]}/{token}",
                "slash": f"/minimax/{nonce}%2F{token}",
                "mount": f"/%6dinimax/{nonce}/{token}",
            }[spelling]
            body = json.dumps(
                {
                    "task_id": task.task_id,
                    "status": "Processing",
                    "file_id": "",
                    "base_resp": {"status_code": 0, "status_msg": "ok"},
                }
            ).encode()
            assert url.port is not None
            assert await raw_post(url.port, path, body) == 404

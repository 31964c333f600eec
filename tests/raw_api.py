"""Plain aiohttp calls to the MiniMax endpoints, as a user without the SDK would make them."""

from __future__ import annotations

from typing import Any

import aiohttp

from minimax_s2v.emulator import Emulator

FACE_URL = "https://example.com/face.jpg"
DOC_REQUEST: dict[str, Any] = {
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": [FACE_URL]}],
    "model": "S2V-01",
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def submit(
    http: aiohttp.ClientSession,
    emu: Emulator,
    body: dict[str, Any] | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    async with http.post(
        emu.url / "v1/video_generation", json=body or DOC_REQUEST, headers=auth(key or emu.api_key)
    ) as response:
        assert response.status == 200
        assert response.headers["Trace-Id"]
        result: dict[str, Any] = await response.json()
        return result


async def query(http: aiohttp.ClientSession, emu: Emulator, task_id: str) -> dict[str, Any]:
    async with http.get(
        emu.url / "v1/query/video_generation",
        params={"task_id": task_id},
        headers=auth(emu.api_key),
    ) as response:
        result: dict[str, Any] = await response.json()
        return result


async def retrieve(
    http: aiohttp.ClientSession, emu: Emulator, file_id: str | int
) -> dict[str, Any]:
    async with http.get(
        emu.url / "v1/files/retrieve", params={"file_id": str(file_id)}, headers=auth(emu.api_key)
    ) as response:
        result: dict[str, Any] = await response.json()
        return result

"""The scripts in examples/ run against the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from minimax_s2v.emulator import EmulatorThread
from tests.processes import ROOT, free_port
from tests.receiver_setup import uvicorn_serving


def run_example(
    script: str, args: list[str], emu: EmulatorThread
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MINIMAX_API_KEY": emu.api_key, "MINIMAX_BASE_URL": str(emu.url)}
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def face(tmp_path: Path) -> Path:
    path = tmp_path / "face.jpg"
    Image.new("RGB", (480, 640), (180, 150, 130)).save(path)
    return path


@pytest.mark.slow
def test_generate_one(minimax_emulator: EmulatorThread, tmp_path: Path) -> None:
    """generate_one.py prints the statuses and saves the MP4."""
    out = tmp_path / "one.mp4"
    done = run_example("generate_one.py", [str(face(tmp_path)), str(out)], minimax_emulator)
    assert done.returncode == 0, done.stderr
    assert "Success" in done.stdout
    assert out.read_bytes()[4:8] == b"ftyp"


def test_many_with_callbacks(minimax_emulator: EmulatorThread, tmp_path: Path) -> None:
    """many_with_callbacks.py serves a receiver, and its callbacks carry the results."""
    port = free_port()
    out = tmp_path / "videos"
    done = run_example(
        "many_with_callbacks.py",
        [
            str(face(tmp_path)),
            str(out),
            "--public-url",
            f"http://127.0.0.1:{port}/cb",
            "--port",
            str(port),
        ],
        minimax_emulator,
    )
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("*.mp4"))) == 3
    state = minimax_emulator.state()
    assert state["callbacks"]["challenges_passed"] == 3
    assert state["requests"]["query"] == {"success": 3}  # one confirmation each, no poll


def test_fastapi_service(minimax_emulator: EmulatorThread) -> None:
    """The FastAPI example takes a request and learns the result from callbacks."""
    port = free_port()
    os.environ.update(
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        MINIMAX_API_KEY=minimax_emulator.api_key,
        MINIMAX_BASE_URL=str(minimax_emulator.url),
    )
    sys.path.insert(0, str(ROOT))
    try:
        from examples import fastapi_service

        async def exercise() -> dict[str, object]:
            # The port is chosen first: the example reads its PUBLIC_URL when imported.
            async with uvicorn_serving(fastapi_service.app, port):
                async with aiohttp.ClientSession() as http:
                    body = {"image": "https://example.com/face.jpg", "prompt": "hello"}
                    async with http.post(f"http://127.0.0.1:{port}/videos", json=body) as r:
                        task_id = (await r.json())["task_id"]
                    for _ in range(100):
                        async with http.get(f"http://127.0.0.1:{port}/videos/{task_id}") as r:
                            status: dict[str, object] = await r.json()
                        if status["download_url"]:
                            return status
                        await asyncio.sleep(0.05)
                    return status

        status = asyncio.run(exercise())
    finally:
        sys.path.remove(str(ROOT))
        for name in ("PUBLIC_URL", "MINIMAX_API_KEY", "MINIMAX_BASE_URL"):
            os.environ.pop(name, None)
    assert status["status"] == "Success", json.dumps(status)
    assert str(status["download_url"]).startswith(str(minimax_emulator.url))

"""URLs whose host is not valid IDNA (``http://xn--/``) must give typed errors everywhere.

yarl parses them, then ``url.host`` raises ``UnicodeError``: every place that checks a URL
must turn that into its typed error.

Observed on the snapshot: raw ``UnicodeError`` from ``Client(base_url=)``,
``CallbackReceiver(public_url)`` and ``submit()`` (preflight); a traceback and exit 1 from the
CLI (``generate``, ``serve``, ``status``, ``batch``); the emulator's catch-all (in-band 1000
"unknown error", a logged traceback, counter ``internal_error``) instead of a 2013.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from minimax_s2v import (
    CallbackReceiver,
    Client,
    ConfigurationError,
    InvalidRequestError,
    VideoRequest,
)
from minimax_s2v.emulator import Emulator
from tests.raw_api import DOC_REQUEST, auth

BAD = "http://xn--/path"


def test_client_base_url() -> None:
    with pytest.raises(ConfigurationError):
        Client("sk-test-key-123456", base_url=BAD)


def test_receiver_public_url() -> None:
    with pytest.raises(ConfigurationError):
        CallbackReceiver(BAD, secret="s" * 32)


@pytest.mark.parametrize("field", ["subject", "callback_url"])
async def test_preflight(field: str) -> None:
    async with Emulator() as emu:
        if field == "subject":
            request = VideoRequest(subject=BAD, prompt="x")
        else:
            request = VideoRequest(
                subject="https://example.com/f.jpg", prompt="x", callback_url=BAD
            )
        async with Client(emu.api_key, base_url=emu.url) as client:
            with pytest.raises(InvalidRequestError):
                await client.submit(request)
        assert emu.counters.requests_to("submit") == 0


async def test_emulator_answers_2013() -> None:
    async with Emulator() as emu, aiohttp.ClientSession() as http:
        body = {**DOC_REQUEST, "callback_url": BAD}
        async with http.post(
            emu.url / "v1/video_generation", json=body, headers=auth(emu.api_key)
        ) as response:
            answer = await response.json()
        assert "internal_error" not in emu.counters.requests.get("submit", {})
        assert answer["base_resp"]["status_code"] == 2013


@pytest.mark.parametrize(
    "args",
    [
        ["status", "1", "--base-url", BAD],
        ["serve", "--public-url", BAD, "--port", "0", "--check"],
        ["generate", "--image", BAD, "--prompt", "x", "--out", "out.mp4"],
    ],
    ids=["status-base-url", "serve-public-url", "generate-image"],
)
def test_cli_one_error_line(args: list[str], tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MINIMAX_API_KEY": "sk-test-key-123456",
        "MINIMAX_CALLBACK_SECRET": "0123456789abcdef0123",
        "MINIMAX_BASE_URL": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "minimax_s2v", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-400:]
    assert done.returncode == 2


def test_cli_batch_skips_the_line(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(f'{{"id": "a", "image": "{BAD}", "prompt": "x"}}\n')
    env = {
        **os.environ,
        "MINIMAX_API_KEY": "sk-test-key-123456",
        "MINIMAX_BASE_URL": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "minimax_s2v", "batch", str(jobs), "--out", str(tmp_path / "o")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-400:]
    assert "jobs.jsonl:1" in done.stderr + done.stdout

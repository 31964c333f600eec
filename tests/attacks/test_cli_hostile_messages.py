r"""The CLI prints what a hostile API echoes: it must stay one plain line.

README: "Errors are one line on stderr". Observed on the snapshot: a ``status_msg`` carrying
``ESC ]0;…BEL`` (set the terminal title), ``ESC [2J`` (clear the screen) and ``\r\n`` reached
the terminal verbatim (a forged second ``error:`` line included), on stderr for an error and
on stdout for a failed task; a 1 MB ``status_msg`` was printed whole.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from aiohttp import web

NASTY = "bad \x1b]0;PWNED\x07\x1b[2J\x1b[31mred\r\nerror: fake line"


@pytest.mark.parametrize(
    "answer",
    [
        {"task_id": "1", "base_resp": {"status_code": 2013, "status_msg": NASTY}},
        {
            "task_id": "1",
            "status": "Fail",
            "file_id": "",
            "base_resp": {"status_code": 1027, "status_msg": NASTY},
        },
        {"task_id": "1", "base_resp": {"status_code": 2013, "status_msg": "x" * 1_000_000}},
    ],
    ids=["error", "failed-task", "huge"],
)
async def test_status_prints_one_plain_line(answer: dict[str, object]) -> None:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "minimax_s2v",
            "status",
            "1",
            "--base-url",
            f"http://127.0.0.1:{port}",
            env={**os.environ, "MINIMAX_API_KEY": "sk-test-key-123456"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await runner.cleanup()
    shown = out + err
    assert b"\x1b" not in shown
    assert b"\r" not in shown
    assert shown.count(b"\n") == 1
    assert len(shown) < 10_000

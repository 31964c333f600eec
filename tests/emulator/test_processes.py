"""The emulator from other processes: its command line, a docs-only receiver, the pytest plugin."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from minimax_s2v.emulator import Durations, Emulator
from tests.processes import emulator_process, free_port, python_process
from tests.raw_api import DOC_REQUEST, auth, submit


async def test_docs_fastapi_receiver_under_uvicorn(http: aiohttp.ClientSession) -> None:
    """The documentation's FastAPI receiver gets the challenge, then processing and success."""
    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "tests.docs_sample_receiver:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with python_process(args, port):
        async with Emulator(durations=Durations(processing=0.2)) as emu:
            callback = f"http://127.0.0.1:{port}/get_callback"
            task_id = (await submit(http, emu, {**DOC_REQUEST, "callback_url": callback}))[
                "task_id"
            ]
            await emu.callbacks.drain(10)
            deliveries = [d for d in emu.deliveries if d.task_id == task_id]
    assert [(d.kind, d.status, d.http_status) for d in deliveries] == [
        ("challenge", None, 200),
        ("status", "processing", 200),
        ("status", "success", 200),
    ]
    assert emu.counters.callbacks["challenges_passed"] == 1
    assert deliveries[-1].response_body == '{"status":"success"}'


async def test_command_line_serves_and_reports(http: aiohttp.ClientSession) -> None:
    """`python -m minimax_s2v.emulator` prints its URL and key and serves the API."""
    with emulator_process("--api-key", "k1", "--speed", "instant") as emulator:
        url, process = emulator.url, emulator.process
        async with http.post(
            f"{url}/v1/video_generation", json=DOC_REQUEST, headers=auth("k1")
        ) as r:
            body = await r.json()
        assert body["base_resp"]["status_code"] == 0
        async with http.get(f"{url}/_emulator/state") as r:
            assert (await r.json())["tasks_created"] == 1
        process.terminate()
        await asyncio.to_thread(process.communicate, None, 10)
    assert url.startswith("http://127.0.0.1:")  # printed as "listening on <url>"
    assert emulator.api_key == "k1"  # printed as "accepted API key: k1"
    assert process.returncode == 0


async def test_command_line_chooses_the_challenge_timing(http: aiohttp.ClientSession) -> None:
    """By default a dead callback URL fails the submission; --challenge-timing after_create not."""
    dead = {**DOC_REQUEST, "callback_url": f"http://127.0.0.1:{free_port()}/cb"}
    codes = []
    for extra in ([], ["--challenge-timing", "after_create"]):
        with emulator_process("--speed", "instant", *extra) as emulator:
            async with http.post(
                f"{emulator.url}/v1/video_generation",
                json=dead,
                headers=auth("emulator-key"),
            ) as r:
                codes.append((await r.json())["base_resp"]["status_code"])
    assert codes == [2013, 0]


def test_command_line_rejects_bad_speed() -> None:
    """A wrong --speed is a usage error, not a traceback."""
    with python_process(["-m", "minimax_s2v.emulator", "--speed", "warp"]) as process:
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "--speed takes instant, demo, realistic" in output


def test_pytest_plugin_fixture(pytester: pytest.Pytester) -> None:
    """A user's own test suite gets `minimax_emulator` through the installed plugin."""
    pytester.makepyfile(
        """
        import json
        import urllib.request

        import pytest

        DOC = {"prompt": "hi", "model": "S2V-01",
               "subject_reference": [{"type": "character", "image": ["https://e.com/f.jpg"]}]}

        def post(emu, body):
            request = urllib.request.Request(
                f"{emu.url}/v1/video_generation", data=json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {emu.api_key}",
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(request) as response:
                return json.load(response)

        def test_default(minimax_emulator):
            assert post(minimax_emulator, DOC)["base_resp"]["status_code"] == 0
            assert minimax_emulator.state()["tasks_created"] == 1

        @pytest.mark.minimax_emulator(api_keys=("mine",), data_urls="reject")
        def test_marker(minimax_emulator):
            assert minimax_emulator.api_key == "mine"
            body = dict(DOC, subject_reference=[{"type": "character",
                                                 "image": ["data:image/png;base64,AAAA"]}])
            assert post(minimax_emulator, body)["base_resp"]["status_code"] == 1000
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)

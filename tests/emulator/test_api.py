"""The emulator's endpoints, as a plain aiohttp client sees them."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
from typing import Any

import aiohttp
import pytest
from PIL import Image

from minimax_s2v.emulator import Durations, Emulator, Endpoint
from tests.raw_api import DOC_REQUEST, FACE_URL, auth, query, retrieve, submit

OK = {"status_code": 0, "status_msg": "success"}


def with_image(image: str) -> dict[str, Any]:
    return {**DOC_REQUEST, "subject_reference": [{"type": "character", "image": [image]}]}


def data_url(width: int, height: int, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_documented_request_works_unchanged(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The documentation's request gets exactly the documented answer shape."""
    async with http.post(
        f"{emulator.url}/v1/video_generation",
        data=aiohttp.JsonPayload(DOC_REQUEST),
        headers={**auth(emulator.api_key), "Content-Type": "application/json"},
    ) as response:
        assert response.status == 200
        assert response.headers["Trace-Id"]
        body = await response.json()
    assert set(body) == {"task_id", "base_resp"}
    assert body["task_id"].isdigit()
    assert body["base_resp"] == OK


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, 1004), ({"Authorization": "Bearer wrong"}, 2049), ({"Authorization": "Basic x"}, 1004)],
)
async def test_bad_keys_rejected_in_band(
    emulator: Emulator, http: aiohttp.ClientSession, headers: dict[str, str], code: int
) -> None:
    """A missing or unknown key is an in-band error on HTTP 200, with a Trace-Id."""
    async with http.post(
        emulator.url / "v1/video_generation", json=DOC_REQUEST, headers=headers
    ) as r:
        assert r.status == 200
        assert r.headers["Trace-Id"]
        body = await r.json()
    assert body["base_resp"]["status_code"] == code
    assert emulator.counters.tasks_created == 0


async def test_other_region_key_gets_2049(http: aiohttp.ClientSession) -> None:
    """A key not accepted, such as one of the other region, is rejected with 2049 (as MiniMax)."""
    async with (
        Emulator() as emu,
        http.get(
            emu.url / "v1/query/video_generation", params={"task_id": "1"}, headers=auth("cn-key")
        ) as r,
    ):
        body = await r.json()
    assert body["base_resp"] == {"status_code": 2049, "status_msg": "invalid api key"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"prompt": "x" * 2001}, "prompt exceeds 2000"),
        ({"model": "T2V-01"}, "not supported"),
        ({"model": None}, "model is required"),
        ({"prompt_optimizer": "yes"}, "prompt_optimizer"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"subject_reference": [{"image": [FACE_URL]}]}, "type must be 'character'"),
        ({"subject_reference": [{"type": "character", "image": FACE_URL}]}, "list of one URL"),
        (
            {"subject_reference": [{"type": "character", "image": [FACE_URL, FACE_URL]}]},
            "list of one",
        ),
        (
            {"subject_reference": [{"type": "character", "image": [FACE_URL]}] * 2},
            "exactly one subject",
        ),
        (
            {"subject_reference": [{"type": "character", "image": ["face.jpg"]}]},
            "public http(s) URL",
        ),
    ],
)
async def test_invalid_requests_get_2013(
    emulator: Emulator, http: aiohttp.ClientSession, change: dict[str, Any], fragment: str
) -> None:
    """Each documented rule is enforced with an in-band 2013 and no task is created."""
    body = {key: value for key, value in {**DOC_REQUEST, **change}.items() if value is not None}
    result = await submit(http, emulator, body)
    assert result["base_resp"]["status_code"] == 2013
    assert fragment in result["base_resp"]["status_msg"]
    assert result["task_id"] == ""
    assert emulator.counters.tasks_created == 0


async def test_non_json_body_gets_2013(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A body that is not JSON is an invalid-params error, not a crash."""
    async with http.post(
        emulator.url / "v1/video_generation", data=b"\xff{", headers=auth(emulator.api_key)
    ) as r:
        assert (await r.json())["base_resp"]["status_code"] == 2013


async def test_data_urls_both_readings(http: aiohttp.ClientSession) -> None:
    """Data URLs are accepted (official CLI) or rejected with 1000 (field report), as set."""
    image = data_url(400, 600)
    async with Emulator() as accepting:
        assert (await submit(http, accepting, with_image(image)))["base_resp"] == OK
        small = await submit(http, accepting, with_image(data_url(200, 400)))
        assert "short side" in small["base_resp"]["status_msg"]
        wide = await submit(http, accepting, with_image(data_url(1400, 400)))
        assert "aspect ratio" in wide["base_resp"]["status_msg"]
    async with Emulator(data_urls="reject") as rejecting:
        result = await submit(http, rejecting, with_image(image))
        assert result["base_resp"] == {"status_code": 1000, "status_msg": "disallowed image url"}
        assert rejecting.counters.tasks_created == 0


async def test_task_goes_through_every_phase(http: aiohttp.ClientSession) -> None:
    """Preparing, Queueing, Processing, then Success, with placeholders until done."""
    durations = Durations(preparing=0.3, queueing=0.3, processing=0.3)
    async with Emulator(durations=durations) as emu:
        task_id = (await submit(http, emu))["task_id"]
        seen: list[dict[str, Any]] = []
        for _ in range(60):
            body = await query(http, emu, task_id)
            if not seen or seen[-1]["status"] != body["status"]:
                seen.append(body)
            if body["status"] == "Success":
                break
            await asyncio.sleep(0.05)
    assert [b["status"] for b in seen] == ["Preparing", "Queueing", "Processing", "Success"]
    for body in seen[:-1]:
        assert (body["file_id"], body["video_width"], body["video_height"]) == ("", 0, 0)
        assert body["base_resp"] == OK
    final = seen[-1]
    assert isinstance(final["file_id"], str)
    assert final["file_id"].isdigit()
    assert (final["video_width"], final["video_height"]) == (1280, 720)


async def test_sensitive_prompt_fails_early_with_1026(http: aiohttp.ClientSession) -> None:
    """A prompt carrying the marker fails right after Preparing with 1026."""
    async with Emulator(durations=Durations(preparing=0, queueing=5, processing=5)) as emu:
        task_id = (await submit(http, emu, {**DOC_REQUEST, "prompt": "hi [sensitive]"}))["task_id"]
        body = await query(http, emu, task_id)
    assert body["status"] == "Fail"
    assert body["base_resp"]["status_code"] == 1026
    assert body["file_id"] == ""


async def test_late_failures_use_1027(http: aiohttp.ClientSession) -> None:
    """With a late-fail ratio of 1, every task fails after Processing with 1027."""
    async with Emulator(late_fail_ratio=1.0) as emu:
        task_id = (await submit(http, emu))["task_id"]
        body = await query(http, emu, task_id)
    assert (body["status"], body["base_resp"]["status_code"]) == ("Fail", 1027)


async def test_unknown_and_expired_tasks_are_errors(http: aiohttp.ClientSession) -> None:
    """Querying an unknown, foreign or expired task is an in-band error, not a status."""
    async with Emulator(api_keys=("a", "b"), task_ttl=0.2) as emu:
        task_id = (await submit(http, emu, key="a"))["task_id"]
        async with http.get(
            emu.url / "v1/query/video_generation", params={"task_id": task_id}, headers=auth("b")
        ) as r:
            assert (await r.json())["base_resp"]["status_code"] == 2013
        assert (await query(http, emu, "999"))["base_resp"]["status_code"] == 2013
        await asyncio.sleep(0.3)
        expired = await query(http, emu, task_id)
    assert expired["base_resp"]["status_code"] == 2013


async def test_retrieve_gives_int_file_id_and_fresh_urls(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """file_id is an int in retrieve (a string in query); each retrieve gives a new URL."""
    task_id = (await submit(http, emulator))["task_id"]
    file_id = (await query(http, emulator, task_id))["file_id"]
    first = await retrieve(http, emulator, file_id)
    second = await retrieve(http, emulator, file_id)
    assert first["base_resp"] == OK
    info = first["file"]
    assert info["file_id"] == int(file_id)
    assert isinstance(info["file_id"], int)
    assert set(info) == {"file_id", "bytes", "created_at", "filename", "purpose", "download_url"}
    assert info["filename"] == "output.mp4"
    assert info["purpose"] == "video_generation"
    assert info["download_url"] != second["file"]["download_url"]
    missing = await retrieve(http, emulator, 12345)
    assert missing["base_resp"]["status_code"] == 2013


async def test_backup_url_and_zero_bytes(http: aiohttp.ClientSession) -> None:
    """The other readings: a backup URL is added and `bytes` reported as 0."""
    async with Emulator(backup_download_url=True, report_file_bytes=False) as emu:
        task_id = (await submit(http, emu))["task_id"]
        info = (await retrieve(http, emu, (await query(http, emu, task_id))["file_id"]))["file"]
        assert info["bytes"] == 0
        async with http.get(info["backup_download_url"]) as r:
            assert r.status == 200
            assert len(await r.read()) == emu.config.file_size


def boxes(data: bytes) -> list[tuple[bytes, int]]:
    """Top-level ISO BMFF boxes as (type, size)."""
    found = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        assert size >= 8
        found.append((kind, size))
        offset += size
    assert offset == len(data)
    return found


async def download_url_for(http: aiohttp.ClientSession, emu: Emulator) -> str:
    task_id = (await submit(http, emu))["task_id"]
    file_id = (await query(http, emu, task_id))["file_id"]
    url: str = (await retrieve(http, emu, file_id))["file"]["download_url"]
    return url


async def test_download_is_a_valid_mp4_of_the_configured_size(http: aiohttp.ClientSession) -> None:
    """The file is ftyp/moov/mdat (a real H.264 clip) padded with a free box to the size."""
    async with Emulator(file_size=3_000_000) as emu:
        url = await download_url_for(http, emu)
        async with http.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "video/mp4"
            data = await r.read()
    assert len(data) == 3_000_000
    kinds = [kind for kind, _ in boxes(data)]
    assert kinds[:2] == [b"ftyp", b"moov"]
    assert b"mdat" in kinds
    assert kinds[-1] == b"free"
    assert b"avc1" in data[:5000]


async def test_download_rate_paces_like_a_link(http: aiohttp.ClientSession) -> None:
    """With download_rate, 2 MB at 4 MB/s take at least half a second (a lower bound only)."""
    with pytest.raises(ValueError, match="download_rate"):
        Emulator(download_rate=0)
    async with Emulator(file_size=2_000_000, download_rate=4_000_000) as emu:
        url = await download_url_for(http, emu)
        started = asyncio.get_running_loop().time()
        async with http.get(url) as r:
            data = await r.read()
        elapsed = asyncio.get_running_loop().time() - started
    assert len(data) == 2_000_000
    assert elapsed >= 0.45


async def test_range_requests(http: aiohttp.ClientSession) -> None:
    """Range gives 206 with the right bytes; an unsatisfiable range gives 416."""
    async with Emulator(file_size=1_000_000) as emu:
        url = await download_url_for(http, emu)
        async with http.get(url) as r:
            whole = await r.read()
        async with http.get(url, headers={"Range": "bytes=1000-1999"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == "bytes 1000-1999/1000000"
            assert await r.read() == whole[1000:2000]
        async with http.get(url, headers={"Range": "bytes=999000-"}) as r:
            assert await r.read() == whole[999000:]
        async with http.get(url, headers={"Range": "bytes=-10"}) as r:
            assert await r.read() == whole[-10:]
        async with http.get(url, headers={"Range": "bytes=2000000-"}) as r:
            assert r.status == 416
            assert r.headers["Content-Range"] == "bytes */1000000"


async def test_download_url_expires_with_403(http: aiohttp.ClientSession) -> None:
    """After the TTL the URL answers 403; a forged token is refused too; Trace-Id is set."""
    async with Emulator(download_ttl=0.3) as emu:
        url = await download_url_for(http, emu)
        async with http.get(url) as r:
            assert r.status == 200
        async with http.get(url.replace("token=", "token=0")) as r:
            assert r.status == 403
        await asyncio.sleep(0.4)
        async with http.get(url) as r:
            assert r.status == 403
            assert r.headers["Trace-Id"]
            assert "expired" in await r.text()
        assert emu.counters.requests["download"]["expired"] == 1


async def test_rate_limit_in_band_and_http(http: aiohttp.ClientSession) -> None:
    """Beyond the RPM a request gets 1002 in-band, or HTTP 429 in HTTP mode."""
    async with Emulator(rate_limits={Endpoint.SUBMIT: 3}) as emu:
        codes = [(await submit(http, emu))["base_resp"]["status_code"] for _ in range(5)]
        assert codes == [0, 0, 0, 1002, 1002]
        assert emu.counters.tasks_created == 3
    async with Emulator(rate_limits={Endpoint.QUERY: 1}, rate_limit_mode="http") as emu:
        statuses = []
        for _ in range(2):
            async with http.get(
                emu.url / "v1/query/video_generation",
                params={"task_id": "1"},
                headers=auth(emu.api_key),
            ) as r:
                statuses.append(r.status)
        assert statuses == [200, 429]


async def test_state_endpoint_counts(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """GET /_emulator/state reports what happened, for tests in other processes."""
    task_id = (await submit(http, emulator))["task_id"]
    await query(http, emulator, task_id)
    await submit(http, emulator, key="nope")
    async with http.get(emulator.url / "_emulator/state", params={"tasks": "1"}) as r:
        state = await r.json()
    assert state["tasks_created"] == 1
    assert state["requests"]["submit"] == {"ok": 1, "auth_error": 1}
    assert state["requests"]["query"] == {"success": 1}
    assert [t["task_id"] for t in state["tasks"]] == [task_id]


async def test_thousand_concurrent_submissions(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """1,000 concurrent submissions with zero durations all reach Success; counters add up."""
    results = await asyncio.gather(*(submit(http, emulator) for _ in range(1000)))
    task_ids = [r["task_id"] for r in results]
    assert len(set(task_ids)) == 1000
    bodies = await asyncio.gather(*(query(http, emulator, t) for t in task_ids))
    assert {b["status"] for b in bodies} == {"Success"}
    assert len({b["file_id"] for b in bodies}) == 1000
    state = emulator.state()
    assert state["tasks_created"] == 1000
    assert state["requests"]["submit"] == {"ok": 1000}
    assert state["requests"]["query"] == {"success": 1000}

"""The fault plan: each kind is observable from a plain client, and a seed repeats it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from minimax_s2v.emulator import Emulator, Endpoint, EndpointFaults, FaultPlan
from tests.raw_api import DOC_REQUEST, auth, submit


def plan(endpoint: Endpoint, **probabilities: float) -> FaultPlan:
    return FaultPlan(endpoints={endpoint: EndpointFaults(**probabilities)})


async def outcome(http: aiohttp.ClientSession, emu: Emulator) -> str:
    """What a plain client observes for one submission."""
    try:
        async with http.post(
            emu.url / "v1/video_generation", json=DOC_REQUEST, headers=auth(emu.api_key)
        ) as r:
            if r.content_type != "application/json":
                return f"http {r.status} {r.content_type}"
            body = await r.json()
            return f"http {r.status} code {body['base_resp']['status_code']}"
    except aiohttp.ServerDisconnectedError:
        return "disconnected"


async def test_http_5xx(http: aiohttp.ClientSession) -> None:
    """An HTTP 5xx with a non-JSON body; no task is created."""
    async with Emulator(faults=plan(Endpoint.SUBMIT, http_5xx=1.0)) as emu:
        result = await outcome(http, emu)
        assert result.split()[1] in {"500", "502", "503"}
        assert emu.counters.tasks_created == 0


async def test_in_band_server_errors(http: aiohttp.ClientSession) -> None:
    """In-band 1000, 1001 or 1013 on HTTP 200; no task is created."""
    async with Emulator(seed=3, faults=plan(Endpoint.SUBMIT, server_error=1.0)) as emu:
        results = {await outcome(http, emu) for _ in range(30)}
        assert results == {"http 200 code 1000", "http 200 code 1001", "http 200 code 1013"}
        assert emu.counters.tasks_created == 0


async def test_rate_limit_fault(http: aiohttp.ClientSession) -> None:
    """A planned 1002."""
    async with Emulator(faults=plan(Endpoint.SUBMIT, rate_limit=1.0)) as emu:
        assert await outcome(http, emu) == "http 200 code 1002"


async def test_drop_creates_nothing(http: aiohttp.ClientSession) -> None:
    """A dropped connection: the client sees a disconnect, and no task exists."""
    async with Emulator(faults=plan(Endpoint.SUBMIT, drop=1.0)) as emu:
        assert await outcome(http, emu) == "disconnected"
        assert emu.counters.tasks_created == 0


async def test_lost_response_creates_the_task(http: aiohttp.ClientSession) -> None:
    """The ambiguous submit: the client sees a disconnect, but the task was created."""
    async with Emulator(faults=plan(Endpoint.SUBMIT, lost_response=1.0)) as emu:
        assert await outcome(http, emu) == "disconnected"
        assert emu.counters.tasks_created == 1
        assert emu.counters.requests["submit"] == {"lost_response": 1}


async def test_non_json(http: aiohttp.ClientSession) -> None:
    """HTTP 200 with an HTML page."""
    async with Emulator(faults=plan(Endpoint.SUBMIT, non_json=1.0)) as emu:
        assert await outcome(http, emu) == "http 200 text/html"


async def test_slow(http: aiohttp.ClientSession) -> None:
    """A slow answer arrives after slow_seconds, and is otherwise normal."""
    async with Emulator(faults=plan(Endpoint.QUERY, slow=1.0, slow_seconds=0.3)) as emu:
        started = time.perf_counter()
        async with http.get(
            emu.url / "v1/query/video_generation",
            params={"task_id": "1"},
            headers=auth(emu.api_key),
        ) as r:
            body = await r.json()
        assert time.perf_counter() - started >= 0.29
        assert body["base_resp"]["status_code"] == 2013
        assert emu.counters.faults["query"]["slow"] == 1


async def test_download_drop_cuts_the_body(http: aiohttp.ClientSession) -> None:
    """A dropped download ends half-way; a Range request fetches the rest."""
    async with Emulator(file_size=400_000) as emu:
        task_id = (await submit(http, emu))["task_id"]
        emu.configure(faults=plan(Endpoint.DOWNLOAD, drop=1.0))
        file_id = emu.engine.tasks[task_id].file_id
        async with http.get(
            emu.url / "v1/files/retrieve",
            params={"file_id": str(file_id)},
            headers=auth(emu.api_key),
        ) as r:
            url = (await r.json())["file"]["download_url"]
        received = bytearray()

        async def read_all() -> None:
            async with http.get(url) as r:
                async for chunk in r.content.iter_chunked(65536):
                    received.extend(chunk)

        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all()
        assert 0 < len(received) < 400_000
        emu.configure(faults=FaultPlan())
        async with http.get(url, headers={"Range": f"bytes={len(received)}-"}) as r:
            assert r.status == 206
            rest = await r.read()
        assert len(received) + len(rest) == 400_000


async def sequence(http: aiohttp.ClientSession, seed: int) -> list[str]:
    async with Emulator(seed=seed, faults=FaultPlan.chaos(0.12, slow_seconds=0.01)) as emu:
        return [await outcome(http, emu) for _ in range(60)]


async def test_same_seed_same_fault_sequence(http: aiohttp.ClientSession) -> None:
    """Two emulators with one seed produce the same faults in the same order."""
    first, second, other = await asyncio.gather(
        sequence(http, 11), sequence(http, 11), sequence(http, 12)
    )
    assert first == second
    assert first != other
    assert len(set(first)) >= 4  # several fault kinds really occurred


def test_probabilities_are_checked() -> None:
    """A plan whose probabilities exceed 1 is refused with a clear error."""
    with pytest.raises(ValueError, match="add up to"):
        EndpointFaults(drop=0.6, slow=0.6)
    with pytest.raises(ValueError, match="probability"):
        EndpointFaults(drop=1.5)


@pytest.mark.parametrize("kind", EndpointFaults.KINDS)
async def test_every_kind_is_drawn_and_counted(kind: str, http: aiohttp.ClientSession) -> None:
    """Each declared kind is drawn by a plan that gives it certainty, and counted under its name."""
    faults = EndpointFaults(**{kind: 1.0}, slow_seconds=0.01)
    async with Emulator(faults=FaultPlan(endpoints={Endpoint.SUBMIT: faults})) as emu:
        await outcome(http, emu)
        assert emu.counters.faults == {"submit": {kind: 1}}
    assert EndpointFaults.uniform(0.1, submit=True).total == pytest.approx(0.1 * len(faults.KINDS))

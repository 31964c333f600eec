"""Forged callbacks from someone who learnt a callback URL: what they may still cost or change.

Each test asserts a promise of the README's trust rules; on the snapshot they were written
against, each fails (see the test's docstring for what was observed).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from minimax_s2v import TaskStatus
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from minimax_s2v.stores import SQLiteStore
from tests.client_setup import face_request
from tests.raw_api import DOC_REQUEST, auth
from tests.receiver_setup import client_of, new_receiver, served_client, uncertain_submission


def update(task_id: str, status: str, message: str = "success", code: int = 0) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": status,
        "file_id": "",
        "base_resp": {"status_code": code, "status_msg": message},
    }


def callback_url(emu: Emulator, task_id: str) -> URL:
    """The URL the attacker learnt (here: from the emulator, which sent callbacks to it)."""
    return URL(emu.task(task_id).callback_url or "")


async def test_uncertain_submission_does_not_adopt_a_foreign_finished_task() -> None:
    """Rule 3: only the task the submission created may be adopted.

    Observed: one forged ``success`` naming another (finished) task of the account
    made ``recover()`` return that task and ``wait()`` resolve SUCCESS with its file, while
    the task the submission really created was still Preparing.
    """
    receiver = new_receiver()
    async with Emulator() as emu:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                emu.url / "v1/video_generation", json=DOC_REQUEST, headers=auth(emu.api_key)
            ) as r:
                other = (await r.json())["task_id"]  # another service's task, same key
        emu.configure(
            faults=FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)}),
            durations=Durations(preparing=20.0),
        )
        async with receiver.serve("127.0.0.1", 0):
            async with client_of(emu, receiver) as client:
                lost, real = await uncertain_submission(client, emu, besides=other)
                async with aiohttp.ClientSession() as http:
                    async with http.post(
                        callback_url(emu, real), json=update(other, "Success")
                    ) as r:
                        assert r.status == 200
                for _ in range(100):  # 2 s for the claim's check query to finish
                    if client.stats().reconciliations and client.stats().adopted:
                        break
                    await asyncio.sleep(0.02)
                task = client.recover(lost)
                # The promise: only the task this submission created may be adopted.
                assert task is None or task.task_id == real


async def test_forged_terminal_callbacks_cannot_drive_unbounded_queries() -> None:
    """Rule 2: forged final callbacks must not buy unbounded authenticated queries.

    Observed: 300 forged ``success`` callbacks sent one after another
    on one task's URL caused 300 confirmation queries (plus continuous fallback polls).
    """
    async with Emulator(durations=Durations(preparing=60.0)) as emu:
        async with served_client(emu) as (client, _):
            task = await client.submit(face_request())
            url = callback_url(emu, task.task_id)
            before = emu.counters.requests_to("query")
            async with aiohttp.ClientSession() as http:
                for _ in range(300):
                    async with http.post(url, json=update(task.task_id, "Success")) as r:
                        assert r.status == 200
            queries = emu.counters.requests_to("query") - before
            assert task.status is not TaskStatus.SUCCESS
    assert queries <= 30, f"{queries} authenticated queries caused by 300 forged callbacks"


async def test_forged_callbacks_on_a_finished_task_do_not_grow_the_journal(
    tmp_path: Path,
) -> None:
    """Rules 1 and 4: a finished task's URL must not let anyone grow the journal.

    Observed: 200 forged callbacks with a 60 kB
    ``status_msg`` on a finished task's URL were all answered 200 and journaled: the SQLite
    journal grew by ~14 MB in 0.2 s, with no bound.
    """
    db = tmp_path / "journal.db"
    async with Emulator() as emu:
        async with served_client(emu, store=SQLiteStore(db)) as (client, _):
            task = await client.submit(face_request())
            await task.wait(timeout=20)
            url = callback_url(emu, task.task_id)
            forged = update(task.task_id, "Fail", "y" * 60_000, 1027)
            async with aiohttp.ClientSession() as http:
                for _ in range(200):
                    async with http.post(url, json=forged) as r:
                        status = r.status
    with sqlite3.connect(db) as connection:
        (events,) = connection.execute("SELECT count(*) FROM events").fetchone()
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert events < 50, f"last answer {status}: {events} rows, {size} bytes"
    assert size < 2_000_000, f"last answer {status}: {events} rows, {size} bytes"


async def test_disproved_claims_do_not_lock_out_the_real_task() -> None:
    """Rule 3: claims the API disproved must not stop the real task from being adopted.

    Observed: four forged claims naming task ids that do not exist (each disproved by a
    query) filled the claim limit; the real task's own callbacks then got 409 and
    ``recover()`` stayed ``None`` (issue 13's finding 4, by another road).
    """
    receiver = new_receiver()
    faults = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)})
    async with Emulator(faults=faults, durations=Durations(preparing=0.5, processing=0.3)) as emu:
        async with receiver.serve("127.0.0.1", 0):
            async with client_of(emu, receiver) as client:
                lost, real = await uncertain_submission(client, emu)
                async with aiohttp.ClientSession() as http:
                    for i in range(4):
                        forged = update(str(900_000_000 + i), "Processing")
                        async with http.post(callback_url(emu, real), json=forged) as r:
                            assert r.status == 200
                await emu.callbacks.drain(5)
                for _ in range(100):
                    if client.recover(lost) is not None:
                        break
                    await asyncio.sleep(0.02)
                delivered = [
                    d.http_status
                    for d in emu.deliveries
                    if d.kind == "status" and d.task_id == real
                ]
                task = client.recover(lost)
    assert set(delivered) == {200}
    assert task is not None
    assert task.task_id == real

"""With a durable store: updates are on disk before they are acknowledged; resume after a stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from minimax_s2v import Client, TaskStatus
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.receiver import CallbackReceiver
from minimax_s2v.stores import SQLiteStore, StoredSubmission, SubmissionState
from tests.client_setup import TEST_RETRY, face_request
from tests.processes import free_port
from tests.receiver_setup import POLLING, new_receiver, served_client

_NOW = datetime.now(UTC)


async def test_acknowledged_means_recorded(tmp_path: Path) -> None:
    """Every callback the emulator saw acknowledged is in the SQLite journal."""
    store = SQLiteStore(tmp_path / "j.db")
    async with Emulator(seed=3, durations=Durations(processing=(0.1, 0.4))) as emu:
        async with served_client(emu, store=store) as (client, _):
            tasks = await asyncio.gather(
                *(client.submit(face_request(), label=str(i)) for i in range(100))
            )
            await asyncio.gather(*(t.wait(timeout=20) for t in tasks))
            journal = {
                (s.task_id, s.status_text.lower(), source.value)
                for s, source, _ in await store.events()
            }
        acknowledged = {
            (d.task_id, (d.status or "").lower())
            for d in emu.deliveries
            if d.kind == "status" and d.http_status == 200
        }
    await store.close()
    assert len(acknowledged) == 200  # processing and success for each task
    assert acknowledged <= {
        (task_id, status) for task_id, status, source in journal if source == "callback"
    }
    assert store.commits < store.writes  # group commit at work


async def test_resume_after_a_stop(tmp_path: Path) -> None:
    """A new client on the same journal re-attaches to unfinished tasks; nothing is resubmitted."""
    path = tmp_path / "j.db"
    async with Emulator(durations=Durations(processing=(0.5, 1.0))) as emu:
        first_store = SQLiteStore(path)
        async with Client(
            emu.api_key, base_url=emu.url, store=first_store, polling=POLLING, retry=TEST_RETRY
        ) as first:
            submitted = [await first.submit(face_request(), label=f"line {i}") for i in range(10)]
        await first_store.close()
        second_store = SQLiteStore(path)
        async with Client(
            emu.api_key, base_url=emu.url, store=second_store, polling=POLLING, retry=TEST_RETRY
        ) as second:
            resumed = await second.resume()
            results = await asyncio.gather(*(t.wait(timeout=10) for t in resumed.tasks))
            assert await second_store.unfinished() == []
        await second_store.close()
    assert sorted(t.task_id for t in resumed.tasks) == sorted(t.task_id for t in submitted)
    assert sorted(t.label or "" for t in resumed.tasks) == sorted(f"line {i}" for i in range(10))
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    assert resumed.uncertain == []
    assert emu.counters.tasks_created == 10


async def test_uncertain_submission_survives_restart_and_is_adopted(tmp_path: Path) -> None:
    """A submission whose answer was lost is reported after a restart, then bound by callback."""
    from minimax_s2v import SubmissionUncertainError
    from minimax_s2v.emulator import Endpoint, EndpointFaults, FaultPlan

    path = tmp_path / "j.db"
    port = free_port()
    lost = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)})
    # The task starts processing once the second process listens: its callbacks claim it
    # while it is unfinished (a task seen only once it has ended is never adopted).
    slow = Durations(preparing=1.0, processing=1.5)
    async with Emulator(faults=lost, durations=slow, challenge=False) as emu:
        store = SQLiteStore(path)
        async with Client(
            emu.api_key,
            base_url=emu.url,
            store=store,
            receiver=new_receiver(port),
            polling=POLLING,
            retry=TEST_RETRY,
        ) as first:
            with pytest.raises(SubmissionUncertainError):
                await first.submit(face_request(), label="only")
        await store.close()
        store = SQLiteStore(path)
        receiver = new_receiver(port)
        async with receiver.serve("127.0.0.1", port):
            async with Client(
                emu.api_key,
                base_url=emu.url,
                store=store,
                receiver=receiver,
                polling=POLLING,
                retry=TEST_RETRY,
            ) as second:
                resumed = await second.resume()
                assert [s.label for s in resumed.uncertain] == ["only"]
                await emu.callbacks.drain(10)  # processing, then success, reach the new process
                async with asyncio.timeout(10):  # the claim is checked with a query first
                    while second.stats().adopted == 0:
                        await asyncio.sleep(0.01)
                (stored,) = await store.submissions()
                assert stored.task_id is not None
                snapshot = await second.task(stored.task_id).wait(timeout=10)
        await store.close()
    assert snapshot.status is TaskStatus.SUCCESS
    assert emu.counters.tasks_created == 1


async def test_updates_racing_through_the_journal_never_move_a_task_back(tmp_path: Path) -> None:
    """A late Queueing, sent while Processing may be in flight in the journal: it stays ahead."""
    store = SQLiteStore(tmp_path / "j.db")
    receiver = CallbackReceiver(secret="receiver-test-secret-0123456789")
    async with (
        receiver.serve("127.0.0.1", 0),
        Client("key", base_url="http://127.0.0.1:9", store=store, receiver=receiver) as client,
        aiohttp.ClientSession() as http,
    ):
        await store.save_submission(
            StoredSubmission("nonce-race-1", "fp", {}, None, SubmissionState.SENDING, _NOW)
        )
        await store.mark_submitted("nonce-race-1", "42")
        task = client.task("42")
        url = receiver.callback_url("nonce-race-1")

        async def send(status: str) -> int:
            body = {"task_id": "42", "status": status, "base_resp": {"status_code": 0}}
            async with http.post(url, json=body) as response:
                return response.status

        first = asyncio.create_task(send("processing"))
        async with asyncio.timeout(10):
            while task.status is not TaskStatus.PROCESSING:  # applied before it is journaled
                await asyncio.sleep(0.001)
        assert list(await asyncio.gather(first, send("queueing"))) == [200, 200]
        assert task.status is TaskStatus.PROCESSING
        assert [event.snapshot.status for event in task.events] == [TaskStatus.PROCESSING]
        journal = await store.events("42")
        stored = await store.task("42")
    await store.close()
    # The news was journaled as confirmed; the late Queueing changed nothing and was only
    # acknowledged (journaling what changes nothing would let a URL's holder grow it).
    assert [(s.status, confirmed) for s, _, confirmed in journal] == [
        (TaskStatus.PROCESSING, True),
    ]
    assert stored is not None
    assert stored.snapshot is not None
    assert stored.snapshot.status is TaskStatus.PROCESSING

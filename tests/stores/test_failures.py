"""A journal that fails: no created task is hidden, none is paid twice, no wait hangs."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from minimax_s2v import (
    Client,
    MiniMaxError,
    RetryPolicy,
    StoreError,
    Task,
    TaskStatus,
)
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.stores import MemoryStore, SQLiteStore
from tests.client_setup import FAST_POLLS, TEST_RETRY, face_request
from tests.stores.flaky import FlakyStore
from tests.waiting import wait_until


async def test_a_journal_failing_for_a_while_costs_a_delay_not_a_task() -> None:
    """Recording the created task fails three times: submit() still returns the task."""
    store = FlakyStore()
    store.failures["mark_submitted"] = 3
    async with (
        Emulator() as emu,
        Client(
            emu.api_key, base_url=emu.url, store=store, polling=FAST_POLLS, retry=TEST_RETRY
        ) as client,
    ):
        task = await client.submit(face_request())
        assert (await task.wait(timeout=10)).status is TaskStatus.SUCCESS
        (stored,) = await store.submissions()
    assert store.failed == ["mark_submitted"] * 3
    assert stored.task_id == task.task_id
    assert emu.counters.tasks_created == 1


async def test_a_journal_failing_for_good_names_the_task_it_created() -> None:
    """The task exists but cannot be journaled: a StoreError with its id; it is followed."""
    store = FlakyStore()
    store.failures["mark_submitted"] = 10**6
    async with (
        Emulator() as emu,
        Client(
            emu.api_key, base_url=emu.url, store=store, polling=FAST_POLLS, retry=TEST_RETRY
        ) as client,
    ):
        with pytest.raises(StoreError) as info:
            await client.submit(face_request())
        error = info.value
        (created,) = [t["task_id"] for t in emu.state(tasks=True)["tasks"]]
        assert error.task_id == created
        assert "do not submit it again" in str(error)
        assert not isinstance(error.__cause__, StoreError)
        snapshot = await client.task(created).wait(timeout=10)  # still followed
    assert snapshot.status is TaskStatus.SUCCESS
    assert emu.counters.tasks_created == 1


async def test_a_submission_the_journal_refuses_is_not_sent() -> None:
    """save_submission fails for good: a StoreError without a task id, and no request."""
    store = FlakyStore()
    store.failures["save_submission"] = 10**6
    async with (
        Emulator() as emu,
        Client(emu.api_key, base_url=emu.url, store=store, retry=TEST_RETRY) as client,
    ):
        with pytest.raises(StoreError) as info:
            await client.submit(face_request())
    assert info.value.task_id is None
    assert emu.counters.requests_to("submit") == 0


async def test_polling_survives_a_store_failure() -> None:
    """Recording two polled answers fails: polling goes on and the wait ends."""
    store = FlakyStore()
    async with (
        Emulator(durations=Durations(processing=0.3)) as emu,
        Client(
            emu.api_key,
            base_url=emu.url,
            store=store,
            polling=FAST_POLLS,
            retry=RetryPolicy.never(),
        ) as client,
    ):
        task = await client.submit(face_request())
        store.failures["save_event"] = 2
        snapshot = await task.wait(timeout=10)
    assert snapshot.status is TaskStatus.SUCCESS
    assert store.failed == ["save_event"] * 2


async def test_store_that_cannot_open_leaks_nothing() -> None:
    """A store that fails to open: a StoreError, and the client's session is closed."""

    class Unopenable(MemoryStore):
        async def open(self) -> None:
            raise OSError(13, "Permission denied")

    client = Client("key", base_url="http://127.0.0.1:9", store=Unopenable())
    with pytest.raises(StoreError, match="be opened"):
        await client.__aenter__()
    assert client.closed


async def test_a_journal_failing_mid_burst_then_recovering(tmp_path: Path) -> None:
    """The journal's file refuses writes mid-burst, then takes them again.

    Every created task is followed or named, no raw sqlite3 error escapes, and the store
    journals again afterwards.
    """
    store = SQLiteStore(tmp_path / "j.db")
    outcomes: list[Task | Exception] = []

    async def submit(i: int) -> None:
        try:
            outcomes.append(await client.submit(face_request(f"burst {i}")))
        except Exception as error:  # noqa: BLE001 - each outcome is checked below
            outcomes.append(error)

    async def fail_for_a_while() -> None:
        await wait_until(lambda: emu.counters.requests_to("submit") >= 20, "20 submissions")
        with immutable(tmp_path / "j.db-wal"):  # what is written from now on fails (EPERM)
            await wait_until(
                lambda: any(isinstance(o, StoreError) for o in outcomes), "a journal failure"
            )

    async with (
        Emulator(durations=Durations(processing=0.2)) as emu,
        Client(emu.api_key, base_url=emu.url, store=store, polling=FAST_POLLS) as client,
    ):
        failing = asyncio.create_task(fail_for_a_while())
        await asyncio.gather(*(submit(i) for i in range(80)))
        await failing
        followed = {o.task_id for o in outcomes if not isinstance(o, BaseException)}
        named = {o.task_id for o in outcomes if isinstance(o, StoreError) and o.task_id}
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert errors
        assert all(isinstance(e, MiniMaxError) for e in errors), errors  # no raw sqlite3
        results = await asyncio.gather(*(client.task(t).wait(timeout=20) for t in followed | named))
        tasks = emu.state(tasks=True)["tasks"]
        after = await client.submit(face_request("after the failure"))
        journaled = await store.task(after.task_id)
    await store.close()
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    assert followed | named == {t["task_id"] for t in tasks}  # each created task reached the caller
    assert len(tasks) == len({t["prompt"] for t in tasks})  # none was created twice
    assert journaled is not None  # the journal writes again
    assert journaled.submission is not None


CHATTR = shutil.which("chattr") or "/usr/bin/chattr"  # e2fsprogs, on every Debian


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: not even root may write the file until it is lifted."""
    subprocess.run([CHATTR, "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run([CHATTR, "-i", str(path)], check=True)


async def test_an_unwritable_journal_file_is_a_store_error(tmp_path: Path) -> None:
    """A real journal file that cannot be written: StoreError, nothing sent."""
    path = tmp_path / "j.db"
    first = SQLiteStore(path)
    await first.open()
    await first.close()
    for extra in (tmp_path / "j.db-wal", tmp_path / "j.db-shm"):
        extra.unlink(missing_ok=True)
    with immutable(path):
        async with Emulator() as emu:
            client = Client(
                emu.api_key, base_url=emu.url, store=SQLiteStore(path), retry=TEST_RETRY
            )
            with pytest.raises(StoreError) as info:
                async with client:
                    await client.submit(face_request())
    assert info.value.task_id is None
    assert not isinstance(info.value, sqlite3.Error)
    assert emu.counters.requests_to("submit") == 0


async def test_close_returns_after_resuming_many_tasks_of_an_unreachable_api() -> None:
    """Nine tasks resumed while the API is down: close() still returns (it once hung)."""
    from datetime import UTC, datetime

    from minimax_s2v.stores import StoredSubmission, SubmissionState

    store = MemoryStore()
    client = Client("key", base_url="http://127.0.0.1:9", store=store, retry=RetryPolicy.never())
    async with asyncio.timeout(20):
        async with client:
            for i in range(9):
                nonce = f"resumenonce{i:04d}"
                await store.save_submission(
                    StoredSubmission(
                        nonce, "f", {}, None, SubmissionState.SENDING, datetime.now(UTC)
                    )
                )
                await store.mark_submitted(nonce, str(10**14 + i))
            resumed = await client.resume()
            assert len(resumed.tasks) == 9
    assert client.closed

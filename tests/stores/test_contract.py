"""Every store keeps the same promises; SQLite also across reopening."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from minimax_s2v import Client, EventSource, TaskSnapshot, TaskStatus
from minimax_s2v.stores import (
    MemoryStore,
    SharedTaskStore,
    SQLiteStore,
    StoredSubmission,
    SubmissionState,
    TaskStore,
)
from minimax_s2v.stores.redis import RedisStore


def submission(nonce: str, label: str | None = None) -> StoredSubmission:
    return StoredSubmission(
        nonce=nonce,
        fingerprint="f" * 32,
        payload={"model": "S2V-01", "prompt": nonce},
        label=label,
        state=SubmissionState.SENDING,
        created_at=datetime.now(UTC),
    )


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    made: TaskStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "j.db")
    else:
        # A fresh key prefix per test keeps the tests apart on one server.
        url = request.getfixturevalue("redis_url")
        made = RedisStore(url, prefix=f"test{uuid.uuid4().hex[:8]}:")
    await made.open()
    yield made
    await made.close()


async def test_submission_life_cycle(store: TaskStore) -> None:
    """Journaled, then submitted (unfinished until final), uncertain, or dropped."""
    for nonce in ("n-one-1234", "n-two-1234", "n-three-12"):
        await store.save_submission(submission(nonce, label=nonce[:5]))
    assert {s.nonce for s in await store.uncertain()} == {"n-one-1234", "n-two-1234", "n-three-12"}
    await store.mark_submitted("n-one-1234", "101")
    await store.mark_uncertain("n-two-1234")
    await store.drop_submission("n-three-12")
    uncertain = await store.uncertain()
    assert [(s.nonce, s.state) for s in uncertain] == [("n-two-1234", SubmissionState.UNCERTAIN)]
    unfinished = await store.unfinished()
    assert [t.task_id for t in unfinished] == ["101"]
    assert unfinished[0].submission is not None
    assert unfinished[0].submission.label == "n-one"
    assert unfinished[0].snapshot is None
    await store.save_event(
        TaskSnapshot("101", TaskStatus.PROCESSING), EventSource.CALLBACK, confirmed=True
    )
    assert (await store.unfinished())[0].snapshot == TaskSnapshot("101", TaskStatus.PROCESSING)
    final = TaskSnapshot("101", TaskStatus.SUCCESS, file_id="9", width=1280, height=720)
    await store.save_event(final, EventSource.POLL, confirmed=True)
    assert await store.unfinished() == []
    task = await store.task("101")
    assert task is not None
    assert task.finished
    assert task.snapshot == final


async def test_unconfirmed_events_are_journaled_only(store: TaskStore) -> None:
    """An unconfirmed update is kept in the journal but is not the task's state."""
    await store.save_submission(submission("nonce-aaaa"))
    await store.mark_submitted("nonce-aaaa", "7")
    success = TaskSnapshot("7", TaskStatus.SUCCESS, file_id="1")
    await store.save_event(success, EventSource.CALLBACK, confirmed=False)
    assert [t.task_id for t in await store.unfinished()] == ["7"]
    assert await store.events("7") == [(success, EventSource.CALLBACK, False)]


async def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    """What was committed is there after closing and reopening the file."""
    path = tmp_path / "journal.db"
    first = SQLiteStore(path)
    await first.save_submission(submission("nonce-keep", label="line 3"))
    await first.mark_submitted("nonce-keep", "55")
    await first.save_event(
        TaskSnapshot("55", TaskStatus.QUEUEING), EventSource.POLL, confirmed=True
    )
    await first.close()
    second = SQLiteStore(path)
    unfinished = await second.unfinished()
    await second.close()
    assert [(t.task_id, t.snapshot and t.snapshot.status) for t in unfinished] == [
        ("55", TaskStatus.QUEUEING)
    ]
    assert unfinished[0].submission is not None
    assert unfinished[0].submission.payload["prompt"] == "nonce-keep"


async def test_sqlite_group_commit(tmp_path: Path) -> None:
    """Concurrent writes share transactions: far fewer commits than writes, all durable."""
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    await asyncio.gather(
        *(
            store.save_event(
                TaskSnapshot(str(i), TaskStatus.PROCESSING), EventSource.CALLBACK, confirmed=True
            )
            for i in range(2000)
        )
    )
    commits, writes = store.commits, store.writes
    await store.close()
    assert writes == 2000
    assert commits < 200
    with sqlite3.connect(tmp_path / "g.db") as connection:
        assert connection.execute("SELECT COUNT(*) FROM events").fetchone() == (2000,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_bad_path_is_a_clear_error(tmp_path: Path) -> None:
    """A store that cannot open its file says so when opened."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((sqlite3.Error, OSError)):
        await SQLiteStore(blocker / "j.db").open()


async def test_redis_publishes_to_other_replicas(redis_url: str) -> None:
    """An update recorded by one RedisStore reaches another's subscriber, not its own."""
    prefix = f"pub{uuid.uuid4().hex[:8]}:"
    first, second = RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)
    heard: list[tuple[str | None, TaskSnapshot, bool]] = []
    own: list[TaskSnapshot] = []

    async def on_second(nonce: str | None, snapshot: TaskSnapshot, confirmed: bool) -> None:
        heard.append((nonce, snapshot, confirmed))

    async def on_first(nonce: str | None, snapshot: TaskSnapshot, confirmed: bool) -> None:
        own.append(snapshot)

    await first.subscribe(on_first)
    await second.subscribe(on_second)
    snapshot = TaskSnapshot("42", TaskStatus.PROCESSING)
    await first.save_event(snapshot, EventSource.CALLBACK, confirmed=True, nonce="nonce-4242")
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.02)
    await first.save_submission(submission("nonce-4242"))
    await first.mark_submitted("nonce-4242", "42")
    found = await second.submission("nonce-4242")
    assert found is not None
    assert found.task_id == "42"
    await first.close()
    await second.close()
    assert heard == [("nonce-4242", snapshot, True)]
    assert own == []


async def test_redis_batches_concurrent_updates(redis_url: str) -> None:
    """Updates saved together share one transaction and one publication; none is lost."""
    prefix = f"batch{uuid.uuid4().hex[:8]}:"
    first, second = RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)
    heard: list[tuple[str | None, str, bool]] = []

    async def on_second(nonce: str | None, snapshot: TaskSnapshot, confirmed: bool) -> None:
        heard.append((nonce, snapshot.task_id, confirmed))

    await second.subscribe(on_second)
    publications = 0
    raw = aioredis.Redis.from_url(redis_url)  # counts the raw publications
    listener = raw.pubsub()
    await listener.subscribe(prefix + "updates")
    await first.open()
    await asyncio.gather(
        *(
            first.save_event(
                TaskSnapshot(str(i), TaskStatus.PROCESSING),
                EventSource.CALLBACK,
                confirmed=i % 2 == 0,
                nonce=f"nonce-{i:04d}",
            )
            for i in range(200)
        )
    )
    for _ in range(100):
        if len(heard) == 200:
            break
        await asyncio.sleep(0.02)
    while (message := await listener.get_message(timeout=0.2)) is not None:
        publications += message["type"] == "message"
    await listener.aclose()  # type: ignore[no-untyped-call]
    await raw.aclose()
    journal = await first.events()
    confirmed = await first.task("4")
    await first.close()
    await second.close()
    assert heard == [(f"nonce-{i:04d}", str(i), i % 2 == 0) for i in range(200)]
    assert 1 <= publications < 20  # a handful of batches, not 200 messages
    assert len(journal) == 200
    assert confirmed is not None
    assert confirmed.snapshot is not None
    assert confirmed.snapshot.status is TaskStatus.PROCESSING


async def test_a_store_of_the_shared_protocol_is_subscribed_to(tmp_path: Path) -> None:
    """Any store with `shared` and `subscribe` is a SharedTaskStore: the client listens to it."""

    class Shared(MemoryStore):
        shared = True

        def __init__(self) -> None:
            super().__init__()
            self.subscribers: list[object] = []

        async def subscribe(self, on_update: object) -> None:
            self.subscribers.append(on_update)

    store = Shared()
    assert isinstance(store, SharedTaskStore)
    redis = RedisStore("redis://127.0.0.1:1")  # never connects
    assert isinstance(redis, SharedTaskStore)
    await redis.close()
    assert not isinstance(MemoryStore(), SharedTaskStore)
    assert not isinstance(SQLiteStore(tmp_path / "j.db"), SharedTaskStore)
    async with Client("k", base_url="http://127.0.0.1:1", store=store):
        assert len(store.subscribers) == 1

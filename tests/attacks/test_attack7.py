"""Attacks from outside on replicas sharing Redis, the SQLite journal, and the public calls."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from minimax_s2v import (
    Client,
    StoreError,
    SubmissionUncertainError,
    Task,
    TaskSnapshot,
    TaskStatus,
    VideoRequest,
)
from minimax_s2v.emulator import Durations, Emulator
from minimax_s2v.stores import SQLiteStore
from minimax_s2v.stores.redis import RedisStore
from tests.attacks.test_attack5 import api_server, journaled_client
from tests.client_setup import TEST_RETRY, face_request, fast_client
from tests.receiver_setup import status_update


def publication(updates: list[tuple[str | None, dict[str, object], bool]]) -> str:
    """A message in the form the replicas publish: an origin line, then the updates."""
    return "forger\n" + json.dumps(updates)


@contextlib.asynccontextmanager
async def followed_task(
    redis_url: str, prefix: str
) -> AsyncIterator[tuple[Emulator, Task, aioredis.Redis]]:
    """A client on a ``RedisStore`` under ``prefix`` following one task (queued for 30 s).

    With it, a plain Redis connection of the attacker's own.
    """
    raw = aioredis.Redis.from_url(redis_url)
    try:
        async with Emulator(durations=Durations(queueing=30.0)) as emu:
            async with fast_client(emu, store=RedisStore(redis_url, prefix=prefix)) as client:
                yield emu, await client.submit(face_request()), raw
    finally:
        await raw.aclose()


async def test_a_confirmed_success_published_on_the_channel_is_checked_with_the_api(
    redis_url: str,
) -> None:
    """A publication that calls a success confirmed does not resolve a task by itself.

    Anyone who can publish on the replicas' channel (a compromised neighbour of Redis, a
    replica of another version) names a followed task Success with a file of their choice.
    Rule 2: only the API's answer resolves a task; the claim is at most a hint to ask it.
    """
    prefix = "forged-confirmed:"
    async with followed_task(redis_url, prefix) as (emu, task, raw):
        queries = emu.counters.requests_to("query")
        forged = status_update(task.task_id, "Success", "666")
        assert await raw.publish(prefix + "updates", publication([(None, forged, True)]))
        async with asyncio.timeout(5):
            while not task.done and emu.counters.requests_to("query") == queries:
                await asyncio.sleep(0.01)
        assert not task.done, "resolved on a publication's word"
        assert task.status is not TaskStatus.SUCCESS


GARBAGE: list[bytes] = [
    b"\xff\xfe not utf-8 \x80",
    b"no newline, no json",
    b"forger\n{not json",
    b"forger\n{}",
    b"forger\n[1, 2, 3]",
    b"forger\n[[null]]",
    b'forger\n[["n", {"task_id": 5}, true]]',
    b'forger\n[[["a list"], {"task_id": "1", "status": "Processing"}, false]]',
    b"forger\n" + b"[" * 100_000,
    b"forger\n" + json.dumps([[None, {"x": "y" * 1_000_000}, False]]).encode(),
]


async def test_malformed_publications_change_nothing_and_the_subscription_goes_on(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage on the channel is skipped; the next real update is still applied.

    Bytes that are not UTF-8, text that is not JSON, JSON of the wrong shape, deep nesting
    and a megabyte of padding: none may stop the listener, drop the subscription (each loss
    replays the journal) or change a task.
    """
    prefix = "garbage:"
    async with followed_task(redis_url, prefix) as (_, task, raw):
        for message in GARBAGE:
            await raw.publish(prefix + "updates", message)
        update = status_update(task.task_id, "Processing")
        await raw.publish(prefix + "updates", publication([(None, update, False)]))
        async with asyncio.timeout(5):
            while task.status is not TaskStatus.PROCESSING:
                await asyncio.sleep(0.01)
    assert "lost the subscription" not in caplog.text


async def test_a_flood_of_unreadable_publications_is_logged_a_few_times(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Five hundred unreadable publications cost a few log lines, not one traceback each.

    Half are not JSON, half name a nonce that is a list (which failed later, as it was used).
    """
    prefix = "garbage-flood:"
    async with followed_task(redis_url, prefix) as (_, task, raw):
        async with raw.pipeline(transaction=False) as pipe:
            for number in range(250):
                pipe.publish(prefix + "updates", f"forger\n[{number}")
                entry = [[number], status_update(task.task_id, "Processing"), False]
                pipe.publish(prefix + "updates", "forger\n" + json.dumps([entry]))
            await pipe.execute()
        update = status_update(task.task_id, "Processing")
        await raw.publish(prefix + "updates", publication([(None, update, False)]))
        async with asyncio.timeout(5):
            while task.status is not TaskStatus.PROCESSING:
                await asyncio.sleep(0.01)
    about = [r for r in caplog.records if "update" in r.getMessage() and r.levelno >= 30]
    assert 1 <= len(about) <= 5


HOSTILE_ROWS = {
    "an unknown state": "UPDATE submissions SET state = 'paid-twice'",
    "a payload that is no JSON": "UPDATE submissions SET payload = '{'",
    "a time that is text": "UPDATE submissions SET created_at = 'yesterday'",
    "a status of the future": "UPDATE events SET status = 'Teleported'",
    "a width that is text": "UPDATE events SET width = 'wide'",
    "a source of the future": "UPDATE events SET source = 'telepathy'",
    "a task id that is a number": "UPDATE submissions SET task_id = 42",
}


@pytest.mark.parametrize("edit", HOSTILE_ROWS.values(), ids=HOSTILE_ROWS.keys())
async def test_resume_from_a_journal_a_hostile_hand_edited_is_a_store_error(
    edit: str, tmp_path: Path
) -> None:
    """resume() on rows written by hand raises StoreError (never the reader's own error).

    Nothing is submitted again, whatever the rows say.
    """
    path = tmp_path / "journal.db"
    async with Emulator(durations=Durations(queueing=30.0)) as emu:
        async with fast_client(emu, store=SQLiteStore(path)) as client:
            await client.submit(face_request())
        with sqlite3.connect(path) as db:
            db.execute(edit)
        async with fast_client(emu, store=SQLiteStore(path)) as client:
            with contextlib.suppress(StoreError):  # or a clean resume
                await client.resume()
        assert emu.counters.requests_to("submit") == 1


async def test_a_task_used_from_another_event_loop_is_refused_and_harms_nothing() -> None:
    """wait() and get_task() from a thread's own event loop raise RuntimeError at once.

    The handle's wait started the client's poller on the other loop: it timed out there,
    and left the task's waiters and the client's close() bound to a loop that had ended.
    """
    async with Emulator(durations=Durations(queueing=0.2, processing=0.2)) as emu:
        async with fast_client(emu) as client:
            task = await client.submit(face_request())
            errors: list[BaseException] = []

            def elsewhere() -> None:
                calls: list[Callable[[], Coroutine[Any, Any, object]]] = [
                    lambda: task.wait(2),
                    lambda: client.get_task(task.task_id),
                ]
                for call in calls:
                    try:
                        asyncio.run(call())
                    except BaseException as error:  # noqa: BLE001 - kept for the assertion
                        errors.append(error)

            await asyncio.to_thread(elsewhere)
            assert [type(e) for e in errors] == [RuntimeError, RuntimeError], errors
            assert all("event loop" in str(e) for e in errors)
            snapshot = await task.wait(10)
            assert snapshot.status is TaskStatus.SUCCESS


def _future_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database, " * 1000)


def _truncated(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(size // 2)


def _huge_payload(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE submissions SET payload = ?", (json.dumps({"x": "y" * 5_000_000}),))


FILE_DAMAGE = {
    "a future schema version": _future_schema,
    "garbage in its place": _garbage,
    "cut in half": _truncated,
    "a 5 MB payload": _huge_payload,
}


@pytest.mark.parametrize("damage", FILE_DAMAGE.values(), ids=FILE_DAMAGE.keys())
async def test_resume_from_a_damaged_journal_file_is_a_store_error(
    damage: Callable[[Path], None], tmp_path: Path
) -> None:
    """resume() on a journal file replaced, cut or outgrown raises StoreError or resumes."""
    path = tmp_path / "journal.db"
    async with Emulator(durations=Durations(queueing=30.0)) as emu:
        async with fast_client(emu, store=SQLiteStore(path)) as client:
            first = await client.submit(face_request())
        damage(path)
        try:
            async with fast_client(emu, store=SQLiteStore(path)) as client:  # opens the journal
                resumed = await client.resume()
        except StoreError:
            pass
        else:
            assert [task.task_id for task in resumed.tasks] == [first.task_id]
        assert emu.counters.requests_to("submit") == 1


async def test_updates_of_a_task_whose_client_closed_raise_as_wait_does() -> None:
    """updates() begun after the client closed raises the close's RuntimeError, as wait() does.

    Begun before the close, the iterator raised it; begun after, it ended quietly after a
    snapshot that is not final, as if the task had ended.
    """
    async with Emulator(durations=Durations(queueing=30.0)) as emu:
        async with fast_client(emu) as client:
            task = await client.submit(face_request())
        with pytest.raises(RuntimeError, match="closed"):
            await task.wait()

        async def read_all() -> list[TaskSnapshot]:
            return [snapshot async for snapshot in task.updates()]

        with pytest.raises(RuntimeError, match="closed"):
            await read_all()  # not a quiet end: the task did not end


async def test_a_submission_answered_after_close_gives_a_task_whose_wait_ends() -> None:
    """A create call answered after close() (the session is the caller's: it stays open).

    The task exists: submit() hands it back, and its wait raises the close's RuntimeError
    (saying how to wait again) instead of waiting forever on a client that follows nothing.
    """
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def create(request: web.Request) -> web.Response:
        arrived.set()
        await answer.wait()
        return web.json_response({"task_id": "4242", "base_resp": {"status_code": 0}})

    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    async with api_server(app) as base_url, aiohttp.ClientSession() as session:
        client = Client("key", base_url=base_url, session=session, retry=TEST_RETRY)
        async with client:
            submitting = asyncio.create_task(client.submit(face_request()))
            await asyncio.wait_for(arrived.wait(), 5)
            await client.close()
            answer.set()
            try:
                task = await asyncio.wait_for(submitting, 5)
            except RuntimeError:
                return  # refused as closed: also an end
            with pytest.raises(RuntimeError, match="closed"):
                await asyncio.wait_for(task.wait(), 5)


async def test_a_malformed_journal_entry_does_not_stall_the_replay_after_a_lost_subscription(
    redis_url: str,
) -> None:
    """Entries in the journal stream that cannot be read are skipped when it is replayed.

    After the subscription is lost, the store replays the stream from just before the loss.
    An entry without its ``confirmed`` field, or with bytes that are not UTF-8, raised out
    of the replay: taken for one more lost connection, it was replayed again, forever, and
    no update from another replica was ever handed on again.
    """
    prefix = "bad-entries:"
    async with followed_task(redis_url, prefix) as (_, task, raw):
        events = prefix + "events"
        text = json.dumps(status_update(task.task_id, "Queueing"))
        await raw.xadd(events, {"task_id": task.task_id, "snapshot": text, "source": "x"})
        await raw.xadd(events, {"task_id": b"\xff", "snapshot": b"\xfe\xff", "source": b"\x80"})
        assert await raw.client_kill_filter(_type="pubsub") >= 1  # the subscription drops
        update = status_update(task.task_id, "Processing")
        async with asyncio.timeout(10):
            while task.status is not TaskStatus.PROCESSING:
                # Published again until the store is listening again (a publication made
                # while it is away is lost: real replicas' updates are replayed instead).
                await raw.publish(prefix + "updates", publication([(None, update, False)]))
                await asyncio.sleep(0.05)


async def test_generate_many_over_an_endless_input_ends_when_its_client_closes() -> None:
    """A service feeding generate_many() from an endless stream closes its client: it ends.

    Each request read after the close became an error outcome at once, and the generator
    went on reading the stream as fast as it could, forever, each request lost.
    """
    read = 0

    async def endless() -> AsyncIterator[VideoRequest]:
        nonlocal read
        while True:
            read += 1
            yield face_request(f"request {read}")

    async with Emulator(durations=Durations(queueing=0.05, processing=0.05)) as emu:
        client = fast_client(emu)
        outcomes = 0

        async def consume(batch: AsyncIterator[object]) -> None:
            nonlocal outcomes
            async for _ in batch:
                outcomes += 1
                assert outcomes < 100, "still reading the input after close"
                await client.close()

        async with client:
            with pytest.raises(RuntimeError, match="closed"):
                await consume(client.generate_many(endless(), concurrency=2))
        assert read <= 3  # the two in flight at the close, and at most one read before it


async def test_a_closed_client_is_not_kept_alive_by_the_redis_store_it_shared(
    redis_url: str,
) -> None:
    """A RedisStore outlives the clients that used it, and keeps none of them after close.

    Each client subscribed for good: a service that makes a client now and then over one
    store kept every closed client (its tracker, its tasks) and called each on every update.
    """
    prefix = "outlived:"
    store = RedisStore(redis_url, prefix=prefix)
    async with Emulator() as emu:
        gone = []
        for _ in range(3):
            client = fast_client(emu, store=store)
            async with client:
                await client.resume()  # subscribes
            gone.append(weakref.ref(client))
            del client
        gc.collect()
        assert [ref() for ref in gone] == [None, None, None]
        async with fast_client(emu, store=store) as client:  # the store still serves
            task = await client.submit(face_request())
            assert (await task.wait(10)).status is TaskStatus.SUCCESS
    await store.close()


async def test_two_uncertain_submissions_checked_at_once_do_not_both_adopt_one_task(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims of one task on two uncertain submissions' URLs: at most one adopts it.

    Both answers are lost; callbacks on both URLs name task 777. Both checks query the API
    at once and both see it; each then asked the journal whether another submission held
    the task, and neither had recorded it yet: both adopted it (rule 3: no other nonce may
    hold it), and the second submission's own task could never be adopted.
    """
    urls: list[str] = []
    queried = asyncio.Event()
    queries = 0

    async def create(request: web.Request) -> web.StreamResponse:
        urls.append((await request.json())["callback_url"])
        assert request.transport is not None
        request.transport.close()  # the answer is lost
        return web.Response()

    async def query(request: web.Request) -> web.Response:
        nonlocal queries
        queries += 1
        if queries == 2:  # both checks are in
            queried.set()
        await asyncio.wait_for(queried.wait(), 5)  # answered together
        return web.json_response(
            {"task_id": "777", "status": "Processing", "base_resp": {"status_code": 0}}
        )

    app = web.Application()
    app.router.add_post("/v1/video_generation", create)
    app.router.add_get("/v1/query/video_generation", query)
    async with journaled_client(app, tmp_path / "journal.db") as (client, http, _, _):
        lost = []
        for prompt in ("first", "second"):
            with pytest.raises(SubmissionUncertainError) as error:
                await client.submit(face_request(prompt))
            lost.append(error.value)
        for url in urls:
            async with http.post(url, json=status_update("777", "processing")) as answer:
                assert answer.status == 200
        async with asyncio.timeout(5):
            while client.stats().adopted < 2 and "not adopted" not in caplog.text:
                await asyncio.sleep(0.01)  # until both checks have ended
        adopted = [client.recover(error) for error in lost]
    assert sum(task is not None for task in adopted) == 1, adopted


async def test_a_huge_publication_does_not_hold_the_event_loop_until_it_is_read(
    redis_url: str,
) -> None:
    """100 000 updates in one publication are read and handed on a few at a time.

    The event loop also answers MiniMax's challenge (within 3 s, or the create call fails):
    one publication read and handed on all at once held it for its whole length (seconds,
    for the tens of megabytes Redis lets a client publish).
    """
    store = RedisStore(redis_url, prefix="huge:")
    total = 100_000
    handed = 0
    seen_meanwhile: set[int] = set()

    async def on_update(nonce: str | None, update: TaskSnapshot, confirmed: bool) -> None:
        nonlocal handed
        handed += 1

    async def watch() -> None:
        while True:
            seen_meanwhile.add(handed)
            await asyncio.sleep(0)

    await store.subscribe(on_update)
    raw = aioredis.Redis.from_url(redis_url)
    entry = (None, status_update("1", "Processing"), False)
    watcher = asyncio.create_task(watch())
    await raw.publish("huge:updates", publication([entry] * total))
    async with asyncio.timeout(60):
        while handed < total:
            await asyncio.sleep(0.01)
    watcher.cancel()
    await raw.aclose()
    await store.close()
    assert {count for count in seen_meanwhile if 0 < count < total}, "the loop never ran between"

"""RedisStore: task state shared by several replicas, updates fanned out with pub/sub.

Install the extra: ``pip install minimax-s2v[redis]``. Every replica behind one load
balancer uses the same Redis, key prefix and receiver secret. A callback may land on any
replica: it is journaled in Redis and published; the replica that awaits the task applies
it (and confirms a final status with the API) from its subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from yarl import URL

from .._bounded import PacedWarning
from .._models import EventSource, TaskSnapshot
from .._redaction import REDACTED, describe
from .._wire import compact_json, parse_snapshot, snapshot_payload
from ._base import RemoteUpdate, StoredSubmission, StoredTask, SubmissionState
from ._batch import Batcher

__all__ = ["RedisStore", "RemoteUpdate"]

logger = logging.getLogger("minimax_s2v")

# An update waiting to be written: snapshot, source, confirmed, nonce, and its waiter.
_Pending = tuple[TaskSnapshot, EventSource, bool, "str | None", "asyncio.Future[None]"]

# After a lost subscription, the journal is replayed from a little before the loss was
# noticed: a publication may have been lost on the dying connection before the error came.
_REPLAY_MARGIN = 10.0
# Updates read or handed on between two turns of the event loop: one publication may hold
# many thousands (anyone can publish tens of megabytes), and the loop that reads them must
# still answer MiniMax's challenge within 3 s.
_AT_ONCE = 100


class RedisStore:
    """Keeps submissions, task states and the update journal in Redis.

    Args:
        url: the Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        prefix: the key prefix shared by the replicas of one service.
        max_events: the journal stream is trimmed to about this many updates.
        max_connections: connections to Redis at most (more callers wait their turn).
    """

    #: Updates recorded here reach every replica: the receiver hands callbacks for tasks
    #: this process does not follow to the store, not to an early-event buffer.
    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "minimax_s2v:",
        max_events: int = 100_000,
        max_connections: int = 32,
    ) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as error:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "RedisStore needs the redis extra: pip install minimax-s2v[redis]"
            ) from error
        # A blocking pool: at the limit a caller waits for a connection instead of failing.
        # decode_responses: every value read back is a str; redis-py's types cannot say so.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=30, decode_responses=True
        )
        self._redis: Any = aioredis.Redis(connection_pool=pool)
        # The subscription's connection of its own: anyone who can publish on the channel can
        # send bytes that are not UTF-8, read replaced (an unreadable update, skipped) rather
        # than as an error that drops the subscription.
        self._listening: Any = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool.from_url(
                url, max_connections=2, decode_responses=True, encoding_errors="replace"
            )
        )
        self._shown_url = _shown_url(url)
        self._prefix = prefix
        self._max_events = max_events
        self._channel = prefix + "updates"
        self._listener: asyncio.Task[None] | None = None
        self._subscribers: list[Callable[[], RemoteUpdate | None]] = []  # see subscribe()
        self._unreadable = 0  # updates published or replayed that could not be read
        self._delivered = 0  # updates handed to the subscribers
        self._unreadable_warning = PacedWarning()
        # Each publication starts with its origin, so a replica skips its own unparsed.
        self._origin = f"{time.time_ns()}-{id(self)}\n"
        # Updates gathered on the event loop while the previous batch is written.
        self._batches = Batcher(self._write)

    def __repr__(self) -> str:
        return f"RedisStore({self._shown_url!r}, prefix={self._prefix!r})"

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def open(self) -> None:
        """Check the connection."""
        await self._redis.ping()

    async def close(self) -> None:
        """Write what is pending, stop listening and close the connections."""
        await self._batches.drain()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self._redis.aclose(close_connection_pool=True)
        await self._listening.aclose(close_connection_pool=True)

    # -- pub/sub ----------------------------------------------------------------------------

    async def subscribe(self, on_update: RemoteUpdate) -> None:
        """Call ``on_update`` for every update another replica records; returns once listening.

        The subscription outlives Redis restarts: when the connection drops, the store
        reconnects with backoff, subscribes again, then replays from the journal stream what
        the other replicas recorded while it was away (the outage and the recovery are logged
        once each). A subscriber sees an update at least once; the client ignores repeats.

        A bound method is held weakly: a store outlives the clients that used it, and must
        not keep each of them (its tracker, its tasks) alive once it is gone.
        """
        held: Callable[[], RemoteUpdate | None]
        if inspect.ismethod(on_update):
            held = weakref.WeakMethod(on_update)
        else:
            held = functools.partial(_itself, on_update)
        self._subscribers = [*self._live_subscribers(), held]
        if self._listener is not None:
            return
        pubsub = await self._subscribed()
        self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub))

    async def _subscribed(self) -> Any:
        pubsub = self._listening.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            # Wait for the server's confirmation: from here on no publication is missed.
            while (await pubsub.get_message(timeout=5.0)) is None:
                pass
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub

    async def _listen(self, pubsub: Any) -> None:
        lost_at: float | None = None
        while True:
            try:
                if lost_at is not None:
                    replayed = await self._replay_since(lost_at - _REPLAY_MARGIN)
                    logger.warning(
                        "subscribed to Redis again after %.1f s; %d updates replayed from "
                        "the journal",
                        time.time() - lost_at,
                        replayed,
                    )
                    lost_at = None
                await self._receive(pubsub)
                reason = "it ended"
            except Exception as error:  # noqa: BLE001 - the connection dropped: reconnect
                reason = describe(error)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            if lost_at is None:  # logged once per outage, however many tries it takes
                lost_at = time.time()
                logger.warning("lost the subscription to Redis (%s); reconnecting", reason)
            pubsub = await self._resubscribe()

    async def _resubscribe(self) -> Any:
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._subscribed()
            except Exception:  # noqa: BLE001 - still down: try again, a little later
                delay = min(delay * 2, 2.0)

    async def _replay_since(self, since: float) -> int:
        """Hand subscribers what other replicas journaled from ``since`` (Unix seconds) on.

        Read on the subscription's connections (bytes that are not UTF-8 replaced): an entry
        that cannot be read is skipped, never raised, or the replay would start over forever.
        """
        rows = await self._listening.xrange(self._key("events"), min=f"{int(since * 1000)}-0")
        count = 0
        for _, fields in rows:
            if fields.get("origin") == self._origin:
                continue
            try:
                snapshot = parse_snapshot(json.loads(fields["snapshot"]))
                confirmed = fields["confirmed"] == "1"
            except Exception as error:  # noqa: BLE001 - anyone with Redis can add an entry
                self._skip("a journaled update", error)
                continue
            count += 1
            await self._deliver(fields.get("nonce") or None, snapshot, confirmed)
        return count

    async def _receive(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message" or message["data"].startswith(self._origin):
                continue
            try:
                updates = await _published(message["data"])
            except Exception as error:  # noqa: BLE001 - anyone can publish: skipped, counted
                self._skip(f"an update published on {self._channel}", error)
                continue
            for nonce, snapshot, confirmed in updates:
                await self._deliver(nonce, snapshot, confirmed)

    def _skip(self, what: str, error: Exception) -> None:
        """Count an update that cannot be read; warn about it now and then."""
        self._unreadable += 1
        logger.log(
            self._unreadable_warning.level(),
            "could not read %s (%s); skipped (%d so far)",
            what,
            describe(error),
            self._unreadable,
        )

    def _live_subscribers(self) -> list[Callable[[], RemoteUpdate | None]]:
        return [held for held in self._subscribers if held() is not None]

    async def _deliver(self, nonce: str | None, snapshot: TaskSnapshot, confirmed: bool) -> None:
        self._delivered += 1
        if self._delivered % _AT_ONCE == 0:
            await asyncio.sleep(0)  # a subscriber may not suspend: let the loop go (_AT_ONCE)
        for held in self._subscribers:
            subscriber = held()
            if subscriber is None:
                continue  # its client is gone (forgotten at the next subscribe)
            try:
                await subscriber(nonce, snapshot, confirmed)
            except Exception:
                logger.exception("could not apply an update from another replica")

    # -- the store protocol -----------------------------------------------------------------

    async def save_submission(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent."""
        fields = {
            "fingerprint": submission.fingerprint,
            "payload": compact_json(submission.payload),
            "label": submission.label or "",
            "state": submission.state.value,
            "task_id": submission.task_id or "",
            "created_at": str(submission.created_at.timestamp()),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key("sub", submission.nonce), mapping=fields)
            pipe.zadd(self._key("subs"), {submission.nonce: submission.created_at.timestamp()})
            await pipe.execute()

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        """Record the task a submission created (any replica can then bind its callbacks)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._key("sub", nonce),
                mapping={"state": SubmissionState.SUBMITTED.value, "task_id": task_id},
            )
            pipe.set(self._key("nonce_of", task_id), nonce)
            await pipe.execute()

    async def mark_uncertain(self, nonce: str) -> None:
        """Record that a submission's outcome is unknown."""
        key = self._key("sub", nonce)
        if not await self._redis.hget(key, "task_id"):
            await self._redis.hset(key, "state", SubmissionState.UNCERTAIN.value)

    async def drop_submission(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key("sub", nonce))
            pipe.zrem(self._key("subs"), nonce)
            await pipe.execute()

    async def save_event(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        confirmed: bool,
        nonce: str | None = None,
    ) -> None:
        """Journal an update, make confirmed ones the task's state, and publish it.

        Updates arriving while a batch is being written go together in the next one: one
        transaction and one publication for all of them.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batches.add((snapshot, source, confirmed, nonce, future))
        await future

    async def _write(self, batch: list[_Pending]) -> None:
        error: Exception | None = None
        cancelled = False
        try:
            await self._write_batch(batch)
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as failure:  # noqa: BLE001 - handed to every waiter of the batch
            error = failure
        finally:
            for *_, future in batch:
                if future.done():
                    continue
                if cancelled:
                    future.cancel()
                elif error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        published = []
        async with self._redis.pipeline(transaction=True) as pipe:
            for snapshot, source, confirmed, nonce, _ in batch:
                payload = snapshot_payload(snapshot)
                text = compact_json(payload)
                pipe.xadd(
                    self._key("events"),
                    {
                        "task_id": snapshot.task_id,
                        "snapshot": text,
                        "source": source.value,
                        "confirmed": int(confirmed),
                        "nonce": nonce or "",
                        "origin": self._origin,  # a replay skips this replica's own
                    },
                    maxlen=self._max_events,
                    approximate=True,
                )
                if confirmed:
                    pipe.hset(
                        self._key("task", snapshot.task_id),
                        mapping={"snapshot": text, "terminal": int(snapshot.is_terminal)},
                    )
                published.append((nonce, payload, confirmed))
            pipe.publish(self._channel, self._origin + compact_json(published))
            await pipe.execute()

    async def submission(self, nonce: str) -> StoredSubmission | None:
        """The submission journaled under ``nonce``, as any replica recorded it."""
        fields = await self._redis.hgetall(self._key("sub", nonce))
        return _submission(nonce, fields) if fields else None

    async def submissions(self) -> list[StoredSubmission]:
        """Every journaled submission, oldest first."""
        nonces = await self._redis.zrange(self._key("subs"), 0, -1)
        found = [await self.submission(nonce) for nonce in nonces]
        return [s for s in found if s is not None]

    async def _snapshot(self, task_id: str) -> TaskSnapshot | None:
        text = await self._redis.hget(self._key("task", task_id), "snapshot")
        return parse_snapshot(json.loads(text)) if text else None

    async def unfinished(self) -> list[StoredTask]:
        """Submitted tasks whose last confirmed status is not final."""
        tasks = []
        for submission in await self.submissions():
            if submission.task_id is None:
                continue
            snapshot = await self._snapshot(submission.task_id)
            if snapshot is None or not snapshot.is_terminal:
                tasks.append(StoredTask(submission.task_id, snapshot, submission))
        return tasks

    async def uncertain(self) -> list[StoredSubmission]:
        """Submissions without a known task, oldest first."""
        return [s for s in await self.submissions() if s.task_id is None]

    async def task(self, task_id: str) -> StoredTask | None:
        """One task, if known."""
        snapshot = await self._snapshot(task_id)
        nonce = await self._redis.get(self._key("nonce_of", task_id))
        submission = await self.submission(nonce) if nonce else None
        if snapshot is None and submission is None:
            return None
        return StoredTask(task_id, snapshot, submission)

    async def events(
        self, task_id: str | None = None
    ) -> list[tuple[TaskSnapshot, EventSource, bool]]:
        """Journaled updates, oldest first."""
        rows = await self._redis.xrange(self._key("events"))
        return [
            (
                parse_snapshot(json.loads(fields["snapshot"])),
                EventSource(fields["source"]),
                fields["confirmed"] == "1",
            )
            for _, fields in rows
            if task_id in (None, fields["task_id"])
        ]


def _itself(on_update: RemoteUpdate) -> RemoteUpdate:
    return on_update


async def _published(data: str) -> list[tuple[str | None, TaskSnapshot, bool]]:
    """The updates of one publication (after its origin line): (nonce, snapshot, confirmed).

    Read :data:`_AT_ONCE` at a time, the event loop let go in between (see there).

    Raises:
        TypeError: it is not a list of such triples (anyone can publish on the channel).
        ValueError: it is not JSON.
        ResponseValidationError: a snapshot is not shaped like a status update.
    """
    _, _, body = data.partition("\n")
    entries = json.loads(body)
    if not isinstance(entries, list):
        raise TypeError("expected a JSON list of updates")
    updates = []
    for index, entry in enumerate(entries, 1):
        if index % _AT_ONCE == 0:
            await asyncio.sleep(0)
        if not isinstance(entry, list) or len(entry) != 3:
            raise TypeError("expected [nonce, snapshot, confirmed] for each update")
        nonce, snapshot, confirmed = entry
        if not isinstance(nonce, str | None) or not isinstance(confirmed, bool):
            raise TypeError("expected a text or null nonce and a true or false confirmed")
        updates.append((nonce, parse_snapshot(snapshot), confirmed))
    return updates


def _submission(nonce: str, fields: dict[str, str]) -> StoredSubmission:
    return StoredSubmission(
        nonce=nonce,
        fingerprint=fields["fingerprint"],
        payload=json.loads(fields["payload"]),
        label=fields.get("label") or None,
        state=SubmissionState(fields["state"]),
        created_at=datetime.fromtimestamp(float(fields["created_at"]), tz=UTC),
        task_id=fields.get("task_id") or None,
    )


_SECRET_QUERY_WORDS = ("pass", "secret", "token", "auth", "key")


def _shown_url(url: str) -> str:
    """``url`` without its password, in the authority or the query (``?password=``)."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<unreadable URL>"
    if parsed.password is not None:
        parsed = parsed.with_password(REDACTED)
    elif parsed.user:  # redis://SECRET@host reads as a user name; often it is a password
        parsed = parsed.with_user(REDACTED)
    if parsed.query:
        query = [
            (name, REDACTED if any(w in name.lower() for w in _SECRET_QUERY_WORDS) else value)
            for name, value in parsed.query.items()
        ]
        parsed = parsed.with_query(query)
    return parsed.human_repr()

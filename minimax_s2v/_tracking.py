"""Following tasks: the one place where callbacks, polls and the journal become task state.

The client submits; the :class:`TaskTracker` follows what it submitted (and what it re-attaches
to) until each task ends: it keeps the registry of followed tasks, journals every update in the
store before it is acknowledged, confirms final statuses with the API, polls tasks no callback
reports, reconciles the journal on :meth:`TaskTracker.resume`, and is the
:class:`~minimax_s2v.receiver.CallbackSink` the receiver hands verified callbacks to.

Trust rules. MiniMax does not sign callbacks: anyone who learns a callback URL can POST to it.
So a callback is a hint, and only MiniMax's authenticated API is believed.

1. **A callback URL is valid only for the task bound to its nonce.** The receiver refuses a
   token that does not verify (any malformed, non-hex, non-ASCII or %-encoded one included)
   with 404. A verified nonce this tracker does not hold, and that the journal does not know
   either (unknown, evicted, expired, or a ``self_check()`` nonce), gets 404 and changes
   nothing. A held nonce whose body names another task than the one bound to it gets 409.
   (A ``challenge`` changes nothing and is echoed for any verified token, so that a replica
   that did not issue the URL still passes MiniMax's check during the create call.)
2. **A final status is believed only when the API says so.** A ``success`` resolves a task only
   after an authenticated query of *that task id* answers ``Success`` (with that file id; the
   API's file id wins when they differ, and the difference is logged); then the file is
   retrieved. A ``failed`` resolves it only after a query answers ``Fail``. At most one
   confirmation runs per task at a time; a confirmation is counted apart from fallback polls.
   A file that exists in the account proves nothing: it may belong to another task. Once the
   API has refuted a final callback, the next ones for that task only hint at a poll (due
   within ``PollPolicy.first_interval``): forged callbacks cannot buy a query each. A V2
   (MiniMax-H3) task is confirmed by a V2 query of that task, whatever shape its push had
   (V1-like or ``{"task": …}``), and its video is the query's ``content.url``, never a URL a
   callback named. A final status another replica published is confirmed the same way,
   even one the publication calls confirmed.
3. **An uncertain submission adopts a task only after the API shows it.** When the answer to a
   submission was lost, the first callbacks on its URL *claim* a task id. A claim is adopted
   only after a query of the submission's own API (V2 for a V2 submission) shows that the
   task exists, has not ended (a task that has already ended is as likely another of the
   account's), and no other nonce holds it. When two task
   ids claim one nonce, neither is adopted silently: the conflict is logged and
   :meth:`TaskTracker.recover` raises :class:`~minimax_s2v.SubmissionConflictError`. Claims
   the API disproved do not count against the real task; at most 32 are checked per nonce.
4. **Acknowledged means recorded.** An update that changes something is acknowledged (200)
   only after the store has journaled it; one that changes nothing (a duplicate, an older
   status, anything after the end) is acknowledged without a write, so that a URL's holder
   cannot grow the journal. After :meth:`TaskTracker.close`, or when the store cannot record
   an update, the receiver answers 503 (MiniMax or a proxy may try again) and nothing
   changes; never 200 for an update that was not recorded, never a 4xx for our failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

import attrs

from ._bounded import BoundedMap, PacedWarning
from ._errors import MiniMaxError, StoreError, SubmissionConflictError
from ._models import AnyRequest, EventSource, TaskSnapshot, TaskStatus, VideoFile
from ._polling import PollPolicy
from ._ratelimit import TokenBucket
from ._redaction import describe
from ._retry import RetryPolicy, retry_call
from ._stats import RESULT_BUCKETS, HistogramRecorder
from ._tasks import Task, TaskHistory, TaskRecord
from ._telemetry import NO_TELEMETRY, Telemetry
from .receiver import CallbackVerdict
from .stores import SharedTaskStore, StoredSubmission, StoredTask, TaskStore

__all__ = [
    "Resumed",
    "TaskRegistry",
    "TaskTracker",
    "TrackerAPI",
    "TrackerCounts",
]

logger = logging.getLogger("minimax_s2v")

#: What a call on a closed client raises (a RuntimeError: the caller's bug, not the API's).
CLOSED_CLIENT = "this Client is closed: create a new one"
#: What a call from another event loop than the client's raises (a RuntimeError too).
OTHER_LOOP = (
    "this Client runs on another event loop: use it and its tasks from the loop it was "
    "opened on (a Client per event loop)"
)
T = TypeVar("T")
P = ParamSpec("P")

#: How the tracker's own journal writes are retried: a store that fails for a few seconds
#: (a full disk, a journal file briefly read-only, a restarting Redis) costs a delay, not a task.
JOURNAL_RETRY = RetryPolicy(
    on=(Exception,), attempts=12, timeout=8.0, wait_initial=0.05, wait_max=1.0, wait_jitter=0.05
)


class TrackerAPI(Protocol):
    """The authenticated calls the tracker needs (the client provides them)."""

    async def query_once(self, task_id: str) -> TaskSnapshot:
        """One query of a task, not retried (polls are simply made again later)."""
        ...

    async def query(self, task_id: str, *, nonce: str | None = None) -> TaskSnapshot:
        """A query of a task, retried on transient errors.

        ``nonce``: the submission whose callbacks named the task (its API is the one asked).
        """
        ...

    async def retrieve(self, file_id: str) -> VideoFile:
        """The file's details, with a fresh download URL."""
        ...

    async def cancel(self, task_id: str) -> TaskSnapshot | None:
        """Cancel a queued V2 task: its cancelled snapshot, ``None`` if it had ended."""
        ...


@attrs.frozen
class Resumed:
    """What :meth:`Client.resume` found: tasks to await, and submissions of unknown outcome."""

    tasks: list[Task]
    uncertain: list[StoredSubmission]


@attrs.define
class TrackerCounts:
    """What the tracker has done so far (plain counters, cheap to keep)."""

    confirmations: int = 0  # queries made to confirm a callback's final status
    fallback_polls: int = 0  # queries made because no callback reported a task in time
    reconciliations: int = 0  # queries made by resume() and to verify an adoption
    retrievals: int = 0  # file retrievals made after a confirmed success
    adopted: int = 0  # uncertain submissions whose task was adopted
    conflicts: int = 0  # callbacks that named another task than their nonce's
    created: int = 0  # submissions answered with a task id
    rejected: int = 0  # submissions that certainly created nothing
    uncertain: int = 0  # submissions of unknown outcome
    succeeded: int = 0  # tasks that ended in Success
    failed: int = 0  # tasks that ended in Fail, or could not be followed (expired, key refused)
    # Submission to final status, for the tasks whose submission time is known.
    time_to_result: HistogramRecorder = attrs.field(
        factory=lambda: HistogramRecorder(RESULT_BUCKETS)
    )

    def ended(self, record: TaskRecord, succeeded: bool) -> None:
        """Count a task that ended (not one whose waits a close ended)."""
        if succeeded:
            self.succeeded += 1
        else:
            self.failed += 1
        if record.submitted_at is not None:
            elapsed = (datetime.now(UTC) - record.submitted_at).total_seconds()
            self.time_to_result.record(max(0.0, elapsed))


def _advances(snapshot: TaskSnapshot, current: TaskStatus | None) -> bool:
    """Whether ``snapshot`` says more than a task's ``current`` status (``None``: none known).

    Later progress or a final status does; an older status or the same progress again does not.
    """
    if current is None:
        return True
    status = snapshot.status
    if status is TaskStatus.UNKNOWN or status.rank < current.rank:
        return False
    return status is not current or snapshot.is_terminal


class TaskRegistry:
    """Applies status updates under the task state machine.

    Preparing < Queueing < Processing < Success | Fail: a terminal status is final, a
    duplicate is a no-op and a regression (an update older than what is known) is ignored.
    """

    def __init__(self, finished_ttl: float = 600.0, counts: TrackerCounts | None = None) -> None:
        self._counts = counts
        self._records: dict[str, TaskRecord] = {}
        # Finished tasks are forgotten after finished_ttl seconds (handles keep their
        # record), so a long-running service does not grow without bound.
        self._finished: dict[str, float] = {}
        self._finished_ttl = finished_ttl
        self._file_owners: dict[str, str] = {}  # file id -> task id, to spot a reused file id

    def __len__(self) -> int:
        return len(self._records)

    def following(self) -> int:
        """How many tracked tasks have not ended."""
        return len(self._records) - len(self._finished)

    def get(self, task_id: str) -> TaskRecord | None:
        """The record of ``task_id``, if tracked."""
        return self._records.get(task_id)

    def track(
        self,
        task_id: str,
        request: AnyRequest | None = None,
        submitted_at: datetime | None = None,
    ) -> TaskRecord:
        """The record of ``task_id``, created if new."""
        self._evict()
        record = self._records.get(task_id)
        if record is None:
            record = self._records[task_id] = TaskRecord(task_id, request, submitted_at)
        else:
            record.request = record.request or request
            record.submitted_at = record.submitted_at or submitted_at
        return record

    def forget(self, task_id: str) -> None:
        """Stop tracking ``task_id`` (its handles keep what they already know)."""
        self._forget_files(self._records.pop(task_id, None))
        self._finished.pop(task_id, None)

    def _forget_files(self, record: TaskRecord | None) -> None:
        snapshot = record.snapshot if record is not None else None
        if snapshot is not None and snapshot.file_id is not None:
            self._file_owners.pop(snapshot.file_id, None)

    def is_news(self, snapshot: TaskSnapshot, record: TaskRecord | None = None) -> bool:
        """Whether applying ``snapshot`` would change what is known (not a duplicate, not stale).

        ``record`` is the task's record when the caller has already looked it up.
        """
        if record is None:
            record = self._records.get(snapshot.task_id)
            if record is None:
                return True
        if record.finished:
            return False
        pending = record.pending
        if pending is not None and snapshot.status.rank <= pending.rank:
            return False
        return _advances(snapshot, record.status)

    def apply(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        checked: bool = False,
        record: TaskRecord | None = None,
    ) -> bool:
        """Apply an update; return whether it changed what is known.

        ``checked`` says the caller has just seen :meth:`is_news` return true; ``record`` is
        the task's record when the caller has already looked it up.
        """
        if not checked and not self.is_news(snapshot, record):
            return False
        if record is None:
            record = self.track(snapshot.task_id)
        state = record.keep(snapshot)
        if snapshot.file_id is not None:
            self._file_owners.setdefault(snapshot.file_id, snapshot.task_id)
        TaskHistory.add(record, snapshot, source, state)
        record.notify(snapshot)
        if snapshot.status.is_terminal:
            if self._counts is not None:
                self._counts.ended(record, snapshot.status is TaskStatus.SUCCESS)
            self._finish(record)
        return True

    def file_owner(self, file_id: str | None) -> str | None:
        """The task already known to have produced ``file_id``, if any."""
        return self._file_owners.get(file_id) if file_id is not None else None

    def _evict(self) -> None:
        if not self._finished:
            return
        cutoff = time.monotonic() - self._finished_ttl
        while self._finished:
            task_id = next(iter(self._finished))  # insertion order is finishing order
            if self._finished[task_id] > cutoff:
                break
            del self._finished[task_id]
            self._forget_files(self._records.pop(task_id, None))

    def close_all(self, error: Callable[[str], BaseException]) -> None:
        """End every pending wait with ``error(task_id)``."""
        for record in list(self._records.values()):
            if not record.finished:
                record.error = error(record.task_id)
                self._finish(record)

    def fail(self, task_id: str, error: MiniMaxError) -> None:
        """End every wait on ``task_id`` with ``error`` (e.g. the task expired or the key broke)."""
        record = self.track(task_id)
        if record.finished:
            return
        record.error = error
        if self._counts is not None:
            self._counts.ended(record, succeeded=False)
        self._finish(record)

    def _finish(self, record: TaskRecord) -> None:
        self._finished[record.task_id] = time.monotonic()
        record.finish()
        record.notify(None)


class Poller:
    """Polls followed tasks until they end: one loop for all, the total rate capped.

    A poll that fails with a retryable error, or whose answer cannot be recorded, is simply
    made again later; one that fails for good (unknown or expired task, refused key) ends the
    waits on that task with the error.
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[TaskSnapshot]],
        registry: TaskRegistry,
        policy: PollPolicy,
        apply: Callable[[TaskSnapshot], Awaitable[None]],
    ) -> None:
        self._fetch = fetch
        self._apply = apply
        self._registry = registry
        self.policy = policy
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # task id -> when its one live heap entry is due
        self._polls: dict[str, int] = {}
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._bucket = TokenBucket(policy.max_rate * 60.0, burst=1.0)
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._loop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closed = False

    def follow(self, record: TaskRecord, delay: float | None = None) -> None:
        """Poll ``record``'s task after ``delay`` seconds (default: the first interval)."""
        if record.finished or self._closed:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + (self.policy.interval(0) if delay is None else delay)
        current = self._due.get(record.task_id)
        if current is not None and current <= when:
            return
        self._due[record.task_id] = when
        entry = (when, next(self._order), record.task_id)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            # The new earliest: the loop sleeps until then instead. A later one is reached
            # anyway, so following a burst of tasks wakes the loop once, not once each.
            self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            # A context of its own: the poller serves every task, not whichever caller
            # happened to start it (its context variables, its tracing span).
            self._loop_task = loop.create_task(
                self._run(), name="minimax-s2v-poller", context=contextvars.Context()
            )

    def unfollow(self, task_id: str) -> None:
        """Stop polling ``task_id`` (its heap entry is skipped when reached)."""
        self._due.pop(task_id, None)
        self._polls.pop(task_id, None)

    async def close(self) -> None:
        """Stop polling; in-flight polls are cancelled."""
        self._closed = True
        tasks = [t for t in (self._loop_task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._heap:
            when, _, task_id = self._heap[0]
            if self._due.get(task_id) != when:
                heapq.heappop(self._heap)  # stale: rescheduled or unfollowed
                continue
            delay = when - loop.time()
            if delay > 0:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as the event is set, and close() never returned.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue  # an earlier entry may have arrived
            heapq.heappop(self._heap)
            del self._due[task_id]
            await self._bucket.acquire()
            await self._slots.acquire()
            job = loop.create_task(self._poll(task_id))
            self._in_flight.add(job)
            job.add_done_callback(self._in_flight.discard)

    async def _poll(self, task_id: str) -> None:
        try:
            record = self._registry.get(task_id)
            if record is None or record.finished:
                return
            polls = self._polls[task_id] = self._polls.get(task_id, 0) + 1
            try:
                snapshot = await self._fetch(task_id)
                await self._apply(snapshot)
            except MiniMaxError as error:
                if not error.retryable:
                    logger.warning("giving up polling task %s: %s", task_id, error)
                    self._registry.fail(task_id, error)
                    self.unfollow(task_id)
                    return
                logger.debug("poll of task %s failed, polling again later: %s", task_id, error)
            except Exception as error:  # noqa: BLE001 - a store failure must not stop polling
                logger.warning("poll of task %s not recorded (%r); polling again", task_id, error)
            if record.finished:
                self.unfollow(task_id)
            else:
                self.follow(record, self.policy.interval(polls))
        finally:
            self._slots.release()


class _Stage(enum.Enum):
    SENDING = "sending"  # this process's submission, its answer not in yet
    BOUND = "bound"  # the task it created is known
    UNCERTAIN = "uncertain"  # its answer was lost: callbacks claim a task (rule 3)
    JOURNALED = "journaled"  # known from the store only (another replica's, or a restart's)


_MAX_CLAIMS = 4  # task ids one uncertain nonce may claim at once (not disproved) before 409s
_MAX_CHECKS = 32  # task ids the API is asked about for one uncertain nonce, at most


class _Nonce:
    """What the tracker knows of one callback nonce."""

    __slots__ = ("claims", "conflict", "early", "stage", "task_id")

    def __init__(self, stage: _Stage, task_id: str | None = None) -> None:
        self.stage = stage
        self.task_id = task_id
        self.early: tuple[TaskSnapshot, ...] = ()  # kept until the task id is known
        # Uncertain nonces only: task id -> True (the API shows it), False (disproved), or
        # None (being checked).
        # Each task id claimed: None while its check runs, False once disproved, else what
        # the API showed of it (kept for the adoption, which may come from another's check).
        self.claims: dict[str, TaskSnapshot | Literal[False] | None] = {}
        self.conflict = False


def _closed_error(task_id: str) -> RuntimeError:
    """What a wait on ``task_id`` raises once the client has closed."""
    return RuntimeError(
        f"the client was closed while waiting for task {task_id}; "
        f"wait again with a new client: client.task({task_id!r}).wait()"
    )


def _journaled(submission: StoredSubmission) -> _Nonce:
    if submission.task_id is not None:
        return _Nonce(_Stage.BOUND, submission.task_id)
    return _Nonce(_Stage.JOURNALED)


class _Callbacks(Protocol):
    """The receiver as the tracker uses it: callback URLs routed to their sink."""

    fallback_after: float
    early_limit: int
    max_bindings: int
    binding_ttl: float

    def expect(self, nonce: str, sink: Any) -> Any:
        """Route ``nonce``'s callbacks to ``sink``; returns its callback URL."""
        ...

    def discard(self, nonce: str) -> None:
        """Stop routing ``nonce``."""
        ...

    def attach(self, sink: Any) -> None:
        """Hand callbacks for nonces not routed here to ``sink``."""
        ...


class TaskTracker:
    """Follows tasks until they end: callbacks, confirmations, polls, the journal, resume.

    Store failures: the tracker's own writes (submissions, confirmed snapshots) are retried
    under ``journal_retry`` and then raise :class:`~minimax_s2v.StoreError`; a poll or a
    confirmation whose answer could not be recorded is simply made again later, so a waiter
    never hangs on a store that failed once. A callback that cannot be journaled is answered
    503 at once (rule 4), not retried while the sender waits.

    Args:
        api: the authenticated calls (the client's).
        store: where submissions and updates are journaled.
        polling: how tasks are polled when no callback reports them.
        receiver: the callback receiver, if callbacks are used.
        journal_retry: how the tracker's own journal writes are retried.
        telemetry: spans around callbacks and confirmations (none by default).
    """

    def __init__(
        self,
        api: TrackerAPI,
        store: TaskStore,
        polling: PollPolicy,
        receiver: _Callbacks | None = None,
        *,
        journal_retry: RetryPolicy = JOURNAL_RETRY,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._api = api
        self._store = store
        self._journal_retry = journal_retry
        self._receiver = receiver
        self._telemetry = telemetry
        self.counts = TrackerCounts()
        self.sink = telemetry.sink(self)  # what the receiver is handed: this tracker, traced
        self.registry = TaskRegistry(counts=self.counts)
        self._poller = Poller(self._poll_once, self.registry, polling, self._apply_polled)
        self._nonces: BoundedMap[str, _Nonce] = BoundedMap(
            receiver.max_bindings if receiver is not None else 1,
            receiver.binding_ttl if receiver is not None else 1.0,
        )
        self._early_limit = receiver.early_limit if receiver is not None else 16
        self._jobs: set[asyncio.Task[None]] = set()
        self._closed = False
        self._started = False
        #: The event loop the client was opened on: its poller and the waiters live there.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._shared = isinstance(store, SharedTaskStore) and store.shared
        self._conflict_warning = PacedWarning()
        self._doubt = polling.first_interval  # seconds a refuted final callback is not re-asked
        if receiver is not None:
            receiver.attach(self.sink)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and, if it is shared, listen to the other replicas' updates."""
        if self._started:
            return
        try:
            await self._store.open()
            if isinstance(self._store, SharedTaskStore):
                await self._store.subscribe(self._on_remote_update)
        except Exception as error:
            raise StoreError("be opened", describe(error)) from error
        self._started = True

    async def close(self) -> None:
        """Stop following: polls and confirmations are cancelled, pending waits end."""
        if self._closed:
            return
        self._closed = True
        await self._poller.close()
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        self.registry.close_all(_closed_error)

    def _track(
        self, task_id: str, request: AnyRequest | None = None, submitted_at: datetime | None = None
    ) -> TaskRecord:
        """The registry's record of ``task_id``; its waits end at once if the client closed.

        A create call may be answered after close() (the caller's session stays open): its
        task exists, and nobody follows it any more.
        """
        record = self.registry.track(task_id, request, submitted_at)
        if self._closed and not record.finished:
            self.registry.close_all(_closed_error)
        return record

    def _spawn(self, coroutine: Coroutine[Any, Any, None], what: str) -> None:
        async def logged() -> None:
            try:
                await coroutine
            except Exception:
                logger.exception("%s failed", what)

        job = asyncio.get_running_loop().create_task(logged())
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        job.add_done_callback(lambda _: coroutine.close())  # cancelled before it started

    async def _write(
        self,
        operation: str,
        task_id: str | None,
        call: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``call(*args, **kwargs)``, a store call of the tracker's own, retried.

        A lasting failure is a :class:`StoreError` (naming ``task_id``, the task created, when
        there is one). The call is a :func:`functools.partial`, not a lambda: there are two or
        three writes per task, and a lambda's variables would be cells of this frame.
        """
        try:
            return await retry_call(
                self._journal_retry,
                functools.partial(call, *args, **kwargs),
                what=f"journal: {operation}",
            )
        except Exception as error:
            raise StoreError(operation, describe(error), task_id=task_id) from error

    async def _write_quietly(
        self, operation: str, call: Callable[P, Awaitable[None]], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """A journal write whose failure only costs the journal's accuracy: logged."""
        try:
            await self._write(operation, None, call, *args, **kwargs)
        except StoreError as error:
            logger.warning("%s", error)

    # -- submissions ------------------------------------------------------------------------

    def expect(self, nonce: str) -> str | None:
        """Hold ``nonce`` before its submission is sent; returns its callback URL, if any.

        Held before the POST: MiniMax checks the URL during the create call, and an update
        may beat the submit answer.
        """
        self._hold(nonce, _Nonce(_Stage.SENDING))
        if self._receiver is None:
            return None
        return str(self._receiver.expect(nonce, self.sink))

    async def journal(self, submission: StoredSubmission) -> None:
        """Journal a submission before it is sent.

        Raises:
            RuntimeError: the client was closed while the submission waited (for a V2 slot,
                a turn or the rate limiter): it is neither journaled nor sent.
        """
        if self._closed:
            raise RuntimeError(CLOSED_CLIENT)
        await self.start()
        await self._write("record the submission", None, self._store.save_submission, submission)

    async def abandon(self, nonce: str) -> None:
        """Forget a submission that certainly created nothing."""
        self.counts.rejected += 1
        self._nonces.pop(nonce)
        if self._receiver is not None:
            self._receiver.discard(nonce)
        await self._write_quietly("drop the submission", self._store.drop_submission, nonce)

    async def lost(self, nonce: str) -> None:
        """A submission's answer was lost: keep its nonce, so that a callback can claim it.

        Callbacks that came while the answer was awaited are claims too: the task may have
        said all it will say before the call broke off (each is checked like a later one).
        """
        self.counts.uncertain += 1
        before = self._nonces.get(nonce)
        entry = self._hold(nonce, _Nonce(_Stage.UNCERTAIN))
        await self._write_quietly(
            "mark the submission uncertain", self._store.mark_uncertain, nonce
        )
        for snapshot in before.early if before is not None else ():
            await self._claim(nonce, entry, snapshot, journal=False)  # journaled when they came

    async def submitted(
        self, nonce: str, task_id: str, request: AnyRequest, label: str | None
    ) -> Task:
        """Follow the task a submission created; apply what its callbacks said first."""
        self.counts.created += 1
        record = self._track(task_id, request, datetime.now(UTC))
        record.label = label
        record.nonce = nonce
        entry = self._nonces.get(nonce)
        early = entry.early if entry is not None else ()
        self._hold(nonce, _Nonce(_Stage.BOUND, task_id))
        # From here on the task is followed, whatever the journal says.
        await self._write(
            "record the task it created",
            task_id,
            self._store.mark_submitted,
            nonce,
            task_id,
        )
        for snapshot in early:
            if snapshot.task_id == task_id:
                await self._take(record, snapshot, nonce, journal=False)
            else:
                self._conflict(nonce, snapshot.task_id, task_id)
        return Task(self, record)

    def _hold(self, nonce: str, entry: _Nonce) -> _Nonce:
        if self._receiver is None:
            return entry  # no callbacks come to this process: nothing to hold
        return self._nonces.put(nonce, entry)

    def recover(self, nonce: str) -> Task | None:
        """The task an uncertain submission created, once the API has shown it (rule 3).

        Raises:
            SubmissionConflictError: two tasks claim the submission; neither was adopted.
        """
        entry = self._nonces.get(nonce)
        if entry is None:
            return None
        if entry.conflict:
            claimed = sorted(t for t, shown in entry.claims.items() if shown)
            raise SubmissionConflictError(nonce, claimed)
        if entry.stage is _Stage.BOUND and entry.task_id is not None:
            return self.handle(entry.task_id)
        return None

    # -- handles and queries ----------------------------------------------------------------

    def handle(self, task_id: str) -> Task:
        """A handle on a task, followed from now on."""
        return Task(self, self._track(task_id))

    def watch(self, record: TaskRecord) -> None:
        """Make sure someone reports on ``record``: callbacks, with polling as the fallback."""
        if self._closed or record.finished:
            return
        self.check_loop()
        if record.submitted_at is None:
            self._poller.follow(record, 0.0)  # re-attached by id: ask at once
        elif self._receiver is not None:
            # Callbacks report this task; poll only if none is final after the grace period.
            age = (datetime.now(UTC) - record.submitted_at).total_seconds()
            self._poller.follow(record, max(0.0, self._receiver.fallback_after - age))
        else:
            self._poller.follow(record)

    def check_loop(self) -> None:
        """Refuse a call made on another event loop than the client's.

        Raises:
            RuntimeError: the running loop is not the one the client was opened on.
        """
        if self.loop is not None and asyncio.get_running_loop() is not self.loop:
            raise RuntimeError(OTHER_LOOP)

    async def refresh(self, task_id: str) -> TaskSnapshot:
        """Query a task now (retried on transient errors) and apply the answer."""
        snapshot = await self._api.query(task_id)
        await self._apply(snapshot, EventSource.POLL)
        return snapshot

    async def cancel(self, task_id: str) -> TaskSnapshot | None:
        """Cancel ``task_id`` (V2, queued); the API's answer is applied like a query's."""
        snapshot = await self._api.cancel(task_id)
        if snapshot is not None:
            await self._apply(snapshot, EventSource.POLL)
        return snapshot

    async def _poll_once(self, task_id: str) -> TaskSnapshot:
        self.counts.fallback_polls += 1
        return await self._api.query_once(task_id)

    async def _apply(self, snapshot: TaskSnapshot, source: EventSource) -> None:
        """Journal an authenticated snapshot, then apply it (if it is news)."""
        record = self.registry.get(snapshot.task_id)
        if record is None or not self.registry.is_news(snapshot, record):
            return
        await self._write(
            f"record task {snapshot.task_id}'s status",
            None,
            self._store.save_event,
            snapshot,
            source,
            confirmed=True,
        )
        # Checked again: another update may have been applied while this one was journaled.
        self.registry.apply(snapshot, source, record=record)

    async def _apply_polled(self, snapshot: TaskSnapshot) -> None:
        await self._apply(snapshot, EventSource.POLL)

    # -- callbacks (the receiver's sink) ----------------------------------------------------

    async def deliver(self, nonce: str, snapshot: TaskSnapshot) -> CallbackVerdict:
        """Take a status callback whose URL verified; return once it is journaled (rule 4).

        Raises:
            Exception: whatever the store raised; nothing was acknowledged (the receiver
                answers 503).
        """
        if self._closed:
            return CallbackVerdict.UNAVAILABLE
        entry = self._nonces.get(nonce)
        if entry is None:
            # Not issued by this process since it started (or forgotten): the journal is
            # the credential's other half. A nonce it does not know is not ours (rule 1).
            stored = await self._store.submission(nonce)
            if self._closed:
                return CallbackVerdict.UNAVAILABLE
            entry = self._nonces.get(nonce)
            if entry is None:
                if stored is None:
                    return CallbackVerdict.UNKNOWN
                entry = _journaled(stored)
                if entry.task_id is not None:
                    self._hold(nonce, entry)  # a task id, once journaled, never changes
        elif (record := self._bound_record(entry, snapshot)) is not None:
            # The usual callback, taken without _on_callback's other cases (one coroutine
            # fewer: this runs for every callback).
            news = await self._take(record, snapshot, nonce, journal=True)
            return CallbackVerdict.RECORDED if news else CallbackVerdict.DUPLICATE
        return await self._on_callback(nonce, entry, snapshot, journal=True)

    def _bound_record(self, entry: _Nonce, snapshot: TaskSnapshot) -> TaskRecord | None:
        """The followed task of a bound nonce, when ``snapshot`` is about that task."""
        if entry.stage is _Stage.UNCERTAIN or snapshot.task_id != entry.task_id:
            return None
        return self.registry.get(snapshot.task_id)

    async def _on_callback(
        self, nonce: str, entry: _Nonce, snapshot: TaskSnapshot, *, journal: bool
    ) -> CallbackVerdict:
        stage = entry.stage
        if stage is _Stage.UNCERTAIN or (entry.claims and snapshot.task_id != entry.task_id):
            # An uncertain submission's URL, or one whose task was adopted from claims: a
            # new task id is one more claim, never silently refused (rule 3).
            return await self._claim(nonce, entry, snapshot, journal=journal)
        record = self._bound_record(entry, snapshot)
        if record is not None:
            news = await self._take(record, snapshot, nonce, journal=journal)
            return CallbackVerdict.RECORDED if news else CallbackVerdict.DUPLICATE
        if entry.task_id is not None and snapshot.task_id != entry.task_id:
            self._conflict(nonce, snapshot.task_id, entry.task_id)
            return CallbackVerdict.CONFLICT
        # Its task is not followed here (yet). Another replica may follow it: a shared store
        # hands it over. This process's own submission may not have its answer yet: kept
        # (and journaled) until the answer binds it, up to early_limit. Anything else
        # changes nothing here (a restart's resume() asks the API anyway): not journaled,
        # so that a URL's holder cannot grow the journal.
        early = stage is _Stage.SENDING and len(entry.early) < self._early_limit
        if journal and (early or self._shared):
            if not early:
                news = await self._news_to_journal(entry.task_id, snapshot)
                if self._closed:
                    return CallbackVerdict.UNAVAILABLE  # closed meanwhile: nothing written
                if not news:
                    # Nothing the journal does not know (its task ended, or no progress):
                    # acknowledged without a write (rule 4), as for a followed task.
                    return CallbackVerdict.DUPLICATE
            await self._store.save_event(
                snapshot, EventSource.CALLBACK, confirmed=False, nonce=nonce
            )
        if early:
            entry.early = (*entry.early, snapshot)
        return CallbackVerdict.RECORDED

    async def _news_to_journal(self, task_id: str | None, snapshot: TaskSnapshot) -> bool:
        """Whether the shared journal would learn from an update of a task not followed here.

        Another replica may follow it; the update is news unless the journal has confirmed
        the task's end, or a status at least as late.
        """
        if task_id is None:
            return True  # not bound yet: the replica that sent the submission may bind it
        stored = await self._store.task(task_id)
        known = stored.snapshot if stored is not None else None
        if known is None:
            return True
        return not known.is_terminal and _advances(snapshot, known.status)

    async def _take(
        self, record: TaskRecord, snapshot: TaskSnapshot, nonce: str | None, *, journal: bool
    ) -> bool:
        """A callback for a followed task: progress applied, a final status confirmed.

        Returns whether it was news (else a duplicate: known, stale, being confirmed, or a
        final status the API refuted a moment ago).
        """
        news = self.registry.is_news(snapshot, record)
        terminal = snapshot.status.is_terminal
        if news and not terminal:
            # Applied only once journaled (a store failure changes nothing); meanwhile it is
            # pending, so that an older update racing it through the journal is not news.
            if journal:
                record.pending = snapshot.status
                try:
                    await self._store.save_event(
                        snapshot, EventSource.CALLBACK, confirmed=True, nonce=nonce
                    )
                finally:
                    if record.pending is snapshot.status:
                        record.pending = None
            self.registry.apply(snapshot, EventSource.CALLBACK, record=record)
            return True
        if not news or record.confirming:
            return False  # a duplicate, an older status, or a final one being confirmed
        if asyncio.get_running_loop().time() < record.doubted_until:
            # The API refuted a final callback of this task a moment ago: a poll is due soon;
            # forged callbacks must not buy one query each (rule 2).
            return False
        if journal:
            await self._store.save_event(
                snapshot, EventSource.CALLBACK, confirmed=False, nonce=nonce
            )
        record.confirming = True  # one confirmation per task at a time (rule 2)
        self._spawn(
            self._telemetry.traced(
                "minimax.confirm",
                record.task_id,
                functools.partial(self._confirm, record, snapshot),  # no cells on every update
            ),
            f"confirming task {record.task_id}",
        )
        return True

    async def _confirm(self, record: TaskRecord, claimed: TaskSnapshot) -> None:
        """Believe a callback's final status only once the API says it (rule 2)."""
        try:
            self.counts.confirmations += 1
            try:
                snapshot = await self._api.query(record.task_id)
            except MiniMaxError as error:
                if not error.retryable:
                    logger.warning("task %s cannot be followed: %s", record.task_id, error)
                    self.registry.fail(record.task_id, error)
                    return
                logger.warning("could not confirm task %s (%s); polling it", record.task_id, error)
                self._poller.follow(record, 0.0)
                return
            if snapshot.status is not claimed.status or (
                claimed.file_id is not None and snapshot.file_id != claimed.file_id
            ):
                logger.warning(
                    "a callback said task %s is %s (file %s); the API says %s (file %s): "
                    "the API is believed",
                    record.task_id,
                    claimed.status.value,
                    claimed.file_id,
                    snapshot.status.value,
                    snapshot.file_id,
                )
            if snapshot.status is TaskStatus.SUCCESS and snapshot.file_id is not None:
                try:
                    self.counts.retrievals += 1
                    record.video = await self._api.retrieve(snapshot.file_id)
                except MiniMaxError as error:  # the download retrieves it again
                    logger.warning("could not retrieve file %s: %s", snapshot.file_id, error)
            source = EventSource.CALLBACK if snapshot.status is claimed.status else EventSource.POLL
            try:
                await self._apply(snapshot, source)
            except StoreError as error:
                logger.warning("%s; asking the API again later", error)
            if not record.finished:
                # The API has not reached the status the callback claimed (or it was
                # forged): poll soon rather than wait for the fallback, and take the next
                # final callbacks as hints for that poll only.
                record.doubted_until = asyncio.get_running_loop().time() + self._doubt
                self._poller.follow(record, self._doubt)
        finally:
            record.confirming = False

    def _conflict(self, nonce: str, named: str, owner: str) -> None:
        self.counts.conflicts += 1
        logger.log(
            self._conflict_warning.level(),  # forged callbacks must not flood the log
            "a callback for nonce %s named task %s, but the nonce belongs to task %s: rejected "
            "(%d such callbacks so far; client.stats().conflicts)",
            nonce,
            named,
            owner,
            self.counts.conflicts,
        )

    # -- uncertain submissions (rule 3) -----------------------------------------------------

    async def _claim(
        self, nonce: str, entry: _Nonce, snapshot: TaskSnapshot, *, journal: bool
    ) -> CallbackVerdict:
        task_id = snapshot.task_id
        if task_id not in entry.claims:
            live = [t for t, shown in entry.claims.items() if shown is not False]
            if len(live) >= _MAX_CLAIMS or len(entry.claims) >= _MAX_CHECKS:
                # Claims the API disproved do not count against the real task (which may
                # still come), but each costs a query: a URL's holder cannot buy many.
                self._conflict(nonce, task_id, "/".join(live) or "nothing yet")
                return CallbackVerdict.CONFLICT
            entry.claims[task_id] = None
            self._spawn(self._check_claim(nonce, entry, task_id), f"checking task {task_id}")
        # Journaled only while kept (up to early_limit, as before the answer): a URL's holder
        # repeating a claim must not grow the journal (rule 4).
        keep = len(entry.early) < self._early_limit
        if journal and (keep or self._shared):
            await self._store.save_event(
                snapshot, EventSource.CALLBACK, confirmed=False, nonce=nonce
            )
        if keep:
            entry.early = (*entry.early, snapshot)
        return CallbackVerdict.RECORDED

    async def _check_claim(self, nonce: str, entry: _Nonce, task_id: str) -> None:
        """Adopt ``task_id`` only if the API shows it and no other nonce holds it."""
        shown: TaskSnapshot | None = None
        try:
            self.counts.reconciliations += 1
            shown = await self._api.query(task_id, nonce=nonce)
            record = self.registry.get(task_id)
            held_by = record.nonce if record is not None else None
            if held_by is None:
                stored = await self._store.task(task_id)
                held_by = stored.submission.nonce if stored and stored.submission else None
            if held_by not in (None, nonce):
                logger.warning(
                    "a callback for uncertain submission %s named task %s, which submission "
                    "%s created: not adopted",
                    nonce,
                    task_id,
                    held_by,
                )
                shown = None
            elif shown.is_terminal:
                # A task that has already ended is as likely another task of the account as
                # ours (a generation takes minutes): never adopted on a callback's word.
                logger.warning(
                    "a callback for uncertain submission %s named task %s, which had already "
                    "ended when checked: not adopted; if it is the submission's, follow it "
                    "with client.task(%r)",
                    nonce,
                    task_id,
                    task_id,
                )
                shown = None
        except MiniMaxError as error:
            logger.warning(
                "a callback for uncertain submission %s named task %s, which the API does "
                "not show (%s): not adopted",
                nonce,
                task_id,
                error,
            )
        except Exception as error:  # noqa: BLE001 - the journal could not be read: not adopted
            logger.warning(
                "could not check task %s claimed by uncertain submission %s (%s): not adopted",
                task_id,
                nonce,
                describe(error),
            )
            shown = None
        entry.claims[task_id] = shown if shown is not None else False
        await self._decide(nonce, entry)

    async def _decide(self, nonce: str, entry: _Nonce) -> None:
        """Adopt the one claim the API showed, once every claim of ``entry`` is checked.

        Called as each check ends: the last to end decides, whichever claim it checked (the
        real task's check may end before a forged claim's is disproved).
        """
        claims = entry.claims
        real = [task_id for task_id, ok in claims.items() if ok]
        if len(real) > 1:
            if not entry.conflict:
                entry.conflict = True
                self.counts.conflicts += 1
                logger.error(
                    "tasks %s all claim uncertain submission %s: it is not known which one it "
                    "created (recover() raises SubmissionConflictError); check them in the "
                    "MiniMax console",
                    ", ".join(sorted(real)),
                    nonce,
                )
            return
        if entry.stage is not _Stage.UNCERTAIN or entry.conflict:
            return
        if len(real) != 1 or None in claims.values():
            return
        task_id = real[0]
        shown = claims[task_id]
        if not isinstance(shown, TaskSnapshot):
            return
        holder = self.registry.get(task_id)
        if holder is not None and holder.nonce not in (None, nonce):
            # Adopted by another uncertain submission while this one's claims were checked
            # (its check read the journal before that adoption was recorded): rule 3.
            logger.warning(
                "a callback for uncertain submission %s named task %s, which submission %s "
                "adopted meanwhile: not adopted",
                nonce,
                task_id,
                holder.nonce,
            )
            claims[task_id] = False
            return
        logger.info("adopted task %s for uncertain submission %s", task_id, nonce)
        self.counts.adopted += 1
        entry.stage, entry.task_id = _Stage.BOUND, task_id
        record = self.registry.track(task_id)
        record.nonce = nonce
        await self._write_quietly(
            "record the adopted task", self._store.mark_submitted, nonce, task_id
        )
        await self._apply(shown, EventSource.POLL)
        early, entry.early = entry.early, ()
        for snapshot in early:
            if snapshot.task_id == task_id:
                await self._take(record, snapshot, nonce, journal=False)

    # -- other replicas ---------------------------------------------------------------------

    async def _on_remote_update(
        self, nonce: str | None, snapshot: TaskSnapshot, confirmed: bool
    ) -> None:
        """An update another replica recorded in the shared store."""
        if self._closed:
            return
        entry = self._nonces.get(nonce) if nonce is not None else None
        if entry is not None and entry.stage is not _Stage.JOURNALED:
            await self._on_callback(nonce or "", entry, snapshot, journal=False)
            return
        record = self.registry.get(snapshot.task_id)
        if record is None:
            return
        if confirmed and not snapshot.is_terminal:
            self.registry.apply(snapshot, EventSource.STORE)
        else:
            # A final status is confirmed here even when the publication calls it confirmed:
            # whoever can publish on the channel can say so (rule 2).
            await self._take(record, snapshot, nonce, journal=False)

    # -- restarts ---------------------------------------------------------------------------

    async def journaled(self) -> tuple[list[StoredTask], list[StoredSubmission]]:
        """The store's unfinished tasks and uncertain submissions, read for :meth:`resume`.

        Raises:
            StoreError: the journal cannot be read (its file is locked or damaged, or holds
                rows this version cannot read).
        """
        await self.start()
        unfinished = await self._write("read the unfinished tasks", None, self._store.unfinished)
        uncertain = await self._write("read the uncertain submissions", None, self._store.uncertain)
        return unfinished, uncertain

    async def resume(
        self, unfinished: list[StoredTask], uncertain: list[StoredSubmission]
    ) -> Resumed:
        """Re-attach to the tasks :meth:`journaled` read (see :meth:`Client.resume`)."""
        tasks: list[Task] = []
        for stored in unfinished:
            submission = stored.submission
            record = self.registry.track(
                stored.task_id, None, submission.created_at if submission else None
            )
            if submission is not None:
                record.label = submission.label
                record.nonce = submission.nonce
                self._route(submission.nonce, _Nonce(_Stage.BOUND, stored.task_id))
            if stored.snapshot is not None:
                self.registry.apply(stored.snapshot, EventSource.STORE)
            tasks.append(Task(self, record))
        for submission in uncertain:
            self._route(submission.nonce, _Nonce(_Stage.UNCERTAIN))
        slots = asyncio.Semaphore(8)

        async def reconcile(record: TaskRecord) -> None:
            async with slots:
                try:
                    self.counts.reconciliations += 1
                    await self.refresh(record.task_id)
                except MiniMaxError as error:
                    if not error.retryable:
                        self.registry.fail(record.task_id, error)
                        return
                    logger.info("could not reconcile task %s yet: %s", record.task_id, error)
            self.watch(record)

        await asyncio.gather(*(reconcile(self._record_of(task)) for task in tasks))
        logger.info(
            "resumed %d unfinished tasks, %d uncertain submissions", len(tasks), len(uncertain)
        )
        return Resumed(tasks, uncertain)

    def _route(self, nonce: str, entry: _Nonce) -> None:
        self._hold(nonce, entry)
        if self._receiver is not None:
            self._receiver.expect(nonce, self.sink)

    def _record_of(self, task: Task) -> TaskRecord:
        record = self.registry.get(task.task_id)
        assert record is not None  # noqa: S101 - resume() tracked it just now
        return record

"""The async Client: submit, follow, retrieve and download S2V-01 generations."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Coroutine, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import attrs
from yarl import URL

from ._download import ProgressCallback, download_video
from ._errors import (
    CallbackUnreachableError,
    ConfigurationError,
    ConnectError,
    MiniMaxError,
    RateLimitError,
    ResponseValidationError,
    SubmissionUncertainError,
)
from ._models import EventSource, TaskSnapshot, TaskStatus, VideoFile, VideoRequest
from ._polling import Poller, PollPolicy
from ._ratelimit import EndpointClass, RateLimit, RateLimiter
from ._retry import RetryPolicy, retry_call
from ._submission import check_submission, prepare_submission
from ._tasks import Task, TaskRecord, TaskRegistry
from ._transport import CN_BASE_URL, GLOBAL_BASE_URL, Timeouts, Transport, in_band_rejection
from ._wire import parse_file, parse_snapshot, parse_submit
from .stores import MemoryStore, StoredSubmission, SubmissionState, TaskStore

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = ["Client", "Generation", "GenerationOutcome", "Resumed"]

logger = logging.getLogger("minimax_s2v")

DownloadTarget = VideoFile | Task | TaskSnapshot | int | str
_REGIONS = {"global": GLOBAL_BASE_URL, "cn": CN_BASE_URL}
_DEFAULT_MAX_DOWNLOAD = 4 * 1024**3
_POOL_SIZE = 100  # connections the client's own session keeps at most
# Submissions prepared and in flight at once: as many as the pool can carry.
# Past validation, a submission costs the event loop about 0.3 ms before its first send;
# ten thousand gathered at once would hold the loop for seconds in one stretch, answers to
# MiniMax's challenges included. The others wait their turn without costing the loop.
_SUBMITS_AT_ONCE = _POOL_SIZE


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


@attrs.frozen
class Resumed:
    """What :meth:`Client.resume` found: tasks to await, and submissions of unknown outcome."""

    tasks: list[Task]
    uncertain: list[StoredSubmission]


@attrs.frozen
class Generation:
    """A finished generation: the final snapshot, the file, and where it was saved."""

    task_id: str
    snapshot: TaskSnapshot
    file: VideoFile
    path: Path | None = None


@attrs.frozen
class GenerationOutcome:
    """One result of :meth:`Client.generate_many`: a generation or the error that ended it.

    Attributes:
        index: the request's position in the input.
        request: the request.
        generation: the result when it succeeded.
        error: the typed error when it did not (never raised by ``generate_many``).
    """

    index: int
    request: VideoRequest
    generation: Generation | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the generation succeeded."""
        return self.generation is not None


def _certainly_not_created(error: BaseException) -> bool:
    """Whether a failed submission certainly created no task (refused, or answered "no")."""
    return isinstance(error, ConnectError | RateLimitError) or in_band_rejection(error)


def _resubmit_is_safe(error: BaseException) -> bool:
    """A submission may be repeated only when the failed one certainly created nothing."""
    return _certainly_not_created(error) and isinstance(error, MiniMaxError) and error.retryable


class Client:
    """An async client of MiniMax's S2V-01 API.

    Use it as an async context manager (or call :meth:`close`)::

        async with Client() as client:
            result = await client.generate(VideoRequest(subject="face.jpg", prompt="..."),
                                           dest="out.mp4")

    Args:
        api_key: the key; ``MINIMAX_API_KEY`` when not given.
        region: ``"global"`` (api.minimax.io) or ``"cn"`` (api.minimaxi.com).
        base_url: overrides the region; ``MINIMAX_BASE_URL`` when not given.
        session: an aiohttp session to use (not closed by the client); one is made otherwise.
        timeouts: connect/read/request timeouts.
        retry: how safe calls are retried; submissions only when nothing was created.
        rate_limit: client-side requests per minute per endpoint class.
        polling: how tasks are polled when no callback reports them.
        max_download_bytes: refuse to save a video larger than this.
        fsync_downloads: flush each video to disk before it takes its final name, so that a
            crash never leaves a truncated file under that name (costs disk time).
        receiver: a :class:`~minimax_s2v.receiver.CallbackReceiver`; every submission then
            carries its own callback URL, and polling is only the fallback.
        store: where submissions and updates are journaled (default: a
            :class:`~minimax_s2v.stores.MemoryStore`). The client opens it; it closes only
            one it made.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: Literal["global", "cn"] = "global",
        base_url: str | URL | None = None,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        polling: PollPolicy | None = None,
        max_download_bytes: int | None = _DEFAULT_MAX_DOWNLOAD,
        fsync_downloads: bool = True,
        receiver: CallbackReceiver | None = None,
        store: TaskStore | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("MINIMAX_API_KEY", "")
        if not key.strip():
            raise ConfigurationError("no API key: pass Client(api_key=...) or set MINIMAX_API_KEY")
        if region not in _REGIONS:
            raise ConfigurationError(f"region must be 'global' or 'cn', not {region!r}")
        chosen = base_url if base_url is not None else os.environ.get("MINIMAX_BASE_URL")
        url = URL(str(chosen)) if chosen else _REGIONS[region]
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError(f"base_url must be an absolute http(s) URL, not {str(url)!r}")
        self._api_key = key.strip()
        self.base_url = url
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.rate_limit = rate_limit or RateLimit()
        self.polling = polling or PollPolicy()
        self.max_download_bytes = max_download_bytes
        self.fsync_downloads = fsync_downloads
        self.receiver = receiver
        self._own_store = store is None
        self._store_ready = False
        self.store: TaskStore = store if store is not None else MemoryStore()
        self._jobs: set[asyncio.Task[None]] = set()
        self._given_session = session
        self._session: aiohttp.ClientSession | None = None
        self._transport: Transport | None = None
        self._state = _State.UNOPENED
        self.registry = TaskRegistry()
        self._poller: Poller | None = None
        self._submit_slots = asyncio.Semaphore(_SUBMITS_AT_ONCE)

    def __repr__(self) -> str:
        return f"Client(base_url={str(self.base_url)!r}, state={self._state.value})"

    # -- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._open()
        await self._open_store()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _open(self) -> Transport:
        if self._state is _State.CLOSED:
            raise RuntimeError("this Client is closed: create a new one")
        if self._transport is not None:
            return self._transport
        loop = asyncio.get_running_loop()
        session = self._given_session
        if session is not None:
            if session.closed:
                raise RuntimeError("the aiohttp session given to Client is closed")
            session_loop = getattr(session, "_loop", None)
            if session_loop is not None and session_loop is not loop:
                raise RuntimeError(
                    "the aiohttp session given to Client belongs to another event loop: "
                    "create the session inside the loop that uses the client"
                )
        else:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_POOL_SIZE, ttl_dns_cache=300)
            )
        self._session = session
        self._transport = Transport(
            self._api_key,
            self.base_url,
            session=session,
            timeouts=self.timeouts,
            limiter=RateLimiter(self.rate_limit),
            user_agent=_user_agent(),
        )
        self._poller = Poller(self._query_once, self.registry, self.polling, self._apply_polled)
        self._state = _State.OPENED
        if self.receiver is not None:
            self.receiver.attach(self)
        return self._transport

    async def close(self) -> None:
        """Stop polling, end pending waits, and close the session if the client made it."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._poller is not None:
            await self._poller.close()
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        self.registry.close_all(
            lambda task_id: RuntimeError(
                f"the client was closed while waiting for task {task_id}; "
                f"wait again with a new client: client.task({task_id!r}).wait()"
            )
        )
        if self._session is not None and self._given_session is None:
            await self._session.close()
        if self._own_store:
            await self.store.close()
        self._transport = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._state is _State.CLOSED

    # -- single calls -----------------------------------------------------------------------

    async def submit(self, request: VideoRequest, *, label: str | None = None) -> Task:
        """Validate ``request``, create the task, and return a handle on it.

        A local image is read and sent as a data URL. The submission is journaled in the
        store before it is sent. The call is retried only when the failed attempt certainly
        created no task (connection refused, rate limited, an in-band rejection); anything
        ambiguous raises :class:`SubmissionUncertainError`. Once validated, at most 100
        submissions are prepared and sent at a time; more calls at once wait their turn, so
        that a burst of them never holds the event loop.

        Args:
            request: the generation to create.
            label: your name for this submission (kept in the store, e.g. a batch line).

        Raises:
            InvalidRequestError: the request breaks a documented rule (nothing was sent).
            CallbackUnreachableError: MiniMax could not verify the callback URL while
                creating the task (nothing was created; not retried).
            SubmissionUncertainError: a task may or may not have been created.
            APIError: MiniMax refused the request.
        """
        transport = self._open()
        await check_submission(request)
        async with self._submit_slots:
            return await self._send_submission(transport, request, request, label)

    async def _send_submission(
        self, transport: Transport, request: VideoRequest, prepared: VideoRequest, label: str | None
    ) -> Task:
        """Journal a validated request, POST it, and follow the task it created."""
        nonce = secrets.token_urlsafe(12)
        receiver = self.receiver if prepared.callback_url is None else None
        submission = await prepare_submission(prepared, receiver, nonce)
        if receiver is not None:
            # Registered before the POST: a callback may beat the submit answer.
            receiver.expect(nonce, self)
        body, fingerprint = submission.body, submission.fingerprint
        await self._open_store()
        await self.store.save_submission(
            StoredSubmission(
                nonce=nonce,
                fingerprint=fingerprint,
                payload=submission.journal_payload,
                label=label,
                state=SubmissionState.SENDING,
                created_at=datetime.now(UTC),
            )
        )

        async def attempt() -> str:
            response = await transport.call(
                "POST", "/v1/video_generation", EndpointClass.SUBMIT, body=body
            )
            return parse_submit(response.data)

        try:
            task_id = await retry_call(
                self.retry,
                attempt,
                what="submission",
                should_retry=lambda e: _resubmit_is_safe(e) and self.retry.should_retry(e),
            )
        except MiniMaxError as error:
            if _certainly_not_created(error):
                if receiver is not None:
                    receiver.discard(nonce)
                await self.store.drop_submission(nonce)
                if isinstance(error, CallbackUnreachableError):
                    raise error.naming(submission.callback_shown) from None
                raise
            # The nonce is kept: a callback naming the task binds it (see recover()).
            await self.store.mark_uncertain(nonce)
            if receiver is not None:
                receiver.expect_uncertain(nonce, self)
            reason = str(error)
            if isinstance(error, ResponseValidationError):
                reason = f"the answer had no readable task id: {error}"
            raise SubmissionUncertainError(reason, nonce=nonce, fingerprint=fingerprint) from error
        submitted_at = datetime.now(UTC)
        logger.info("submitted task %s", task_id)
        await self.store.mark_submitted(nonce, task_id)
        record = self.registry.track(task_id, request, submitted_at)
        record.label = label
        if receiver is not None:
            await receiver.bind(nonce, task_id)
        return Task(self, record)

    def recover(self, error: SubmissionUncertainError) -> Task | None:
        """The task an uncertain submission created, if a callback has named it since.

        Returns ``None`` while nothing is known (no receiver, or no callback yet).
        """
        if self.receiver is None:
            return None
        task_id = self.receiver.task_id_for(error.nonce)
        return self.task(task_id) if task_id is not None else None

    async def resume(self) -> Resumed:
        """Re-attach to every unfinished task in the store, e.g. after a restart.

        Each task is reconciled with one query, then followed as usual (by callbacks, with
        polling as the fallback). Submissions whose outcome was never known are returned as
        ``uncertain``; with a receiver, a callback that names their task still binds it.
        """
        self._open()
        await self._open_store()
        tasks: list[Task] = []
        for stored in await self.store.unfinished():
            submission = stored.submission
            record = self.registry.track(
                stored.task_id, None, submission.created_at if submission else None
            )
            record.label = submission.label if submission else None
            if stored.snapshot is not None:
                self.registry.apply(stored.snapshot, EventSource.STORE)
            if self.receiver is not None and submission is not None:
                self.receiver.expect(submission.nonce, self)
                await self.receiver.bind(submission.nonce, stored.task_id)
            tasks.append(Task(self, record))
        uncertain = await self.store.uncertain()
        if self.receiver is not None:
            for submission in uncertain:
                self.receiver.expect_uncertain(submission.nonce, self)
        slots = asyncio.Semaphore(8)

        async def reconcile(task: Task) -> None:
            async with slots:
                try:
                    await self.get_task(task.task_id)
                except MiniMaxError as error:
                    if not error.retryable:
                        self.registry.fail(task.task_id, error)
                        return
                    logger.info("could not reconcile task %s yet: %s", task.task_id, error)
            self._watch(self._record_of(task))

        await asyncio.gather(*(reconcile(task) for task in tasks))
        logger.info(
            "resumed %d unfinished tasks, %d uncertain submissions", len(tasks), len(uncertain)
        )
        return Resumed(tasks, uncertain)

    @staticmethod
    def _record_of(task: Task) -> TaskRecord:
        return task._record  # noqa: SLF001 - the client owns its tasks' records

    # -- callbacks (the receiver calls these) -----------------------------------------------

    def knows_task(self, task_id: str) -> bool:
        """Whether this client follows ``task_id``."""
        return self.registry.get(task_id) is not None

    async def adopt(self, nonce: str, task_id: str) -> None:
        """Follow the task an uncertain submission turned out to have created."""
        logger.info("a callback named task %s for uncertain submission %s", task_id, nonce)
        await self.store.mark_submitted(nonce, task_id)
        self.registry.track(task_id)

    @property
    def shares_updates(self) -> bool:
        """Whether the store is shared with other replicas (e.g. a RedisStore)."""
        return bool(getattr(self.store, "shared", False))

    async def task_id_for_nonce(self, nonce: str) -> str | None:
        """The task a nonce's submission created, if the store knows it."""
        lookup = getattr(self.store, "task_id_for_nonce", None)
        return await lookup(nonce) if lookup is not None else None

    async def record_early(self, snapshot: TaskSnapshot, nonce: str) -> None:
        """Journal an update that arrived before its submission's answer."""
        await self.store.save_event(snapshot, EventSource.CALLBACK, confirmed=False, nonce=nonce)

    async def deliver_callback(
        self, snapshot: TaskSnapshot, *, nonce: str | None = None, recorded: bool = False
    ) -> None:
        """Take an authenticated callback update; return once the store has recorded it.

        Progress is applied at once. A final status is confirmed with the API first: a
        ``Success`` by retrieving its file, a ``Fail`` by a query, so that a forged callback
        cannot hand a caller someone else's video or a failure that did not happen. An
        update for a task another replica follows is recorded in the shared store, which
        hands it to that replica.
        """
        if self._state is not _State.OPENED:
            return
        record = self.registry.get(snapshot.task_id)
        news = record is not None and self.registry.is_news(snapshot, record)
        terminal = snapshot.status.is_terminal
        if news and not terminal:
            # Progress is applied before the journal's await, so that updates racing each
            # other through the journal cannot move a task backwards; either way the update
            # is acknowledged only once journaled.
            self.registry.apply(snapshot, EventSource.CALLBACK, checked=True, record=record)
        if not recorded:
            # Every authenticated update is journaled before it is acknowledged, duplicates
            # included; only news from this client's own tasks becomes known state (another
            # replica's task is confirmed by the replica that awaits it).
            await self.store.save_event(
                snapshot, EventSource.CALLBACK, confirmed=news and not terminal, nonce=nonce
            )
        if not news or not terminal or record is None:
            return
        if record.confirming or record.finished:
            return  # a duplicate while the first copy is being confirmed, or ended meanwhile
        record.confirming = True
        if snapshot.status is TaskStatus.SUCCESS:
            self._spawn(self._confirm_success(record, snapshot))
        else:
            self._spawn(self._confirm_by_query(record))

    async def _on_remote_update(
        self, nonce: str | None, snapshot: TaskSnapshot, confirmed: bool
    ) -> None:
        """An update another replica recorded in the shared store."""
        if self._state is not _State.OPENED:
            return
        if self.receiver is not None and nonce is not None and self.receiver.holds(nonce):
            await self.receiver.accept_remote(nonce, snapshot)
        elif self.registry.get(snapshot.task_id) is not None:
            if confirmed:
                self.registry.apply(snapshot, EventSource.STORE)
            else:
                await self.deliver_callback(snapshot, nonce=nonce, recorded=True)

    async def _open_store(self) -> None:
        if self._store_ready:
            return
        self._store_ready = True
        await self.store.open()
        subscribe = getattr(self.store, "subscribe", None)
        if subscribe is not None:
            await subscribe(self._on_remote_update)

    async def _apply(self, snapshot: TaskSnapshot, source: EventSource) -> None:
        """Record a confirmed snapshot in the store, then apply it."""
        if self.registry.get(snapshot.task_id) is None or not self.registry.is_news(snapshot):
            return
        await self.store.save_event(snapshot, source, confirmed=True)
        self.registry.apply(snapshot, source)

    async def _apply_polled(self, snapshot: TaskSnapshot) -> None:
        await self._apply(snapshot, EventSource.POLL)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        job = asyncio.get_running_loop().create_task(coroutine)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _confirm_success(self, record: TaskRecord, snapshot: TaskSnapshot) -> None:
        owner = self.registry.file_owner(snapshot.file_id)
        video: VideoFile | None = None
        if snapshot.file_id is None or owner not in (None, record.task_id):
            reason = f"file {snapshot.file_id} belongs to another task or is missing"
        else:
            try:
                video = await self.get_file(snapshot.file_id)
            except MiniMaxError as error:
                reason = str(error)
        if video is None:
            logger.warning(
                "success callback for task %s could not be confirmed (%s); asking the API",
                record.task_id,
                reason,
            )
            await self._confirm_by_query(record)
            return
        record.video = video
        record.confirming = False
        await self._apply(snapshot, EventSource.CALLBACK)

    async def _confirm_by_query(self, record: TaskRecord) -> None:
        try:
            await self.get_task(record.task_id)  # applies the API's answer
        except MiniMaxError as error:
            logger.warning("could not confirm task %s: %s; polling it", record.task_id, error)
            if self._poller is not None and not record.finished:
                self._poller.follow(record, 0.0)
        finally:
            record.confirming = False

    async def _query_once(self, task_id: str) -> TaskSnapshot:
        transport = self._open()
        response = await transport.call(
            "GET", "/v1/query/video_generation", EndpointClass.QUERY, params={"task_id": task_id}
        )
        return parse_snapshot(response.data)

    async def get_task(self, task_id: str) -> TaskSnapshot:
        """Query a task's status now (retried on transient errors).

        Raises:
            APIError: e.g. an unknown or expired task.
        """
        self._open()
        snapshot = await retry_call(
            self.retry, lambda: self._query_once(task_id), what=f"query of task {task_id}"
        )
        await self._apply(snapshot, EventSource.POLL)
        return snapshot

    async def get_file(self, file_id: int | str) -> VideoFile:
        """Retrieve a file's details, with a fresh ``download_url`` valid for one hour."""
        transport = self._open()

        async def attempt() -> VideoFile:
            response = await transport.call(
                "GET",
                "/v1/files/retrieve",
                EndpointClass.RETRIEVE,
                params={"file_id": str(file_id)},
            )
            return parse_file(response.data, datetime.now(UTC))

        return await retry_call(self.retry, attempt, what=f"retrieval of file {file_id}")

    def task(self, task_id: str) -> Task:
        """A handle on an existing task, e.g. after a :class:`TaskTimeoutError`."""
        self._open()
        return Task(self, self.registry.track(str(task_id)))

    def _watch(self, record: TaskRecord) -> None:
        """Make sure someone reports on ``record``: callbacks, with polling as the fallback."""
        poller = self._poller
        if poller is None or record.finished:
            return
        if record.submitted_at is None:
            poller.follow(record, 0.0)  # re-attached by id: ask at once
        elif self.receiver is not None:
            # Callbacks report this task; poll only if none is final after the grace period.
            age = (datetime.now(UTC) - record.submitted_at).total_seconds()
            poller.follow(record, max(0.0, self.receiver.fallback_after - age))
        else:
            poller.follow(record)

    # -- files ------------------------------------------------------------------------------

    async def _video_for(self, target: DownloadTarget) -> tuple[VideoFile, str]:
        if isinstance(target, VideoFile):
            return target, str(target.file_id)
        if isinstance(target, Task):
            snapshot = target.snapshot
            if snapshot is None or not target.done:
                raise ValueError(f"task {target.task_id} has not finished: await it first")
            target = snapshot
        if isinstance(target, TaskSnapshot):
            if target.status is not TaskStatus.SUCCESS or target.file_id is None:
                raise ValueError(
                    f"task {target.task_id} has no video (status {target.status.value})"
                )
            return await self.get_file(target.file_id), target.task_id
        return await self.get_file(target), str(target)

    async def download(
        self,
        target: DownloadTarget,
        dest: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
        max_bytes: int | None = None,
    ) -> Path:
        """Save a video to ``dest`` (a file, or a directory to put ``<id>.mp4`` in).

        Args:
            target: a :class:`VideoFile`, a finished :class:`Task` or snapshot, or a file id.
            dest: the file to write, or an existing directory (or a path ending in ``/``).
            on_progress: called with (bytes done, total bytes or ``None``) as data arrives.
            max_bytes: refuse larger videos (default: the client's ``max_download_bytes``).

        Raises:
            DownloadError: too large, or the URL was refused even when fresh.
            TransportError: the connection kept failing.
        """
        self._open()
        session = self._session
        assert session is not None  # noqa: S101 - _open() set it
        video, name = await self._video_for(target)
        path = await asyncio.to_thread(_target_path, dest, name)
        return await download_video(
            session,
            video,
            path,
            refresh=self.get_file,
            timeouts=self.timeouts,
            retry=self.retry,
            max_bytes=max_bytes if max_bytes is not None else self.max_download_bytes,
            on_progress=on_progress,
            fsync=self.fsync_downloads,
        )

    # -- whole generations ------------------------------------------------------------------

    async def generate(
        self,
        request: VideoRequest,
        dest: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Generation:
        """Submit, wait for the video and, with ``dest``, download it.

        Raises:
            TaskFailedError, TaskTimeoutError, SubmissionUncertainError, APIError,
            DownloadError: as the steps they come from.
        """
        task = await self.submit(request)
        snapshot = await task.wait(timeout)
        assert snapshot.file_id is not None  # noqa: S101 - a Success always has a file
        video = task.video or await self.get_file(snapshot.file_id)
        path = None
        if dest is not None:
            target = await asyncio.to_thread(_target_path, dest, task.task_id)
            path = await self.download(video, target, on_progress=on_progress)
        return Generation(task.task_id, snapshot, video, path)

    async def generate_many(
        self,
        requests: Iterable[VideoRequest] | AsyncIterable[VideoRequest],
        *,
        concurrency: int = 16,
        dest_dir: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> AsyncGenerator[GenerationOutcome, None]:
        """Run many generations, yielding one outcome per request as each finishes.

        With ``dest_dir`` (created if missing) each video is saved as ``<task id>.mp4``.

        At most ``concurrency`` generations are in flight, and the input (which may be an
        async iterator) is read only as slots free up, so memory stays bounded however many
        requests there are. A failure is yielded as an outcome; it never stops the batch.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._open()
        directory = None
        if dest_dir is not None:
            directory = Path(dest_dir)
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        running: set[asyncio.Task[GenerationOutcome]] = set()

        async def one(index: int, request: VideoRequest) -> GenerationOutcome:
            try:
                generation = await self.generate(request, directory, timeout=timeout)
            except Exception as error:  # noqa: BLE001 - every failure becomes an outcome
                return GenerationOutcome(index, request, error=error)
            return GenerationOutcome(index, request, generation=generation)

        async def drain(block_until: int) -> AsyncIterator[GenerationOutcome]:
            while len(running) > block_until:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for job in done:
                    running.discard(job)
                    yield job.result()

        try:
            index = 0
            async for request in _aiter(requests):
                async for outcome in drain(concurrency - 1):
                    yield outcome
                running.add(asyncio.get_running_loop().create_task(one(index, request)))
                index += 1
            async for outcome in drain(0):
                yield outcome
        finally:
            for job in running:
                job.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)


def _target_path(dest: str | os.PathLike[str], name: str) -> Path:
    """``dest`` itself, or ``dest/<name>.mp4`` when it is a directory."""
    path = Path(dest)
    if path.is_dir() or str(dest).endswith(("/", os.sep)):
        return path / f"{name}.mp4"
    return path


async def _aiter(
    items: Iterable[VideoRequest] | AsyncIterable[VideoRequest],
) -> AsyncIterator[VideoRequest]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("minimax-s2v")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        own = "unknown"
    return f"minimax-s2v/{own} aiohttp/{aiohttp.__version__}"

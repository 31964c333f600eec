"""The async Client: submit, follow, retrieve and download S2V-01 generations."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp
import attrs
from yarl import URL

from ._download import ProgressCallback, download_video
from ._download import target_path as _target_path
from ._errors import (
    CallbackUnreachableError,
    ConfigurationError,
    ConnectError,
    MiniMaxError,
    RateLimitError,
    ResponseValidationError,
    StoreError,
    SubmissionUncertainError,
)
from ._models import TaskSnapshot, TaskStatus, VideoFile, VideoRequest
from ._polling import PollPolicy
from ._ratelimit import EndpointClass, RateLimit, RateLimiter
from ._redaction import shown_url
from ._retry import RetryPolicy, retry_call
from ._stats import CallCounts, ClientStats, SubmissionStats
from ._submission import check_submission, prepare_submission
from ._tasks import Task
from ._telemetry import NO_TELEMETRY, TRACING_ENV, Telemetry
from ._tracking import JOURNAL_RETRY, Resumed, TaskTracker, TrackerCounts
from ._transport import CN_BASE_URL, GLOBAL_BASE_URL, Timeouts, Transport, in_band_rejection
from ._validators import check_argument, number
from ._wire import is_http_url, parse_file, parse_snapshot, parse_submit
from .stores import MemoryStore, StoredSubmission, SubmissionState, TaskStore

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = ["Client", "ClientStats", "Generation", "GenerationOutcome", "Resumed"]

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
        task_id: the task MiniMax created for it, when one is known (also on failure: a
            task that failed, timed out or could not be downloaded can be looked up).

    An outcome pickles (its error included), so it can cross a process pool.
    """

    index: int
    request: VideoRequest
    generation: Generation | None = None
    error: BaseException | None = None
    task_id: str | None = None

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


class _Calls:
    """The authenticated calls the tracker makes, through the client's transport."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def query_once(self, task_id: str) -> TaskSnapshot:
        return await self._client._query_once(task_id)  # noqa: SLF001 - the client's own helper

    async def query(self, task_id: str) -> TaskSnapshot:
        return await self._client._query(task_id)  # noqa: SLF001 - the client's own helper

    async def retrieve(self, file_id: str) -> VideoFile:
        return await self._client.get_file(file_id)


class Client:
    """An async client of MiniMax's S2V-01 API.

    Use it as an async context manager (or call :meth:`close`)::

        async with Client() as client:
            result = await client.generate(VideoRequest(subject="face.jpg", prompt="..."),
                                           dest="out.mp4")

    Args:
        api_key: the key; ``MINIMAX_API_KEY`` when not given.
        region: ``"global"`` (api.minimax.io) or ``"cn"`` (api.minimaxi.com).
        base_url: overrides the region. With neither given, ``MINIMAX_BASE_URL``, else the
            global host: an argument always wins over the environment.
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
        trace_configs: :class:`aiohttp.TraceConfig` objects for the session the client
            makes (e.g. ``opentelemetry-instrumentation-aiohttp-client``'s). With your own
            ``session``, give them to that session instead: passing both is refused.
        tracing: OpenTelemetry spans and metrics (needs ``minimax-s2v[otel]``); by default
            on when the environment variable ``MINIMAX_S2V_TRACING`` is ``1``.

    Raises:
        ConfigurationError: no key, an unknown region, a bad URL, ``trace_configs`` with a
            ``session``, or tracing without OpenTelemetry installed.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: Literal["global", "cn"] | None = None,
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
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        tracing: bool | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("MINIMAX_API_KEY", "")
        if not key.strip():
            raise ConfigurationError("no API key: pass Client(api_key=...) or set MINIMAX_API_KEY")
        if region is not None and region not in _REGIONS:
            raise ConfigurationError(f"region must be 'global' or 'cn', not {region!r}")
        if base_url is not None:
            url = URL(str(base_url))
        elif region is not None:
            url = _REGIONS[region]  # asked for in code: the environment does not override it
        else:
            url = URL(os.environ.get("MINIMAX_BASE_URL") or str(GLOBAL_BASE_URL))
        if not is_http_url(str(url)):
            raise ConfigurationError(f"base_url must be an absolute http(s) URL, not {str(url)!r}")
        if trace_configs and session is not None:
            raise ConfigurationError(
                "trace_configs apply to the session the client makes; with your own session, "
                "give them to it: aiohttp.ClientSession(trace_configs=[...])"
            )
        telemetry = _telemetry(tracing)
        self._api_key = key.strip()
        self.base_url = url
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.rate_limit = rate_limit or RateLimit()
        self.polling = polling or PollPolicy()
        check_argument(
            self,
            "max_download_bytes",
            max_download_bytes,
            number(at_least=1, integer=True, optional=True),
        )
        self.max_download_bytes = max_download_bytes
        self.fsync_downloads = fsync_downloads
        self.receiver = receiver
        self._own_store = store is None
        self.store: TaskStore = store if store is not None else MemoryStore()
        self._given_session = session
        self._trace_configs = list(trace_configs or ())
        self._session: aiohttp.ClientSession | None = None
        self._transport: Transport | None = None
        self._state = _State.UNOPENED
        self._telemetry = telemetry
        self._call_counts = CallCounts()
        self._limiter = RateLimiter(self.rate_limit)  # kept across opens: it counts 1002s
        self._on_retry = {
            e: self._call_counts.retry_of(e) for e in ("submit", "query", "retrieve", "download")
        }
        self._tracker = TaskTracker(
            _Calls(self),
            self.store,
            self.polling,
            receiver,
            journal_retry=attrs.evolve(JOURNAL_RETRY, wait=self.retry.wait),
            telemetry=telemetry,
        )
        self._submit_slots = asyncio.Semaphore(_SUBMITS_AT_ONCE)
        telemetry.watch(self.stats, self._tracker.counts.time_to_result)
        if receiver is not None:
            telemetry.watch_receiver(receiver)

    def __repr__(self) -> str:
        return f"Client(base_url={shown_url(self.base_url)!r}, state={self._state.value})"

    # -- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._open()
        try:
            await self._tracker.start()
        except BaseException:
            await self.close()  # the session made by _open() is not left behind
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _open(self) -> Transport:
        if self._state is _State.CLOSED:
            raise RuntimeError("this Client is closed: create a new one")
        if self._transport is not None:
            return self._transport
        loop = asyncio.get_running_loop()
        # Everything that can refuse comes before the session, so that nothing leaks.
        limiter = self._limiter
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
                connector=aiohttp.TCPConnector(limit=_POOL_SIZE, ttl_dns_cache=300),
                trace_configs=self._trace_configs or None,
            )
        self._session = session
        self._transport = Transport(
            self._api_key,
            self.base_url,
            session=session,
            timeouts=self.timeouts,
            limiter=limiter,
            user_agent=_user_agent(),
        )
        self._state = _State.OPENED
        return self._transport

    async def close(self) -> None:
        """Stop polling, end pending waits, and close the session if the client made it."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        await self._tracker.close()
        if self._session is not None and self._given_session is None:
            await self._session.close()
        if self._own_store:
            await self.store.close()
        self._transport = None
        self._telemetry.retire()

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
            with self._telemetry.span("minimax.submit", model=request.model) as span:
                try:
                    task = await self._send_submission(transport, request, request, label)
                except SubmissionUncertainError:
                    span.outcome("uncertain")
                    raise
                except MiniMaxError:
                    span.outcome("rejected")
                    raise
                span.task(task.task_id, request.model)
                span.outcome("created")
                return task

    async def _send_submission(
        self, transport: Transport, request: VideoRequest, prepared: VideoRequest, label: str | None
    ) -> Task:
        """Journal a validated request, POST it, and follow the task it created."""
        tracker = self._tracker
        nonce = secrets.token_urlsafe(12)
        receiver = self.receiver if prepared.callback_url is None else None
        submission = await prepare_submission(prepared, receiver, nonce)
        if receiver is not None:
            tracker.expect(nonce)  # held before the POST: MiniMax checks it during the call
        body, fingerprint = submission.body, submission.fingerprint
        # Where a cancellation finds the submission: "waiting" for the rate limiter,
        # "journaling", "sent" (it may have left), or "refused" (journaled, and every
        # attempt so far certainly created nothing).
        stage = "waiting"

        async def journal() -> None:
            # Journaled as being sent only once the rate limiter lets the request go: a
            # submission cancelled while it waits was never sent, and leaves no trace.
            nonlocal stage
            if stage == "waiting":
                stage = "journaling"
                await tracker.journal(
                    StoredSubmission(
                        nonce=nonce,
                        fingerprint=fingerprint,
                        payload=submission.journal_payload,
                        label=label,
                        state=SubmissionState.SENDING,
                        created_at=datetime.now(UTC),
                    )
                )
            stage = "sent"

        async def attempt() -> str:
            nonlocal stage
            try:
                response = await transport.call(
                    "POST",
                    "/v1/video_generation",
                    EndpointClass.SUBMIT,
                    body=body,
                    before_send=journal,
                )
            except MiniMaxError as error:
                if stage == "sent" and _certainly_not_created(error):
                    stage = "refused"  # e.g. a 1002: a cancelled retry was never sent
                raise
            return parse_submit(response.data)

        try:
            task_id = await retry_call(
                self.retry,
                attempt,
                what="submission",
                should_retry=lambda e: _resubmit_is_safe(e) and self.retry.should_retry(e),
                on_retry=self._on_retry["submit"],
            )
        except asyncio.CancelledError:
            if stage == "sent":
                await tracker.lost(nonce)  # it may have left: a callback can still bind it
            else:
                await tracker.abandon(nonce)  # never sent: nothing to report, ever
            raise
        except StoreError:
            await tracker.abandon(nonce)  # the journal refused it before it was sent
            raise
        except MiniMaxError as error:
            if _certainly_not_created(error):
                await tracker.abandon(nonce)
                if isinstance(error, CallbackUnreachableError):
                    raise error.naming(submission.callback_shown) from None
                raise
            # The nonce is kept: a callback naming the task can still bind it (recover()).
            await tracker.lost(nonce)
            reason = str(error)
            if isinstance(error, ResponseValidationError):
                reason = f"the answer had no readable task id: {error}"
            raise SubmissionUncertainError(reason, nonce=nonce, fingerprint=fingerprint) from error
        logger.info("submitted task %s", task_id)
        return await tracker.submitted(nonce, task_id, request, label)

    def recover(self, error: SubmissionUncertainError) -> Task | None:
        """The task an uncertain submission created, once a callback named it (and the API agreed).

        Returns ``None`` while nothing is known (no receiver, or no callback yet).

        Raises:
            SubmissionConflictError: callbacks named more than one existing task for it.
        """
        return self._tracker.recover(error.nonce)

    async def resume(self) -> Resumed:
        """Re-attach to every unfinished task in the store, e.g. after a restart.

        Each task is reconciled with one query, then followed as usual (by callbacks, with
        polling as the fallback). Submissions whose outcome was never known are returned as
        ``uncertain``; with a receiver, a callback that names their task still binds it
        (once the API shows that task exists).
        """
        self._open()
        return await self._tracker.resume()

    def stats(self) -> ClientStats:
        """What this client has done so far (a snapshot of counters; always available)."""
        counts: TrackerCounts = self._tracker.counts
        calls = self._call_counts
        return ClientStats(
            confirmations=counts.confirmations,
            fallback_polls=counts.fallback_polls,
            reconciliations=counts.reconciliations,
            retrievals=counts.retrievals,
            adopted=counts.adopted,
            conflicts=counts.conflicts,
            following=self._tracker.registry.following(),
            succeeded=counts.succeeded,
            failed=counts.failed,
            time_to_result=counts.time_to_result.snapshot(),
            submissions=SubmissionStats(
                created=counts.created, rejected=counts.rejected, uncertain=counts.uncertain
            ),
            retries=calls.retries(),
            rate_limited=self._limiter.rate_limited,
            downloads=calls.downloads,
            download_bytes=calls.download_bytes,
        )

    async def _query_once(self, task_id: str) -> TaskSnapshot:
        transport = self._open()
        with self._telemetry.span("minimax.query", task_id=task_id) as span:
            response = await transport.call(
                "GET",
                "/v1/query/video_generation",
                EndpointClass.QUERY,
                params={"task_id": task_id},
            )
            snapshot = parse_snapshot(response.data)
            span.outcome(snapshot.status.value.lower())
        return snapshot

    async def _query(self, task_id: str) -> TaskSnapshot:
        self._open()
        return await retry_call(
            self.retry,
            lambda: self._query_once(task_id),
            what=f"query of task {task_id}",
            on_retry=self._on_retry["query"],
        )

    async def get_task(self, task_id: str) -> TaskSnapshot:
        """Query a task's status now (retried on transient errors).

        Raises:
            APIError: e.g. an unknown or expired task.
        """
        self._open()
        return await self._tracker.refresh(task_id)

    async def get_file(self, file_id: int | str) -> VideoFile:
        """Retrieve a file's details, with a fresh ``download_url`` valid for one hour."""
        transport = self._open()

        async def attempt() -> VideoFile:
            with self._telemetry.span("minimax.retrieve") as span:
                span.set("minimax.file_id", str(file_id))
                response = await transport.call(
                    "GET",
                    "/v1/files/retrieve",
                    EndpointClass.RETRIEVE,
                    params={"file_id": str(file_id)},
                )
                video = parse_file(response.data, datetime.now(UTC))
                span.outcome("ok")
            return video

        return await retry_call(
            self.retry,
            attempt,
            what=f"retrieval of file {file_id}",
            on_retry=self._on_retry["retrieve"],
        )

    def task(self, task_id: str) -> Task:
        """A handle on an existing task, e.g. after a :class:`TaskTimeoutError`."""
        self._open()
        return self._tracker.handle(str(task_id))

    # -- files ------------------------------------------------------------------------------

    async def _video_for(self, target: DownloadTarget) -> tuple[VideoFile, str]:
        if isinstance(target, VideoFile):
            return target, str(target.file_id)
        if isinstance(target, Task):
            snapshot = target.snapshot
            if snapshot is None or not target.done:
                raise ValueError(f"task {target.task_id} has not finished: await it first")
            video = target.video
            if video is not None and video.expires_at > datetime.now(UTC):
                return video, target.task_id  # retrieved when its success was confirmed
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
        transport = self._open()
        session = self._session
        assert session is not None  # noqa: S101 - _open() set it
        task_id = target.task_id if isinstance(target, Task | TaskSnapshot) else None
        with self._telemetry.span("minimax.download", task_id=task_id) as span:
            video, name = await self._video_for(target)
            span.set("minimax.file_id", str(video.file_id))
            # The host and path only: the query of a download URL is its signature.
            span.set("url.full", str(video.download_url.with_query(None).with_fragment(None)))
            span.set("server.address", video.download_url.host)
            path = await asyncio.to_thread(_target_path, dest, name)
            saved = await download_video(
                session,
                video,
                path,
                refresh=self.get_file,
                timeouts=self.timeouts,
                retry=self.retry,
                max_bytes=max_bytes if max_bytes is not None else self.max_download_bytes,
                on_progress=on_progress,
                fsync=self.fsync_downloads,
                redactor=transport.redactor,
                on_retry=self._on_retry["download"],
            )
            size = (await asyncio.to_thread(saved.stat)).st_size
            self._call_counts.downloads += 1
            self._call_counts.download_bytes += size
            span.set("minimax.download.bytes", size)
            span.outcome("saved")
        return saved

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
        with self._telemetry.span("minimax.generate", model=request.model) as span:
            task = await self.submit(request)
            span.task(task.task_id, request.model)
            generation = await self._complete(task, dest, timeout=timeout, on_progress=on_progress)
            span.outcome("success")
        return generation

    async def _complete(
        self,
        task: Task,
        dest: str | os.PathLike[str] | None,
        *,
        timeout: float | None,
        on_progress: ProgressCallback | None = None,
    ) -> Generation:
        """Wait for ``task``'s video and, with ``dest``, download it (the rest of generate)."""
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
            task_id: str | None = None
            try:
                task = await self.submit(request)
                task_id = task.task_id
                generation = await self._complete(task, directory, timeout=timeout)
            except Exception as error:  # noqa: BLE001 - every failure becomes an outcome
                # A journal failure after creation names the task it created.
                task_id = task_id or getattr(error, "task_id", None)
                return GenerationOutcome(index, request, error=error, task_id=task_id)
            return GenerationOutcome(index, request, generation=generation, task_id=task_id)

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


def _telemetry(tracing: bool | None) -> Telemetry:
    """OpenTelemetry when ``tracing`` (or, when it is ``None``, its env var) says so.

    Raises:
        ConfigurationError: tracing is asked for, but ``opentelemetry-api`` is not installed.
    """
    if tracing is None:
        tracing = os.environ.get(TRACING_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if not tracing:
        return NO_TELEMETRY
    try:
        from ._otel import OpenTelemetry
    except ImportError as error:
        raise ConfigurationError(
            "tracing needs OpenTelemetry's API: pip install 'minimax-s2v[otel]' "
            f"(or unset {TRACING_ENV})"
        ) from error
    return OpenTelemetry()


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

"""The async Client: submit, follow, retrieve and download S2V-01 and MiniMax-H3 generations."""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import os
import secrets
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Iterable,
    Sequence,
)
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import aiohttp
import attrs
from yarl import URL

from ._download import ProgressCallback, download_video
from ._download import target_path as _target_path
from ._errors import (
    APIError,
    CallbackUnreachableError,
    CancelRefusedError,
    ConfigurationError,
    InvalidRequestError,
    MiniMaxError,
    ResponseValidationError,
    StoreError,
    SubmissionUncertainError,
    TaskExpiredError,
)
from ._models import (
    AnyRequest,
    Dialect,
    H3Request,
    TaskSnapshot,
    TaskStatus,
    VideoFile,
)
from ._polling import PollPolicy
from ._ratelimit import EndpointClass, InFlightCap, RateLimit, RateLimiter
from ._redaction import describe, shown_url
from ._retry import RetryPolicy, retry_call
from ._stats import CallCounts, ClientStats, SubmissionStats
from ._submission import (
    PreparedSubmission,
    check_submission,
    created_nothing,
    prepare_submission,
    resend_is_safe,
)
from ._tasks import Task
from ._telemetry import NO_TELEMETRY, TRACING_ENV, Telemetry
from ._tracking import CLOSED_CLIENT, JOURNAL_RETRY, Resumed, TaskTracker, TrackerCounts
from ._transport import CN_BASE_URL, GLOBAL_BASE_URL, Timeouts, Transport
from ._validators import check_argument, number
from ._wire import (
    DOWNLOAD_URL_LIFETIME,
    check_names,
    check_video_named,
    checked_id,
    is_http_url,
    parse_file,
    parse_h3_cancel,
    parse_h3_list,
    parse_h3_snapshot,
    parse_snapshot,
    parse_submit,
)
from .stores import (
    MemoryStore,
    SharedTaskStore,
    StoredSubmission,
    SubmissionState,
    TaskStore,
)

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = ["Client", "ClientStats", "Generation", "GenerationOutcome", "Resumed"]

logger = logging.getLogger("minimax_s2v")
T = TypeVar("T")

DownloadTarget = VideoFile | Task | TaskSnapshot | int | str
_REGIONS = {"global": GLOBAL_BASE_URL, "cn": CN_BASE_URL}
_DEFAULT_MAX_DOWNLOAD = 4 * 1024**3
_POOL_SIZE = 100  # connections the client's own session keeps at most
# Submissions prepared and in flight at once: as many as the pool can carry.
# Past validation, a submission costs the event loop about 0.3 ms before its first send;
# ten thousand gathered at once would hold the loop for seconds in one stretch, answers to
# MiniMax's challenges included. The others wait their turn without costing the loop.
_SUBMITS_AT_ONCE = _POOL_SIZE
#: V2 tasks can be queried for 7 days only ("window [T-7d, T)").
V2_QUERY_WINDOW = timedelta(days=7)
_PATHS = {Dialect.V1: "/v1/video_generation", Dialect.V2: "/v2/video_generation"}
_SUBMIT_CLASS = {Dialect.V1: EndpointClass.SUBMIT, Dialect.V2: EndpointClass.V2_SUBMIT}
_LIST_PAGE = 100  # V2 tasks asked for per list call


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
    request: AnyRequest
    generation: Generation | None = None
    error: BaseException | None = None
    task_id: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the generation succeeded."""
        return self.generation is not None


class _Calls:
    """The authenticated calls the tracker makes, through the client's transport."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def query_once(self, task_id: str) -> TaskSnapshot:
        return await self._client._query_once(task_id)  # noqa: SLF001 - the client's own helper

    async def query(self, task_id: str, *, nonce: str | None = None) -> TaskSnapshot:
        if nonce is not None:
            return await self._client._query_claimed(task_id, nonce)  # noqa: SLF001
        return await self._client._query(task_id)  # noqa: SLF001 - the client's own helper

    async def retrieve(self, file_id: str) -> VideoFile:
        return await self._client.get_file(file_id)

    async def cancel(self, task_id: str) -> TaskSnapshot | None:
        return await self._client._cancel(task_id)  # noqa: SLF001 - the client's own helper


class _Sending:
    """One submission being sent: its journal entry, its attempts, and how far it got.

    Its state in one object, where closures over the submitting coroutine would each hold
    their own cells for as long as the submission is in flight.
    """

    __slots__ = ("dialect", "label", "nonce", "stage", "submission", "tracker", "transport")

    def __init__(
        self,
        transport: Transport,
        tracker: TaskTracker,
        nonce: str,
        dialect: Dialect,
        submission: PreparedSubmission,
        *,
        label: str | None,
    ) -> None:
        self.transport = transport
        self.tracker = tracker
        self.nonce = nonce
        self.dialect = dialect
        self.submission = submission
        self.label = label
        # Where a cancellation finds the submission: "waiting" for the rate limiter,
        # "journaling", "sent" (it may have left), or "refused" (journaled, and every
        # attempt so far certainly created nothing).
        self.stage = "waiting"

    async def journal(self) -> None:
        """Journal the submission as being sent (each attempt's ``before_send``).

        Only once the rate limiter lets the request go: a submission cancelled while it waits
        was never sent, and leaves no trace.
        """
        if self.stage == "waiting":
            self.stage = "journaling"
            submission = self.submission
            await self.tracker.journal(
                StoredSubmission(
                    nonce=self.nonce,
                    fingerprint=submission.fingerprint,
                    payload=submission.journal_payload,
                    label=self.label,
                    state=SubmissionState.SENDING,
                    created_at=datetime.now(UTC),
                )
            )
        self.stage = "sent"

    async def attempt(self) -> str:
        """POST the body once; the task id created."""
        dialect = self.dialect
        try:
            response = await self.transport.call(
                "POST",
                _PATHS[dialect],
                _SUBMIT_CLASS[dialect],
                body=self.submission.body,
                before_send=self.journal,
            )
        except MiniMaxError as error:
            if self.stage == "sent" and created_nothing(error):
                self.stage = "refused"  # e.g. a 1002: a cancelled retry was never sent
            raise
        return parse_submit(response.data)


class Client:
    """An async client of MiniMax's video APIs: S2V-01 (V1) and MiniMax-H3 (V2).

    Use it as an async context manager (or call :meth:`close`)::

        async with Client() as client:
            result = await client.generate(VideoRequest(subject="face.jpg", prompt="..."),
                                           dest="out.mp4")
            result = await client.generate(H3Request("...", references=["face.jpg"]),
                                           dest="out.mp4")

    A :class:`VideoRequest` goes to the V1 API, an :class:`H3Request` to the V2 API; the
    task handle, callbacks, polling, journal and downloads work the same for both.

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
        key = _checked_key(api_key)
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
        self._api_key = key
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
        if getattr(self.store, "shared", False) is True and not isinstance(
            self.store, SharedTaskStore
        ):
            # Treated as unshared, it would hand other replicas' tasks to nobody.
            raise ConfigurationError(
                f"{type(self.store).__name__} says it is shared but is not a SharedTaskStore: "
                "a shared store also needs subscribe(on_update)"
            )
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
            journal_retry=JOURNAL_RETRY,
            telemetry=telemetry,
        )
        self._submit_slots = asyncio.Semaphore(_SUBMITS_AT_ONCE)
        # Which API each V2 task (and each V2 submission's nonce) lives on: V1 otherwise.
        self._v2_tasks: set[str] = set()
        self._v2_nonces: set[str] = set()
        in_flight = self.rate_limit.v2_max_in_flight
        self._v2_slots = None if in_flight is None else InFlightCap(in_flight)
        # V2 snapshots read by one list call while resume() reconciles (emptied after it).
        self._prefetched: dict[str, TaskSnapshot] = {}
        # Downloads in progress, each in a task of its own: close() cancels them.
        self._running: set[asyncio.Task[Any]] = set()
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
            raise RuntimeError(CLOSED_CLIENT)
        if self._transport is not None:
            self._tracker.check_loop()  # its session, poller and waiters live on that loop
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
        self._tracker.loop = loop
        return self._transport

    async def close(self) -> None:
        """Stop polling, end pending waits and downloads, close the session if the client made it.

        A wait still pending raises :class:`RuntimeError` (saying how to wait again with a new
        client), and so does a download still running, its partial file removed.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        running = list(self._running)
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)  # their files cleaned up
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

    async def submit(self, request: AnyRequest, *, label: str | None = None) -> Task:
        """Validate ``request``, create the task, and return a handle on it.

        A :class:`VideoRequest` creates an S2V-01 task on the V1 API, an :class:`H3Request` a
        MiniMax-H3 task on the V2 API. A V2 submission waits while the client has
        ``rate_limit.v2_max_in_flight`` V2 tasks queued or running (30 by default, as the V2
        page lists); a slot frees when a task ends. A local file is read and sent as a data
        URL. The submission is journaled in the store before it is sent. The call is retried
        only when the failed attempt certainly created no task (connection refused, rate
        limited, an in-band rejection, a V2 error envelope); anything
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
        slots = self._v2_slots if isinstance(request, H3Request) else None
        with self._telemetry.span("minimax.submit", model=request.model) as span:
            if slots is not None:
                await slots.take()
            try:
                async with self._submit_slots:
                    nonce, task_id = await self._send_submission(transport, request, label)
                    # Created: the slot is the task's from here, even if the journal or the
                    # caller gives up on the handle now (the task runs until it ends).
                    held, slots = slots, None
                    try:
                        task = await self._tracker.submitted(nonce, task_id, request, label)
                    finally:
                        if held is not None:
                            self._release_when_done(task_id, held)
            except BaseException as error:
                if slots is not None:
                    slots.release()  # nothing created (or not known to be): free again
                if isinstance(error, SubmissionUncertainError):
                    span.outcome("uncertain")
                elif isinstance(error, MiniMaxError):
                    span.outcome("rejected")
                raise
            span.task(task.task_id, request.model)
            span.outcome("created")
            return task

    def _release_when_done(self, task_id: str, slots: InFlightCap) -> None:
        """Free a V2 in-flight slot once ``task_id`` ends (it is followed until then)."""
        record = self._tracker.registry.get(task_id)
        if record is None:
            slots.release()
            return
        if not record.on_end(slots.release):  # at once if it has ended already
            slots.release()  # it holds a slot already (resumed again, an id answered twice)
        self._tracker.watch(record)  # someone must report its end, waited on or not

    async def _send_submission(
        self, transport: Transport, request: AnyRequest, label: str | None
    ) -> tuple[str, str]:
        """Journal a validated request and POST it: its nonce and the task id it created."""
        tracker = self._tracker
        nonce = secrets.token_urlsafe(12)
        dialect = Dialect.V2 if isinstance(request, H3Request) else Dialect.V1
        if dialect is Dialect.V2:
            self._v2_nonces.add(nonce)
        receiver = self.receiver if request.callback_url is None else None
        submission = await prepare_submission(request, receiver, nonce)
        if receiver is not None:
            tracker.expect(nonce)  # held before the POST: MiniMax checks it during the call
        sending = _Sending(transport, tracker, nonce, dialect, submission, label=label)
        unexpected: Exception | None = None
        try:
            try:
                task_id = await retry_call(
                    self.retry,
                    sending.attempt,
                    what="submission",
                    should_retry=resend_is_safe,
                    on_retry=self._on_retry["submit"],
                )
            finally:
                submission.release()  # never sent again, whatever the outcome
        except asyncio.CancelledError:
            if sending.stage == "sent":
                await tracker.lost(nonce)  # it may have left: a callback can still bind it
            else:
                await tracker.abandon(nonce)  # never sent: nothing to report, ever
            raise
        except StoreError:
            await tracker.abandon(nonce)  # the journal refused it before it was sent
            raise
        except MiniMaxError as error:
            await self._refused(error, nonce, submission.fingerprint, submission.callback_shown)
        except Exception as error:
            # Nothing this library raises (a tracing hook of the caller's that failed, a
            # bug): once the request may have left, the task may exist, and is paid for.
            if sending.stage != "sent":
                await tracker.abandon(nonce)
                raise
            unexpected = error
        if unexpected is not None:
            # Raised outside the except block, so that the error is only the cause, cleaned
            # of secrets with the rest of the chain (not also kept, as it was, as __context__).
            await tracker.lost(nonce)
            uncertain = SubmissionUncertainError(
                "the call broke off on an error of no known kind: "
                + describe(unexpected, transport.redactor.text),
                nonce=nonce,
                fingerprint=submission.fingerprint,
            )
            uncertain.__cause__ = unexpected
            raise transport.redactor.clean(uncertain)
        logger.info("submitted task %s", task_id)
        if dialect is Dialect.V2:
            self._v2_tasks.add(task_id)
        return nonce, task_id

    async def _refused(
        self, error: MiniMaxError, nonce: str, fingerprint: str, callback_shown: str | None
    ) -> NoReturn:
        """Raise what a failed submission amounts to: the error, or its uncertainty."""
        if created_nothing(error):
            self._v2_nonces.discard(nonce)
            await self._tracker.abandon(nonce)
            if isinstance(error, CallbackUnreachableError):
                raise error.naming(callback_shown) from None
            raise error
        # The nonce is kept: a callback naming the task can still bind it (recover()).
        await self._tracker.lost(nonce)
        reason = str(error)
        if isinstance(error, ResponseValidationError):
            reason = f"the answer had no readable task id: {error}"
        elif isinstance(error, APIError) and error.task_id is not None:
            reason = f"{error}, yet the answer named task {error.task_id}"
        raise SubmissionUncertainError(reason, nonce=nonce, fingerprint=fingerprint) from error

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

        Raises:
            StoreError: the journal cannot be read (its file is locked or damaged, or it
                holds rows this version cannot read); nothing was submitted or changed.
        """
        self._open()
        unfinished, uncertain = await self._tracker.journaled()
        # The journal says which API each submission went to (its payload's model).
        for stored in unfinished:
            if stored.submission is not None and _is_v2_payload(stored.submission.payload):
                self._v2_tasks.add(stored.task_id)
                self._v2_nonces.add(stored.submission.nonce)
        for submission in uncertain:
            if _is_v2_payload(submission.payload):
                self._v2_nonces.add(submission.nonce)
        await self._prefetch_v2([t for t in self._v2_tasks if self._prefetched.get(t) is None])
        try:
            resumed = await self._tracker.resume(unfinished, uncertain)
        finally:
            self._prefetched.clear()
        slots = self._v2_slots
        if slots is not None:
            for task in resumed.tasks:
                if task.task_id in self._v2_tasks and not task.done:
                    slots.force()  # in flight already: new V2 submissions wait for room
                    self._release_when_done(task.task_id, slots)
        return resumed

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

    async def _prefetch_v2(self, task_ids: list[str]) -> None:
        """Read V2 tasks with the list endpoint, 100 a call, for resume()'s reconciliation.

        ``filter.task_ids`` is sent comma-joined, as MiniMax's own CLI sends it. A task the
        list does not show (outside the 7-day window, or a failed call) is queried alone.
        """
        transport = self._open()
        for start in range(0, len(task_ids), _LIST_PAGE):
            page = task_ids[start : start + _LIST_PAGE]
            params = {
                "page_num": "1",
                "page_size": str(len(page)),
                "filter.task_ids": ",".join(page),
            }
            try:
                response = await retry_call(
                    self.retry,
                    lambda params=params: transport.call(  # type: ignore[misc]
                        "GET", "/v2/query/video_generation", EndpointClass.V2_QUERY, params=params
                    ),
                    what="list of V2 tasks",
                )
                tasks, _ = parse_h3_list(response.data)
            except MiniMaxError as error:
                logger.info("could not list %d V2 tasks (%s): querying each", len(page), error)
                continue
            wanted = set(page)
            for task in tasks:
                if task.id in wanted:
                    self._prefetched[task.id] = task.snapshot

    async def _query_claimed(self, task_id: str, nonce: str) -> TaskSnapshot:
        """Query a task a callback on ``nonce``'s URL claimed, on that submission's API.

        A claim on a V2 submission's URL is asked of the V2 API, and the task is followed
        there only once that API has shown it: on the callback's word alone, a forger could
        move any V1 task of this client to an API that does not know it.
        """
        if nonce not in self._v2_nonces or task_id in self._v2_tasks:
            return await self._query(task_id)
        snapshot = await self._query(task_id, v2=True)
        self._v2_tasks.add(task_id)  # the V2 API shows it
        return snapshot

    def dialect_of(self, task_id: str) -> Dialect:
        """The API ``task_id`` is followed on (V1 unless it was submitted, resumed or named V2)."""
        return Dialect.V2 if task_id in self._v2_tasks else Dialect.V1

    async def _query_once(self, task_id: str, *, v2: bool | None = None) -> TaskSnapshot:
        """One query, on the API ``task_id`` is followed on (``v2``: on that one instead)."""
        transport = self._open()
        with self._telemetry.span("minimax.query", task_id=task_id) as span:
            if not (task_id in self._v2_tasks if v2 is None else v2):
                response = await transport.call(
                    "GET",
                    "/v1/query/video_generation",
                    EndpointClass.QUERY,
                    params={"task_id": task_id},
                )
                snapshot = parse_snapshot(response.data)
                what = "task status"
            else:
                record = self._tracker.registry.get(task_id)
                submitted = record.submitted_at if record is not None else None
                if submitted is not None and datetime.now(UTC) - submitted >= V2_QUERY_WINDOW:
                    raise TaskExpiredError(task_id)  # asking cannot help: never an endless poll
                try:
                    response = await transport.call(
                        "GET", "/v2/query/video_generation", EndpointClass.V2_QUERY, item=task_id
                    )
                except InvalidRequestError as error:
                    # "invalid task_id": outside the 7-day window, or never this account's.
                    raise TaskExpiredError(task_id, error) from None
                snapshot = parse_h3_snapshot(response.data)
                what = "V2 task"
            check_names(what, task_id, snapshot.task_id, response.data)
            check_video_named(what, snapshot, response.data)
            span.outcome(snapshot.status.value.lower())
        return snapshot

    async def _query(self, task_id: str, *, v2: bool | None = None) -> TaskSnapshot:
        self._open()
        listed = self._prefetched.pop(task_id, None)
        if listed is not None:
            return listed  # read by resume()'s list call a moment ago
        return await retry_call(
            self.retry,
            # A partial: a lambda makes cells at each call.
            functools.partial(self._query_once, task_id, v2=v2),
            what=f"query of task {task_id}",
            on_retry=self._on_retry["query"],
        )

    async def get_task(self, task_id: str) -> TaskSnapshot:
        """Query a task's status now (retried on transient errors).

        Raises:
            ValueError: ``task_id`` is not a task id (digits); nothing was sent.
            APIError: e.g. an unknown or expired task.
        """
        task_id = checked_id(task_id)
        self._open()
        return await self._tracker.refresh(task_id)

    async def get_file(self, file_id: int | str) -> VideoFile:
        """Retrieve a file's details, with a fresh ``download_url`` valid for one hour.

        Raises:
            ValueError: ``file_id`` is not a file id (digits); nothing was sent.
            APIError: e.g. an unknown file.
        """
        file_id = checked_id(file_id)
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
                check_names("file response", file_id, video.file_id, response.data)
                span.outcome("ok")
            return video

        return await retry_call(
            self.retry,
            attempt,
            what=f"retrieval of file {file_id}",
            on_retry=self._on_retry["retrieve"],
        )

    def task(self, task_id: str, *, model: str | None = None) -> Task:
        """A handle on an existing task, e.g. after a :class:`TaskTimeoutError`.

        Args:
            task_id: the task, a string of digits.
            model: its model, for a task this client did not submit: a MiniMax-H3 task is
                followed on the V2 API (one it submitted or resumed is known already).

        Raises:
            ValueError: ``task_id`` is not a task id (a V2 one is a path segment).
        """
        task_id = checked_id(task_id)
        self._open()
        if Dialect.of_model(model) is Dialect.V2:
            self._v2_tasks.add(task_id)
        return self._tracker.handle(task_id)

    async def _cancel(self, task_id: str) -> TaskSnapshot | None:
        """``DELETE`` a queued V2 task: its cancelled snapshot; ``None`` if it had ended.

        The task is queried first: MiniMax's ``DELETE`` of a finished task deletes it (and
        its video), which a cancel must never do.

        Raises:
            CancelRefusedError: a V1 task, or one the API refuses to cancel (running).
        """
        transport = self._open()
        if task_id not in self._v2_tasks:
            raise CancelRefusedError(
                f"task {task_id} is an S2V-01 (V1) task: only V2 (MiniMax-H3) tasks can be "
                "cancelled"
            )
        current = await self._query(task_id)
        if current.is_terminal:
            return None
        if current.status is TaskStatus.PROCESSING:
            raise CancelRefusedError(
                f"task {task_id} is running: MiniMax cancels only queued tasks"
            )

        async def attempt() -> TaskSnapshot | None:
            response = await transport.call(
                "DELETE", "/v2/video_generation", EndpointClass.V2_QUERY, item=task_id
            )
            answer = parse_h3_cancel(response.data)
            check_names("V2 cancel answer", task_id, answer.task_id, response.data)
            if answer.action != "cancelled":
                return None
            return TaskSnapshot(task_id, TaskStatus.CANCELLED, status_text="cancelled")

        try:
            return await retry_call(self.retry, attempt, what=f"cancel of task {task_id}")
        except InvalidRequestError as error:
            # A retry after a lost answer is refused too: the task says what happened.
            snapshot = await self._query(task_id)
            if snapshot.status is TaskStatus.CANCELLED:
                return snapshot
            raise CancelRefusedError(
                f"task {task_id} is {snapshot.status_text}: {error.message}",
                code=error.code,
                trace_id=error.trace_id,
                http_status=error.http_status,
            ) from None

    # -- files ------------------------------------------------------------------------------

    async def _v2_video(self, snapshot: TaskSnapshot) -> VideoFile:
        """A V2 task's video as a :class:`VideoFile`: its ``content.url``, queried if unknown.

        V2 has no file retrieve: the file id stands for the task, and a fresh URL comes from
        querying the task again.
        """
        url = snapshot.video_url
        if url is None:
            snapshot = await self._query(snapshot.task_id)
            url = snapshot.video_url
        if snapshot.status is not TaskStatus.SUCCESS or url is None:
            raise ValueError(
                f"task {snapshot.task_id} has no video (status {snapshot.status.value})"
            )
        now = datetime.now(UTC)
        return VideoFile(
            file_id=int(snapshot.task_id),
            bytes=0,
            created_at=now,
            filename="output.mp4",
            purpose="video_generation",
            download_url=URL(url),
            expires_at=now + DOWNLOAD_URL_LIFETIME,  # not stated for V2: refreshed on a 403
        )

    async def _fresh_v2_video(self, task_id: int) -> VideoFile:
        return await self._v2_video(await self._query(str(task_id)))

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
        if isinstance(target, TaskSnapshot) and target.task_id in self._v2_tasks:
            return await self._v2_video(target), target.task_id
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

        A V2 (MiniMax-H3) task's video is fetched from its ``content.url``; when that has
        expired the task is queried again for a fresh one.

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
            v2 = name in self._v2_tasks
            saved = await self._until_closed(
                download_video(
                    session,
                    video,
                    path,
                    refresh=self._fresh_v2_video if v2 else self.get_file,
                    timeouts=self.timeouts,
                    retry=self.retry,
                    max_bytes=max_bytes if max_bytes is not None else self.max_download_bytes,
                    on_progress=on_progress,
                    fsync=self.fsync_downloads,
                    redactor=transport.redactor,
                    on_retry=self._on_retry["download"],
                )
            )
            size = (await asyncio.to_thread(saved.stat)).st_size
            self._call_counts.downloads += 1
            self._call_counts.download_bytes += size
            span.set("minimax.download.bytes", size)
            span.outcome("saved")
        return saved

    async def _until_closed(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` in a task of its own that :meth:`close` cancels.

        A body read whose session closed is never woken by aiohttp (its read timeout goes
        with the connection): without this, a download running at close waited forever.

        Raises:
            RuntimeError: the client was closed meanwhile.
        """
        job = asyncio.get_running_loop().create_task(work)
        self._running.add(job)
        try:
            return await job  # a cancel of the caller's task cancels the job too
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if self.closed and job.cancelled() and not (caller and caller.cancelling()):
                raise RuntimeError(CLOSED_CLIENT) from None
            raise
        finally:
            self._running.discard(job)

    # -- whole generations ------------------------------------------------------------------

    async def generate(
        self,
        request: AnyRequest,
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
        if task.task_id in self._v2_tasks:
            video = await self._v2_video(snapshot)
        else:
            assert snapshot.file_id is not None  # noqa: S101 - a V1 Success always has a file
            video = task.video or await self.get_file(snapshot.file_id)
        path = None
        if dest is not None:
            target = await asyncio.to_thread(_target_path, dest, task.task_id)
            path = await self.download(video, target, on_progress=on_progress)
        return Generation(task.task_id, snapshot, video, path)

    async def generate_many(
        self,
        requests: Iterable[AnyRequest] | AsyncIterable[AnyRequest],
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

        Raises:
            RuntimeError: the client was closed before the input ended (the outcomes of the
                generations in flight are yielded first; no further request is read).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._open()
        directory = None
        if dest_dir is not None:
            directory = Path(dest_dir)
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        running: set[asyncio.Task[GenerationOutcome]] = set()

        async def one(index: int, request: AnyRequest) -> GenerationOutcome:
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

        inputs = _aiter(requests)
        cut_short = False
        try:
            for index in itertools.count():
                if self.closed:  # not one more read: each request read now would only fail
                    cut_short = True
                    break
                try:
                    request = await anext(inputs)
                except StopAsyncIteration:
                    break
                async for outcome in drain(concurrency - 1):
                    yield outcome
                running.add(asyncio.get_running_loop().create_task(one(index, request)))
            async for outcome in drain(0):
                yield outcome
            if cut_short:
                raise RuntimeError(CLOSED_CLIENT)
        finally:
            await inputs.aclose()
            for job in running:
                job.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)


def _checked_key(api_key: str | None) -> str:
    """The API key given (else ``MINIMAX_API_KEY``), without surrounding whitespace.

    Raises:
        ConfigurationError: there is none, or it holds a control character (no header may
            carry one, so every call would fail); the key itself is never quoted.
    """
    key = (api_key if api_key is not None else os.environ.get("MINIMAX_API_KEY", "")).strip()
    if not key:
        raise ConfigurationError("no API key: pass Client(api_key=...) or set MINIMAX_API_KEY")
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise ConfigurationError(
            "the API key holds a control character (a line break?): check how it was copied or read"
        )
    return key


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


def _is_v2_payload(payload: object) -> bool:
    """Whether a journaled request body went to the V2 API (its model says so)."""
    return isinstance(payload, dict) and Dialect.of_model(payload.get("model")) is Dialect.V2


async def _aiter(
    items: Iterable[AnyRequest] | AsyncIterable[AnyRequest],
) -> AsyncGenerator[AnyRequest, None]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


@functools.cache  # reading the installed metadata took about 6 ms of the event loop per client
def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("minimax-s2v")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        own = "unknown"
    return f"minimax-s2v/{own} aiohttp/{aiohttp.__version__}"

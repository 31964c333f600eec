"""Attacks from outside on snapshots kept as atoms, V2 in-flight slots, requests and claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from minimax_s2v import (
    Client,
    Dialect,
    H3Request,
    InvalidRequestError,
    RateLimit,
    StoreError,
    SubjectReference,
    SubmissionConflictError,
    SubmissionUncertainError,
    Task,
    TaskStatus,
    VideoRequest,
)
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from minimax_s2v.receiver import CallbackReceiver
from minimax_s2v.stores import MemoryStore, SQLiteStore
from tests.client_setup import TEST_RETRY, face_request, fast_client
from tests.receiver_setup import new_receiver, served_client, status_update

FACE = "https://example.com/face.jpg"


def h3(prompt: str = "She turns to the camera and smiles.") -> H3Request:
    return H3Request(prompt, references=[FACE])


class _UnmarkableStore(MemoryStore):
    """Records submissions, but cannot record the task one created."""

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        raise OSError("disk full")


async def test_a_v2_task_whose_journal_entry_failed_keeps_its_slot() -> None:
    """A created V2 task that the journal could not record still holds its in-flight slot.

    The task exists and runs (StoreError says so): freeing its slot at once lets the next
    submission past the cap, and the API refuses it (or, worse, the client counts wrong
    for good).
    """
    limits = RateLimit(v2_submit_rpm=None, v2_max_in_flight=1)
    async with Emulator(durations=Durations(queueing=30.0), v2_max_in_flight=1) as emu:
        async with fast_client(emu, rate_limit=limits, store=_UnmarkableStore()) as client:
            with pytest.raises(StoreError) as failed:
                await client.submit(h3("first"))
            first_id = failed.value.task_id
            assert first_id is not None
            nxt = asyncio.create_task(client.submit(h3("next")))
            await asyncio.sleep(0.2)
            assert not nxt.done()  # the one slot is the first task's
            assert emu.counters.requests["v2_submit"] == {"ok": 1}
            assert await client.task(first_id).cancel()
            with pytest.raises(StoreError) as again:
                await asyncio.wait_for(nxt, 5)  # the slot freed by the cancel
            assert again.value.task_id not in (None, first_id)
        assert emu.counters.requests["v2_submit"] == {"ok": 2}


class _StallingStore(MemoryStore):
    """Holds the first task's journal entry until told to go on; the others pass."""

    def __init__(self) -> None:
        super().__init__()
        self.marking = asyncio.Event()
        self.go_on = asyncio.Event()
        self.marked: list[str] = []

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        self.marked.append(task_id)
        if len(self.marked) == 1:
            self.marking.set()
            await self.go_on.wait()
        await super().mark_submitted(nonce, task_id)


async def test_a_v2_submit_cancelled_after_creation_keeps_the_task_slot() -> None:
    """A submit() cancelled while its created task is journaled leaves the slot to the task.

    The task exists (the create call answered); the caller gave up on the handle, not the
    task: its slot frees when it ends (it is followed until then), not at the cancel.
    """
    limits = RateLimit(v2_submit_rpm=None, v2_max_in_flight=1)
    store = _StallingStore()
    async with Emulator(durations=Durations(queueing=30.0), v2_max_in_flight=1) as emu:
        async with fast_client(emu, rate_limit=limits, store=store) as client:
            first = asyncio.create_task(client.submit(h3("first")))
            await asyncio.wait_for(store.marking.wait(), 5)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            store.go_on.set()
            nxt = asyncio.create_task(client.submit(h3("next")))
            await asyncio.sleep(0.2)
            assert not nxt.done()  # the one slot is the first task's
            assert emu.counters.requests["v2_submit"] == {"ok": 1}
            assert await client.task(store.marked[0]).cancel()
            second = await asyncio.wait_for(nxt, 5)  # the slot freed by the cancel
            assert second.task_id != store.marked[0]
            assert second.status is not TaskStatus.CANCELLED
        assert emu.counters.requests["v2_submit"] == {"ok": 2}


async def test_resume_does_not_count_a_v2_task_twice() -> None:
    """resume() on a client that follows its V2 tasks already takes no second slot for them.

    Each call re-attaches to every unfinished task in the store, those this client submitted
    included: counted again, they kept the next submissions waiting for room that was free.
    """
    limits = RateLimit(v2_submit_rpm=None, v2_max_in_flight=2)
    async with Emulator(durations=Durations(queueing=30.0), v2_max_in_flight=2) as emu:
        async with fast_client(emu, rate_limit=limits) as client:
            first = await client.submit(h3("first"))
            resumed = await client.resume()
            assert [task.task_id for task in resumed.tasks] == [first.task_id]
            await client.resume()  # twice, as a service that re-attaches now and then
            second = await asyncio.wait_for(client.submit(h3("second")), 5)
            assert second.task_id != first.task_id
        assert emu.counters.requests["v2_submit"] == {"ok": 2}


@asynccontextmanager
async def api_server(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a loopback port of its own: its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def journaled_client(
    app: web.Application, journal: Path
) -> AsyncIterator[tuple[Client, aiohttp.ClientSession, SQLiteStore, CallbackReceiver]]:
    """A client of ``app`` with a receiver served and a SQLite journal at ``journal``.

    Also yields an HTTP session to post callbacks with, the journal and the receiver.
    """
    receiver = new_receiver()
    store = SQLiteStore(journal)
    async with api_server(app) as base_url, receiver.serve("127.0.0.1", 0):
        client = Client("key", base_url=base_url, receiver=receiver, store=store, retry=TEST_RETRY)
        async with client, aiohttp.ClientSession() as http:
            yield client, http, store, receiver
        await store.close()


async def recovered(client: Client, lost: SubmissionUncertainError) -> Task:
    """The task ``client`` adopts for ``lost`` (within a few seconds)."""
    async with asyncio.timeout(5):
        while (task := client.recover(lost)) is None:
            await asyncio.sleep(0.01)
    return task


def losing_create(urls: list[str]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A create endpoint that records each callback URL and drops the answer (uncertain)."""

    async def create(request: web.Request) -> web.StreamResponse:
        urls.append((await request.json())["callback_url"])
        assert request.transport is not None
        request.transport.close()  # the answer is lost
        return web.Response()

    return create


async def test_a_query_answered_for_another_task_does_not_adopt_a_claim() -> None:
    """A claim is adopted only when the query of *its* task id shows that task.

    The submission's answer is lost; a forged callback on its URL claims task 111. A broken
    proxy answers every query with the one task it cached, 999: that answer shows 999, not
    111. The real task's callback (999) must then be adopted, not a conflict between the two.
    """
    real = "999"
    urls: list[str] = []

    async def query(request: web.Request) -> web.Response:
        return web.json_response(
            {"task_id": real, "status": "Processing", "base_resp": {"status_code": 0}}
        )

    app = web.Application()
    app.router.add_post("/v1/video_generation", losing_create(urls))
    app.router.add_get("/v1/query/video_generation", query)
    receiver = new_receiver()
    async with api_server(app) as base_url, receiver.serve("127.0.0.1", 0):
        client = Client("key", base_url=base_url, receiver=receiver, retry=TEST_RETRY)
        async with client, aiohttp.ClientSession() as http:
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(face_request())
            for task_id in ("111", real):
                async with http.post(urls[0], json=status_update(task_id, "processing")) as r:
                    assert r.status == 200
            try:
                task = await recovered(client, lost.value)
            except SubmissionConflictError as error:
                pytest.fail(f"the answer for {real} adopted 111 too: {error}")
            assert task.task_id == real


async def test_a_flood_of_one_claim_does_not_grow_the_journal(tmp_path: Path) -> None:
    """Repeating a callback on an uncertain submission's URL writes the journal a few times.

    The answer is lost; whoever holds the URL sends one claim (a task the API says does not
    exist) a hundred times. Rule 4: what changes nothing is acknowledged without a write,
    so that a URL's holder cannot grow the journal. A file journal is not trimmed.
    """
    urls: list[str] = []
    queries = 0

    async def query(request: web.Request) -> web.Response:
        nonlocal queries
        queries += 1
        return web.json_response({"base_resp": {"status_code": 2013, "status_msg": "no task"}})

    app = web.Application()
    app.router.add_post("/v1/video_generation", losing_create(urls))
    app.router.add_get("/v1/query/video_generation", query)
    async with journaled_client(app, tmp_path / "journal.db") as (client, http, store, receiver):
        with pytest.raises(SubmissionUncertainError):
            await client.submit(face_request())
        for _ in range(100):
            async with http.post(urls[0], json=status_update("111", "processing")) as r:
                assert r.status == 200
        journaled = await store.events("111")
    assert queries == 1  # one check for the one claim
    assert len(journaled) <= receiver.early_limit


@pytest.mark.parametrize(
    "task_id",
    [
        "1/../../../v1/files/retrieve",  # another endpoint of the API, with the key
        "../video_generation",
        "42?page_size=1",
        "",
        "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, MiniMax's ids are ASCII
    ],
)
async def test_a_task_id_that_is_no_id_is_refused_before_any_call(task_id: str) -> None:
    """client.task() and get_task() refuse what is not a task id, and send nothing.

    A V2 task id is a path segment: a service that passes on an id a user typed must not
    have its key sent to whatever path that id walks to.
    """
    paths: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.json_response({"base_resp": {"status_code": 0}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    async with api_server(app) as base_url:
        async with Client("key", base_url=base_url, retry=TEST_RETRY) as client:
            with pytest.raises(ValueError, match="not a task or file id"):
                client.task(task_id, model="MiniMax-H3")
            with pytest.raises(ValueError, match="not a task or file id"):
                await client.get_task(task_id)
    assert paths == []


class _Shifty(str):
    """A str whose checks see digits while its real text walks the path."""

    __slots__ = ()

    def isdigit(self) -> bool:
        return True

    def isascii(self) -> bool:
        return True

    def __str__(self) -> str:
        return self


async def test_a_str_subclass_task_id_is_read_as_its_real_text() -> None:
    """A task id is checked as the text it holds, not as its own methods describe it."""
    async with Client("key", base_url="http://127.0.0.1:9", retry=TEST_RETRY) as client:
        with pytest.raises(ValueError, match="not a task or file id"):
            client.task(_Shifty("1/../../v1/files/retrieve"), model="MiniMax-H3")
        task = client.task(_Shifty("4242"))
        assert type(task.task_id) is str
        assert task.task_id == "4242"


class _Agreeable(int):
    """An int that tells every comparison it is in range."""

    __slots__ = ()

    def __ge__(self, other: object) -> bool:
        return True

    def __le__(self, other: object) -> bool:
        return True

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False


async def test_an_int_subclass_duration_is_checked_as_the_number_sent() -> None:
    """A duration whose comparisons lie is refused by preflight: what is checked is sent.

    ``json`` sends an int subclass by its real value (99 s), whatever its methods say.
    """
    async with Emulator() as emu, fast_client(emu) as client:
        request = H3Request("She smiles.", references=[FACE], duration=_Agreeable(99))
        assert type(request.duration) is int
        with pytest.raises(InvalidRequestError, match="duration"):
            await client.submit(request)
        assert emu.counters.requests_to("v2_submit") == 0


class _Changeable(SubjectReference):
    """A subject reference whose image is a URL when first read, a local path after."""

    reads = 0

    @property
    def image(self) -> tuple[str, ...]:
        type(self).reads += 1
        return ("https://example.com/face.jpg",) if type(self).reads == 1 else ("/etc/hostname",)


def test_a_subject_reference_subclass_is_kept_as_what_it_held() -> None:
    """A SubjectReference subclass in a request is read once, into a plain one.

    Read again, this one would show preflight an https URL and the sender a local file.
    """
    changeable = object.__new__(_Changeable)
    for name, value in (("image", ("https://example.com/face.jpg",)), ("type", "character")):
        SubjectReference.__dict__[name].__set__(changeable, value)  # its own slots
    request = VideoRequest(subject=[changeable], prompt="x")
    assert [type(s) for s in request.subject] == [SubjectReference]
    assert request.subject[0].image == request.subject[0].image


async def test_closing_the_client_ends_a_download_in_progress(tmp_path: Path) -> None:
    """close() while a video streams in ends that download with RuntimeError, no file left.

    aiohttp never wakes a body read whose session closed (its read timeout goes with the
    connection): the download waited forever, and so did a service shutting down.
    """
    async with Emulator(download_rate=20_000) as emu:  # a 1 MB video takes ~50 s
        client = fast_client(emu)
        async with client:
            task = await client.submit(face_request())
            await task.wait(5)
            download = asyncio.create_task(client.download(task, tmp_path / "v.mp4"))
            async with asyncio.timeout(5):
                while not any(tmp_path.iterdir()):  # its partial file: bytes are coming
                    await asyncio.sleep(0.01)
            await client.close()
            with pytest.raises(RuntimeError, match="this Client is closed"):
                await asyncio.wait_for(download, 10)
    assert list(tmp_path.iterdir()) == []


async def test_a_claim_on_a_v2_url_does_not_move_a_v1_task_to_the_v2_api() -> None:
    """A forged claim on a V2 submission's URL naming this client's V1 task leaves it on V1.

    The answer to the V2 submission is lost. The claim is checked with a V2 query (the
    submission's API), which does not show a V1 task. The task must not be marked V2 on the
    callback's word: every later query of it went to V2, which answers "invalid task_id",
    and its waiters failed with TaskExpiredError.
    """
    faults = FaultPlan(endpoints={Endpoint.V2_SUBMIT: EndpointFaults(lost_response=1.0)})
    async with Emulator(durations=Durations(queueing=30.0), faults=faults) as emu:
        async with served_client(emu, rate_limit=RateLimit(v2_submit_rpm=None)) as (client, rx):
            v1 = await client.submit(face_request())
            with pytest.raises(SubmissionUncertainError) as lost:
                await client.submit(h3())
            forged = status_update(v1.task_id, "processing")
            async with aiohttp.ClientSession() as http:
                async with http.post(rx.callback_url(lost.value.nonce), json=forged) as r:
                    assert r.status == 200
            async with asyncio.timeout(5):
                while emu.counters.requests_to("v2_query") == 0:  # the claim is checked
                    await asyncio.sleep(0.01)
            assert client.dialect_of(v1.task_id) is Dialect.V1
            snapshot = await client.get_task(v1.task_id)
            assert snapshot.status is TaskStatus.QUEUEING
            assert not v1.done

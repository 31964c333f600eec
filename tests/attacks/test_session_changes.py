"""Attacks on what the hot paths changed: receiver, tracker, stores, history, retries, parsers.

The receiver's body fast path, the tracker's fast path for callbacks, the memory store's
layout, the task history, the retry mechanism, V2's direct parser and the submission of
URL-only requests. Each test sends what a hostile callback sender, a broken proxy or host,
a buggy server or a user misusing the API would, and pins the promise that must hold.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from minimax_s2v import (
    Client,
    ConfigurationError,
    DownloadError,
    EventSource,
    H3Request,
    InvalidRequestError,
    RetryPolicy,
    SubjectReference,
    TaskSnapshot,
    TaskStatus,
    Timeouts,
    TransportError,
    VideoRequest,
    set_testing,
)
from minimax_s2v._retry import is_testing, retry_call
from minimax_s2v._tasks import TaskRecord
from minimax_s2v.emulator import Durations, Emulator, Endpoint, EndpointFaults, FaultPlan
from minimax_s2v.receiver import CallbackReceiver, CallbackVerdict
from minimax_s2v.stores import (
    MemoryStore,
    SQLiteStore,
    StoredSubmission,
    SubmissionState,
    TaskStore,
)
from tests.client_setup import face_request, fast_client
from tests.media import mp4
from tests.profiles import examples
from tests.receiver_setup import (
    MOUNTS,
    SECRET,
    mounted,
    served_client,
    status_update,
    uncertain_submission,
)
from tests.test_download_hostile import video_at
from tests.waiting import claim_weighed, wait_until

# -- the receiver's hot path ------------------------------------------------------------------

MAX_BODY = 1024
TASK = "123456789012345"


class RecordingSink:
    """A sink that records each update it is handed (the receiver's only side effect)."""

    def __init__(self) -> None:
        self.got: list[TaskSnapshot] = []

    async def deliver(self, nonce: str, snapshot: TaskSnapshot) -> CallbackVerdict:
        """Record the update."""
        self.got.append(snapshot)
        return CallbackVerdict.RECORDED


def update(status: str = "Processing", pad: int = 0) -> bytes:
    """A status callback's body, padded with spaces to ``pad`` bytes at least."""
    body = json.dumps(
        {
            "task_id": TASK,
            "status": status,
            "file_id": "",
            "base_resp": {"status_code": 0, "status_msg": "success"},
        }
    ).encode()
    return body + b" " * max(0, pad - len(body))


def post_head(path: str, length: int, *, close: bool = True, extra: str = "") -> bytes:
    """The head of a JSON POST declaring a Content-Length of ``length``."""
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}{connection}\r\n"
    ).encode()


def post(path: str, body: bytes, *, close: bool = True, extra: str = "") -> bytes:
    """A POST with a Content-Length."""
    return post_head(path, len(body), close=close, extra=extra) + body


def chunked(body: bytes, size: int = 7) -> bytes:
    """``body`` in chunked transfer coding, ``size`` bytes a chunk."""
    out = b""
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def chunked_head(path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")


def statuses(raw: bytes, *, head: bool = False) -> list[int]:
    """The statuses of the HTTP/1.1 responses in ``raw``, in order (bodies skipped)."""
    found = []
    position = 0
    while (match := _STATUS_LINE.match(raw, position)) is not None:
        status = int(match.group(1))
        found.append(status)
        end = raw.index(b"\r\n\r\n", match.end() - 2) + 4
        headers = raw[match.end() : end].decode("latin-1").lower()
        length = re.search(r"content-length:\s*(\d+)", headers)
        if status >= 200 and not head:
            if length is not None:
                end += int(length.group(1))
            elif "chunked" in headers:
                end = raw.index(b"\r\n0\r\n\r\n", end) + 7
            else:  # delimited by the connection's end
                end = len(raw)
        position = end
    assert position == len(raw), f"unparsed answer bytes: {raw[position:][:200]!r}"
    return found


async def exchange(port: int, *pieces: bytes, pause: float = 0.05, head: bool = False) -> list[int]:
    """Write ``pieces`` on one connection (pausing between them); the statuses answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(pause)
            writer.write(piece)
            await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
    return statuses(raw, head=head)


@asynccontextmanager
async def receiving(kind: str) -> AsyncIterator[tuple[int, str, RecordingSink, CallbackReceiver]]:
    """A receiver in host ``kind`` with one expected nonce: port, its path, sink, receiver."""
    public = None if kind == "serve" else "http://127.0.0.1:1/minimax"
    receiver = CallbackReceiver(public, secret=SECRET, max_body=MAX_BODY, fallback_after=30.0)
    sink = RecordingSink()
    async with mounted(kind, receiver) as base:
        assert base.port is not None
        url = receiver.expect("nonce-0123456789", sink)
        yield base.port, url.path, sink, receiver


@pytest.mark.parametrize("kind", MOUNTS)
async def test_chunked_and_split_bodies_are_recorded_once_each(kind: str) -> None:
    """A body in chunks, or split across TCP writes, is read whole and delivered once."""
    async with receiving(kind) as (port, path, sink, _):
        body = update()
        assert await exchange(port, chunked_head(path) + chunked(body)) == [200]
        assert await exchange(port, chunked_head(path), chunked(body)) == [200]
        half = len(body) // 2
        request = post(path, body)
        head_end = request.index(b"\r\n\r\n") + 4
        assert await exchange(port, request[:head_end], body[:half], body[half:]) == [200]
        assert await exchange(
            port, request[:10], request[10 : head_end + 3], request[head_end + 3 :]
        ) == [200]
        assert len(sink.got) == 4
        assert all(snapshot.task_id == TASK for snapshot in sink.got)


@pytest.mark.parametrize("kind", MOUNTS)
async def test_declared_length_over_the_cap_with_a_small_body_is_413(kind: str) -> None:
    """Content-Length above max_body is refused (413) however little actually follows."""
    async with receiving(kind) as (port, path, sink, _):
        body = update()
        head = post_head(path, MAX_BODY + 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(10):
            line = await reader.readline()
        writer.write(b" " * (MAX_BODY + 1 - len(body)))  # the rest: the server stops lingering
        writer.close()
        await writer.wait_closed()
        assert int(line.split()[1]) == 413
        assert sink.got == []


@pytest.mark.parametrize("kind", MOUNTS)
@pytest.mark.parametrize("coding", ["length", "chunked"])
async def test_a_body_over_the_cap_in_one_segment_is_413(kind: str, coding: str) -> None:
    """A valid update padded past max_body, sent in one write, is refused and not delivered."""
    async with receiving(kind) as (port, path, sink, _):
        body = update(pad=MAX_BODY + 1)
        request = (
            post(path, body) if coding == "length" else chunked_head(path) + chunked(body, 4096)
        )
        assert await exchange(port, request) == [413]
        at_cap = update(pad=MAX_BODY)
        assert await exchange(port, post(path, at_cap)) == [200]  # exactly max_body is fine
        assert len(sink.got) == 1


@pytest.mark.parametrize("kind", MOUNTS)
async def test_expect_100_continue(kind: str) -> None:
    """A client that waits for 100 Continue gets it, then its update is recorded once."""
    async with receiving(kind) as (port, path, sink, _):
        body = update()
        request = post(path, body, extra="Expect: 100-continue\r\n")
        head_end = request.index(b"\r\n\r\n") + 4
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request[:head_end])
        await writer.drain()
        async with asyncio.timeout(10):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(body)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
        writer.close()
        assert statuses(raw) == [200]
        assert len(sink.got) == 1


@pytest.mark.parametrize("kind", MOUNTS)
async def test_pipelined_callbacks_in_one_write(kind: str) -> None:
    """Two callbacks back to back in one write on a kept-alive connection: both, in order."""
    async with receiving(kind) as (port, path, sink, _):
        first = post(path, update("Queueing"), close=False)
        second = post(path, update("Processing"))
        assert await exchange(port, first + second) == [200, 200]
        assert [s.status_text for s in sink.got] == ["Queueing", "Processing"]
        # A challenge and an update pipelined, then a bad path: each answered on its own.
        challenge = post(path, b'{"challenge": "abc"}', close=False)
        bad = post("/minimax/nonce-0123456789/" + "0" * 32, update(), close=False)
        assert await exchange(port, challenge + bad + second) == [200, 404, 200]
        assert len(sink.got) == 3


@pytest.mark.parametrize("kind", MOUNTS)
async def test_odd_spellings_of_the_path(kind: str) -> None:
    """Slashes around the path are allowed; anything else that is not the URL gets 404."""
    async with receiving(kind) as (port, path, sink, _):
        mount, nonce, token = path.rsplit("/", 2)
        # A query string is not part of the path: the token still verifies.
        accepted = [
            f"{mount}/{nonce}/{token}/",
            f"{mount}//{nonce}/{token}",
            f"{mount}/{nonce}/{token}?x=1",
        ]
        refused = [
            f"{mount}/{nonce}//{token}",
            f"{mount}/{nonce}/{token}%0A",
            f"{mount}/{nonce}/{token}%20",
            f"{mount}/{nonce}/{token[:-1]}%{ord(token[-1]):02X}",
            f"{mount}/{nonce}/{token.upper()}",
            f"{mount}/{nonce}/{token}/x",
            f"{mount}/{nonce}/{token}.json",
        ]
        for spelling in accepted:
            assert await exchange(port, post(spelling, update())) == [200], spelling
        for spelling in refused:
            got = await exchange(port, post(spelling, update()))
            assert got in ([404], [400]), (spelling, got)
        # Non-ASCII digits in the request target, as raw UTF-8 (no client would encode them).
        arabic = f"{mount}/{nonce}/{token[:-1]}\u0663".encode()
        raw = (
            b"POST "
            + arabic
            + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
            + str(len(update())).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + update()
        )
        got = await exchange(port, raw)
        assert got in ([404], [400]), got
        assert len(sink.got) == len(accepted)


@pytest.mark.parametrize("kind", MOUNTS)
async def test_other_methods_get_405_and_change_nothing(kind: str) -> None:
    """HEAD, GET (with a body), PUT, DELETE and OPTIONS on a valid URL: 405, nothing delivered."""
    async with receiving(kind) as (port, path, sink, _):
        body = update()
        for method in ("GET", "PUT", "DELETE", "OPTIONS", "PATCH"):
            request = post(path, body).replace(b"POST", method.encode(), 1)
            assert await exchange(port, request) == [405], method
        head = f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert await exchange(port, head, head=True) == [405]
        get = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert await exchange(port, get) == [405]
        assert sink.got == []


@pytest.mark.parametrize("kind", MOUNTS)
async def test_broken_uploads_get_an_answer_and_the_receiver_goes_on(kind: str) -> None:
    """A body cut short, a bad chunk, an empty body: no 500, nothing delivered, still serving."""
    async with receiving(kind) as (port, path, sink, _):
        body = update()
        # Cut short: the connection closes after half the declared body.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(path, body)[: -len(body) // 2])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        bad_chunk = chunked_head(path) + b"zz\r\n" + body + b"\r\n0\r\n\r\n"
        got = await exchange(port, bad_chunk)
        assert got in ([], [400]), got
        assert await exchange(port, post(path, b"")) == [400]
        assert await exchange(port, post(path, b"\xff\xfe{}")) == [400]
        assert await exchange(port, post(path, b"[]")) == [400]
        assert sink.got == []
        assert await exchange(port, post(path, body)) == [200]
        assert len(sink.got) == 1


@pytest.mark.parametrize("kind", MOUNTS)
async def test_complete_request_then_hang_up(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """Requests sent whole and the connection closed at once: never an unhandled error.

    Each update is delivered at most once (the sender may not see the answer).
    """
    async with receiving(kind) as (port, path, sink, receiver):
        for _ in range(30):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post(path, update()))
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.2)
        assert len(sink.got) <= 30
        assert await exchange(port, post(path, update())) == [200]
        assert receiver.stats() is not None
    errors = [r for r in caplog.get_records("call") if r.levelname in ("ERROR", "CRITICAL")]
    assert errors == [], [r.getMessage() for r in errors]


async def test_core_refuses_odd_paths_directly() -> None:
    """The core's path rule, without a host: a newline, Unicode digits, a NUL are refused."""
    receiver = CallbackReceiver("http://127.0.0.1:1/minimax", secret=SECRET, max_body=MAX_BODY)
    sink = RecordingSink()
    url = receiver.expect("nonce-0123456789", sink)
    nonce, token = url.parts[-2], url.parts[-1]
    body = update()
    assert (await receiver.process("POST", f"{nonce}/{token}", body))[0] == 200
    assert (await receiver.process("POST", f"//{nonce}/{token}//", body))[0] == 200
    for path in (
        f"{nonce}/{token}\n",
        f"\n{nonce}/{token}",
        f"{nonce}/{token}\x00",
        f"{nonce}/{token[:-1]}\u0663",
        f"{nonce[:-1]}\u0663/{token}",
        f"{nonce}\n/{token}",
        f"{nonce}/{token}/\n",
        "",
        "/",
        f"{nonce}",
        f"{token}",
    ):
        assert (await receiver.process("POST", path, body))[0] == 404, repr(path)
    too_big = update(pad=MAX_BODY + 1)
    assert (await receiver.process("POST", f"{nonce}/{token}", too_big))[0] == 413
    assert len(sink.got) == 2
    await receiver.close()


async def test_hang_up_while_a_host_middleware_waits(caplog: pytest.LogCaptureFixture) -> None:
    """A sender hanging up while the host's middleware awaits: a broken upload, not an error.

    Mounted with setup() in an app whose middleware awaits, a request sent whole by a sender
    that then hangs up leaves a body that is complete but holds the connection's error. It is
    a broken upload (counted, answered 400 to nobody), never an unhandled error in the host.
    """
    entered = asyncio.Event()

    @web.middleware
    async def slow(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        entered.set()
        await asyncio.sleep(0.2)  # an auth check, a database: anything that awaits
        return await handler(request)

    receiver = CallbackReceiver("http://127.0.0.1:1/minimax", secret=SECRET, max_body=MAX_BODY)
    sink = RecordingSink()
    host = web.Application(middlewares=[slow])
    async with mounted("setup", receiver, "/minimax", host=host) as url:
        port = url.port
        assert port is not None
        path = receiver.expect("nonce-0123456789", sink).path
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(path, update()))
        await writer.drain()
        await asyncio.wait_for(entered.wait(), 10)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.5)  # the middleware goes on, then the receiver's handler runs
        assert await exchange(port, post(path, update())) == [200]
    errors = [r for r in caplog.get_records("call") if r.levelname in ("ERROR", "CRITICAL")]
    assert errors == [], [r.getMessage() for r in errors]
    assert receiver.stats().callbacks.malformed == 1
    assert len(sink.got) == 1


# -- the tracker's fast path for a bound nonce ------------------------------------------------


async def test_a_bound_nonce_naming_another_task_is_409_and_changes_nothing() -> None:
    """A followed task's URL with another task id in the body: 409, not journaled or applied."""
    async with Emulator(durations=Durations(preparing=60.0)) as emu:
        async with served_client(emu) as (client, receiver):
            task = await client.submit(face_request())
            other = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            events = len(await client.store.events())
            seen, other_seen, other_status = list(task.events), list(other.events), other.status
            async with aiohttp.ClientSession() as http:
                for status in ("Processing", "Success", "Fail"):
                    body = status_update(other.task_id, status, "1" if status == "Success" else "")
                    async with http.post(url, json=body) as answer:
                        assert answer.status == 409, status
                assert len(await client.store.events()) == events
                assert task.events == seen
                assert other.events == other_seen
                assert other.status is other_status
                assert client.stats().conflicts == 3
                assert receiver.stats().callbacks.conflict == 3
                # The URL still works for its own task.
                async with http.post(url, json=status_update(task.task_id, "Processing")) as answer:
                    assert answer.status == 200
            assert task.status is TaskStatus.PROCESSING
            assert other.status is other_status


async def test_callbacks_after_the_end_are_duplicates_that_cost_nothing() -> None:
    """A finished task's URL: any status is a duplicate (200), no query, no journal entry."""
    async with Emulator() as emu:
        async with served_client(emu) as (client, _):
            task = await client.submit(face_request())
            await task.wait(timeout=20)
            url = URL(emu.task(task.task_id).callback_url or "")
            queries = emu.counters.requests_to("query")
            events = len(await client.store.events())
            seen = list(task.events)
            async with aiohttp.ClientSession() as http:
                for status in (
                    "Preparing",
                    "Processing",
                    "Success",
                    "Fail",
                    "Expired",
                    "cancelled",
                ):
                    body = status_update(task.task_id, status, "999" if status == "Success" else "")
                    async with http.post(url, json=body) as answer:
                        assert answer.status == 200, status
            assert emu.counters.requests_to("query") == queries
            assert len(await client.store.events()) == events
            assert task.events == seen
            assert task.status is TaskStatus.SUCCESS


async def test_a_forged_final_status_is_confirmed_before_it_is_believed() -> None:
    """A forged success or failure on a followed task's URL: queried, the API believed."""
    async with Emulator(durations=Durations(preparing=60.0)) as emu:
        async with served_client(emu) as (client, _):
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            async with aiohttp.ClientSession() as http:
                before = emu.counters.queries_by_task[task.task_id]
                forged = status_update(task.task_id, "Success", "424242")
                async with http.post(url, json=forged) as answer:
                    assert answer.status == 200
                await claim_weighed(emu, task.task_id, before)
                assert not task.done
                assert task.status is TaskStatus.PREPARING
                assert task.video is None
                async with http.post(url, json=status_update(task.task_id, "failed")) as answer:
                    assert answer.status == 200
            assert not task.done
            assert all(event.snapshot.file_id != "424242" for event in task.events)
            # Not believed, so not journaled as confirmed either.
            confirmed = [e for e in await client.store.events(task.task_id) if e[2]]
            assert all(snapshot.status is TaskStatus.PREPARING for snapshot, _, _ in confirmed)


async def test_an_uncertain_submission_is_not_taken_by_the_fast_path() -> None:
    """An uncertain submission's URL: a callback naming any task is a claim, checked first."""
    emu = Emulator(
        faults=FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)}),
        durations=Durations(preparing=60.0),
    )
    async with emu:
        async with served_client(emu) as (client, _):
            lost, real = await uncertain_submission(client, emu)
            url = URL(emu.task(real).callback_url or "")
            async with aiohttp.ClientSession() as http:
                forged = status_update("999999999999", "Processing")
                async with http.post(url, json=forged) as answer:
                    assert answer.status == 200  # a claim, kept until the API is asked
                await wait_until(lambda: client.stats().reconciliations >= 1, "the check")
                await asyncio.sleep(0.1)
                assert client.recover(lost) is None
                async with http.post(url, json=status_update(real, "Processing")) as answer:
                    assert answer.status == 200
            await wait_until(lambda: client.recover(lost) is not None, "the adoption")
            adopted = client.recover(lost)
            assert adopted is not None
            assert adopted.task_id == real


# -- MemoryStore's layout ---------------------------------------------------------------------

Op = tuple[str, tuple[object, ...]]


def stored(nonce: str, label: str | None = "line 1", **fields: object) -> StoredSubmission:
    values: dict[str, object] = {
        "nonce": nonce,
        "fingerprint": "f" * 32,
        "payload": {"model": "S2V-01", "prompt": nonce},
        "label": label,
        "state": SubmissionState.SENDING,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    values.update(fields)
    return StoredSubmission(**values)  # type: ignore[arg-type]


async def contents(store: TaskStore, task_ids: tuple[str, ...]) -> dict[str, object]:
    """Everything a store answers, in a comparable form."""
    unfinished = await store.unfinished()
    return {
        "unfinished": sorted((t.task_id, repr(t.snapshot), repr(t.submission)) for t in unfinished),
        "uncertain": sorted(repr(s) for s in await store.uncertain()),
        "submissions": [repr(s) for s in await store.submissions()],
        "tasks": {task_id: repr(await store.task(task_id)) for task_id in task_ids},
        "events": repr(await store.events()),
    }


SCENARIOS: dict[str, list[Op]] = {
    "marked twice": [
        ("save_submission", (stored("nonce-aaaa"),)),
        ("mark_submitted", ("nonce-aaaa", "101")),
        ("mark_submitted", ("nonce-aaaa", "102")),
    ],
    "journaled again after its task": [
        ("save_submission", (stored("nonce-aaaa"),)),
        ("mark_submitted", ("nonce-aaaa", "101")),
        ("save_submission", (stored("nonce-aaaa"),)),
    ],
    "two submissions name one task, one dropped": [
        ("save_submission", (stored("nonce-aaaa"),)),
        ("save_submission", (stored("nonce-bbbb"),)),
        ("mark_submitted", ("nonce-aaaa", "101")),
        ("mark_submitted", ("nonce-bbbb", "101")),
        ("drop_submission", ("nonce-bbbb",)),
    ],
    "a task id with a tab and a newline": [
        ("save_submission", (stored("nonce-aaaa"),)),
        ("mark_submitted", ("nonce-aaaa", "1\t0\n1")),
    ],
    "an empty task id": [
        ("save_submission", (stored("nonce-aaaa"),)),
        ("mark_submitted", ("nonce-aaaa", "")),
        ("mark_uncertain", ("nonce-aaaa",)),
    ],
    "unknown nonces": [
        ("mark_submitted", ("nonce-zzzz", "101")),
        ("mark_uncertain", ("nonce-zzzz",)),
        ("drop_submission", ("nonce-zzzz",)),
    ],
    "uncertain after its task": [
        ("save_submission", (stored("nonce-aaaa"),)),
        ("mark_submitted", ("nonce-aaaa", "101")),
        ("mark_uncertain", ("nonce-aaaa",)),
    ],
    "separators in every text": [
        (
            "save_submission",
            (
                stored(
                    "nonce-aaaa",
                    label="a\tb\nc\r\u2028\x00é\t",
                    fingerprint="\t\n",
                    payload={"p": "a\tb\n\u2029", "k\t\n": [1, "\x00", None, "😀"]},
                ),
            ),
        ),
        ("mark_submitted", ("nonce-aaaa", "101")),
        ("save_submission", (stored("nonce-bbbb", label=None, fingerprint=""),)),
        ("mark_uncertain", ("nonce-bbbb",)),
    ],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_memory_store_answers_as_sqlite_does(name: str, tmp_path: Path) -> None:
    """Whatever is written, MemoryStore answers what the durable SQLite store answers."""
    task_ids = ("101", "102", "1\t0\n1", "")
    answers = []
    for store in (MemoryStore(), SQLiteStore(tmp_path / "j.db")):
        await store.open()
        try:
            for operation, arguments in SCENARIOS[name]:
                await getattr(store, operation)(*arguments)
            await store.save_event(
                TaskSnapshot("101", TaskStatus.PROCESSING, status_text="pro\tcessing\n"),
                EventSource.CALLBACK,
                confirmed=True,
            )
            answers.append(await contents(store, task_ids))
        finally:
            await store.close()
    memory, sqlite = answers
    assert memory == sqlite


async def test_memory_store_round_trips_lone_surrogates() -> None:
    """A lone surrogate in a label or payload comes back as it went in (SQLite refuses it)."""
    store = MemoryStore()
    odd = stored("nonce-aaaa", label="\ud800x", payload={"p": "\udfff", "\ud83d": 1})
    await store.save_submission(odd)
    await store.mark_submitted("nonce-aaaa", "101")
    assert await store.submission("nonce-aaaa") == attrs.evolve(
        odd, state=SubmissionState.SUBMITTED, task_id="101"
    )


async def test_two_submissions_naming_one_task_are_trimmed_together() -> None:
    """A server that answers one task id twice: once that task ends, both go past max_tasks."""
    store = MemoryStore(max_tasks=5)
    for i in range(4):
        await store.save_submission(stored(f"nonce-same-{i}"))
        await store.mark_submitted(f"nonce-same-{i}", "101")
    found = await store.task("101")
    assert found is not None
    assert found.submission is not None
    assert found.submission.nonce == "nonce-same-3"
    await store.drop_submission("nonce-same-3")
    found = await store.task("101")
    assert found is not None  # the others still name it
    assert found.submission is not None
    assert found.submission.task_id == "101"
    await store.save_event(
        TaskSnapshot("101", TaskStatus.SUCCESS, "9"), EventSource.POLL, confirmed=True
    )
    for i in range(10):
        await store.save_submission(stored(f"nonce-next-{i}"))
        await store.mark_submitted(f"nonce-next-{i}", str(200 + i))
        done = TaskSnapshot(str(200 + i), TaskStatus.FAIL)
        await store.save_event(done, EventSource.POLL, confirmed=True)
    kept = await store.submissions()
    assert len(kept) <= 6  # max_tasks, and the one saved last
    assert not [s for s in kept if s.nonce.startswith("nonce-same")]
    assert await store.task("101") is None


async def test_memory_store_after_many_submissions() -> None:
    """20 000 submissions: exactly the unfinished ones and the uncertain ones come back."""
    store = MemoryStore()
    for i in range(20_000):
        nonce = f"nonce-{i:08d}"
        await store.save_submission(stored(nonce, label=f"line\t{i}\n"))
        if i % 7 == 0:
            await store.mark_uncertain(nonce)
            continue
        await store.mark_submitted(nonce, str(10**12 + i))
        if i % 3:
            snapshot = TaskSnapshot(str(10**12 + i), TaskStatus.SUCCESS, str(i))
            await store.save_event(snapshot, EventSource.POLL, confirmed=True)
    unfinished = await store.unfinished()
    expected = [i for i in range(20_000) if i % 7 and not i % 3]
    assert sorted(int(t.task_id) - 10**12 for t in unfinished) == expected
    for task in unfinished:
        assert task.submission is not None
        assert task.submission.label == f"line\t{int(task.task_id) - 10**12}\n"
    uncertain = await store.uncertain()
    assert [s.nonce for s in uncertain] == [f"nonce-{i:08d}" for i in range(0, 20_000, 7)]


async def test_resume_from_a_memory_store_full_of_submissions() -> None:
    """A new client on the same MemoryStore re-attaches to exactly the unfinished tasks."""
    store = MemoryStore()
    async with Emulator(durations=Durations(preparing=60.0)) as emu:
        async with fast_client(emu, store=store) as first:
            tasks = [await first.submit(face_request(f"p{i}"), label=f"l\t{i}") for i in range(5)]
        for i in range(3000):  # finished tasks of earlier runs
            await store.save_submission(stored(f"nonce-old-{i:05d}"))
            await store.mark_submitted(f"nonce-old-{i:05d}", str(9 * 10**14 + i))
            snapshot = TaskSnapshot(str(9 * 10**14 + i), TaskStatus.SUCCESS, "1")
            await store.save_event(snapshot, EventSource.POLL, confirmed=True)
        async with fast_client(emu, store=store) as second:
            resumed = await second.resume()
            assert sorted(t.task_id for t in resumed.tasks) == sorted(t.task_id for t in tasks)
            assert sorted(t.label or "" for t in resumed.tasks) == [f"l\t{i}" for i in range(5)]
            assert resumed.uncertain == []


# -- TaskHistory: text in the record ------------------------------------------------------------

_SEPARATORS = st.sampled_from(["\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"])
_odd_text = st.one_of(
    st.text(max_size=12),
    st.builds("".join, st.lists(st.one_of(_SEPARATORS, st.sampled_from(["a", "ü", "K"])))),
)
_status_texts = st.one_of(
    st.sampled_from(
        ["Success", "success", "SUCCESS", "Fail", "failed", "Queueing", "queuing", "running"]
    ),
    st.sampled_from(["\u212a", "Succe\u017fs", "Fai\u0130", "processinG", " Processing", "Fail\t"]),
    _odd_text,
)


@st.composite
def snapshots(draw: st.DrawFn) -> TaskSnapshot:
    status = draw(st.sampled_from(list(TaskStatus)))
    optional = st.one_of(st.none(), _odd_text)
    return TaskSnapshot(
        draw(st.sampled_from(["7", "8", "7\t", ""])),
        status,
        file_id=draw(optional),
        width=draw(st.one_of(st.none(), st.integers(0, 4000))),
        height=draw(st.one_of(st.none(), st.integers(0, 4000))),
        error_code=draw(st.one_of(st.none(), st.integers(-1, 2000))),
        error_message=draw(optional),
        status_text=draw(st.one_of(st.just(status.value), _status_texts)),
        video_url=draw(optional),
    )


@settings(max_examples=examples(600), suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(snapshots(), st.sampled_from(list(EventSource))), max_size=12))
def test_task_history_gives_back_exactly_what_was_applied(
    updates: list[tuple[TaskSnapshot, EventSource]],
) -> None:
    """Any snapshots (separators, Unicode case tricks, other ids) come back equal, in order."""
    record = TaskRecord("7", None, None)
    before = datetime.now(UTC)
    for snapshot, source in updates:
        record.history.append(snapshot, source)
    events = record.history.events()
    assert len(record.history) == len(updates)
    assert [(e.snapshot, e.source) for e in events] == updates
    assert [type(e.snapshot.status_text) for e in events] == [str] * len(updates)
    assert all(before <= e.received_at <= datetime.now(UTC) for e in events)


async def test_task_events_keep_what_callbacks_said() -> None:
    """Progress callbacks with odd spellings and separators: Task.events says them back."""
    async with Emulator(durations=Durations(preparing=60.0)) as emu:
        async with served_client(emu) as (client, _):
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            sent = [
                ("queuing", 0, "success"),
                ("PROCESSING", 1013, "busy\tline\nnext\u2028end"),
            ]
            async with aiohttp.ClientSession() as http:
                for status, code, message in sent:
                    body = {
                        "task_id": task.task_id,
                        "status": status,
                        "file_id": "",
                        "base_resp": {"status_code": code, "status_msg": message},
                    }
                    async with http.post(url, json=body) as answer:
                        assert answer.status == 200
            callbacks = [e.snapshot for e in task.events if e.source is EventSource.CALLBACK]
            assert [(s.status_text, s.error_code, s.error_message) for s in callbacks] == [
                ("queuing", None, None),
                ("PROCESSING", 1013, "busy\tline\nnext\u2028end"),
            ]


# -- the retry mechanism ------------------------------------------------------------------------


class Flaky:
    """A call that fails with ``error`` every time, counting its calls."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        raise self.error


class _Halt(BaseException):
    """A BaseException of the application's own (as KeyboardInterrupt or SystemExit are)."""


async def test_a_cancellation_during_the_wait_ends_the_retries() -> None:
    """Cancelled while waiting before its next try: the cancellation goes through, no more tries."""
    call = Flaky(TransportError("broken"))
    waiting = asyncio.Event()
    policy = RetryPolicy(on=(TransportError,), attempts=5, wait_initial=60, wait_jitter=0)
    with set_testing(False):
        job = asyncio.ensure_future(retry_call(policy, call, what="a call", on_retry=waiting.set))
        await asyncio.wait_for(waiting.wait(), 10)
        await asyncio.sleep(0)  # now in the 60 s wait
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(job, 10)
    assert call.calls == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), _Halt(), GeneratorExit()])
async def test_base_exceptions_are_never_retried(error: BaseException) -> None:
    """KeyboardInterrupt and the like leave at once, unwrapped, whatever the policy names."""
    for on in ((Exception,), lambda _: True):
        call = Flaky(error)
        with pytest.raises(type(error)) as raised:
            await retry_call(RetryPolicy(on=on, attempts=5), call, what="a call")
        assert raised.value is error
        assert call.calls == 1


def test_a_policy_that_names_only_what_is_never_retried_is_refused() -> None:
    """``on=(KeyboardInterrupt,)`` would silently retry nothing: refused when constructed."""
    for on in ((KeyboardInterrupt,), (asyncio.CancelledError,), (ValueError, SystemExit)):
        with pytest.raises(ConfigurationError, match="on"):
            RetryPolicy(on=on)
    assert RetryPolicy(on=(Exception,)).should_retry(ValueError())


async def test_the_policy_timeout_stops_retries_whose_wait_would_pass_it() -> None:
    """No try starts past ``timeout``, counting the wait it would need (waits off or not)."""
    call = Flaky(TransportError("broken"))
    policy = RetryPolicy(
        on=(TransportError,), attempts=100, timeout=1.0, wait_initial=0.6, wait_jitter=0
    )
    with pytest.raises(TransportError):
        await retry_call(policy, call, what="a call")
    assert call.calls == 2  # waits of 0.6 then 1.2 s: the second would end past 1 s


async def test_should_retry_only_narrows_the_policy() -> None:
    """A caller's should_retry can refuse what the policy retries, never add what it does not."""
    wrong_kind = Flaky(TypeError("not retried by the policy"))
    with pytest.raises(TypeError):
        await retry_call(
            RetryPolicy(on=(ValueError,), attempts=4),
            wrong_kind,
            what="a call",
            should_retry=lambda _: True,
        )
    assert wrong_kind.calls == 1
    refused = Flaky(ValueError("refused by the caller"))
    retries: list[int] = []
    with pytest.raises(ValueError, match="refused"):
        await retry_call(
            RetryPolicy(on=(ValueError,), attempts=4),
            refused,
            what="a call",
            should_retry=lambda error: "retry me" in str(error),
            on_retry=lambda: retries.append(1),
        )
    assert (refused.calls, retries) == (1, [])
    allowed = Flaky(ValueError("retry me"))
    with pytest.raises(ValueError, match="retry me"):
        await retry_call(
            RetryPolicy(on=(ValueError,), attempts=4),
            allowed,
            what="a call",
            should_retry=lambda error: "retry me" in str(error),
            on_retry=lambda: retries.append(1),
        )
    assert (allowed.calls, len(retries)) == (4, 3)


def fails_without_waits() -> None:
    with set_testing(False):
        assert not is_testing()
        raise RuntimeError


def test_set_testing_nests_and_comes_back_after_an_error() -> None:
    """Nested blocks restore the setting each found, an exception included."""
    assert is_testing()  # this suite's setting
    with set_testing(False):
        assert not is_testing()
        with set_testing(True):
            assert is_testing()
            with pytest.raises(RuntimeError):
                fails_without_waits()
            assert is_testing()
        assert not is_testing()
        set_testing(True)  # a plain call inside a block lasts until the block ends
        assert is_testing()
    assert is_testing()


async def test_a_download_host_alternating_breaks_and_misfits_is_bounded_in_all(
    tmp_path: Path,
) -> None:
    """Broken exchanges and answers that do not fit, in turn: the policy's attempts in all."""
    body = mp4(40_000)
    requests: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        requests.append(request.headers.get("Range"))
        if len(requests) % 2 == 0:  # a 206 that starts elsewhere than asked
            return web.Response(
                status=206, body=body[5:], headers={"Content-Range": f"bytes 5-39999/{len(body)}"}
            )
        response = web.StreamResponse()
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:10_000])
        assert request.transport is not None
        request.transport.close()  # broken off
        return response

    app = web.Application()
    app.router.add_get("/v.mp4", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        video = video_at(URL(f"http://127.0.0.1:{port}/v.mp4"), len(body))
        for attempts in (1, 2, 5):
            requests.clear()
            client = Client(
                "sk-key-0123456789abcdef",
                base_url="http://127.0.0.1:9",
                retry=RetryPolicy(attempts=attempts),
                timeouts=Timeouts(read=5),
            )
            async with asyncio.timeout(20), client:
                with pytest.raises((DownloadError, TransportError)):
                    await client.download(video, tmp_path / "v.mp4")
            assert len(requests) == attempts
            assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        await runner.cleanup()


# -- submit(): nothing reaches the wire unchecked ---------------------------------------------

_URL = "https://example.com/face.jpg"


def _misused() -> dict[str, Callable[[], VideoRequest | H3Request]]:
    """Requests of the wrong types, as a caller without a type checker might build them."""
    return {
        "prompt_optimizer as text": lambda: VideoRequest(subject=_URL, prompt_optimizer="yes"),  # type: ignore[arg-type]
        "aigc_watermark as text": lambda: VideoRequest(subject=_URL, aigc_watermark="no"),  # type: ignore[arg-type]
        "prompt as a number": lambda: VideoRequest(subject=_URL, prompt=123),  # type: ignore[arg-type]
        "subject as a list of URLs": lambda: VideoRequest(subject=[_URL]),  # type: ignore[list-item]
        "subject as a dict": lambda: VideoRequest(subject=[{"image": [_URL]}]),  # type: ignore[list-item]
        "image as bytes": lambda: VideoRequest(subject=SubjectReference([_URL.encode()])),  # type: ignore[list-item]
        "V2 prompt missing": lambda: H3Request(prompt=None, references=[_URL]),  # type: ignore[arg-type]
        "V2 frame as bytes": lambda: H3Request(prompt="x", first_frame=_URL.encode()),  # type: ignore[arg-type]
        "V2 aigc_watermark as text": lambda: H3Request(
            prompt="x",
            references=[_URL],
            aigc_watermark="no",  # type: ignore[arg-type]
        ),
    }


@pytest.mark.parametrize("name", list(_misused()))
async def test_requests_of_the_wrong_types_get_a_typed_error_and_send_nothing(name: str) -> None:
    """A wrong type is an InvalidRequestError naming its field; nothing reaches MiniMax."""
    request = _misused()[name]()
    async with Emulator() as emu, fast_client(emu) as client:
        with pytest.raises(InvalidRequestError) as raised:
            await client.submit(request)
        assert raised.value.problems
        assert emu.counters.requests_to("submit") + emu.counters.requests_to("v2_submit") == 0
        assert await client.store.submissions() == []


class _LyingText(str):
    """Text that says it is an https URL to every method the checks call."""

    __slots__ = ()
    _shown = _URL

    def __getitem__(self, key: object) -> str:
        return self._shown[key]  # type: ignore[index]

    def __str__(self) -> str:
        return self._shown

    def lower(self) -> str:
        return self._shown

    def startswith(self, *_: object) -> bool:
        return True


async def test_a_str_subclass_that_lies_about_itself_is_not_sent_unchecked() -> None:
    """An image whose str methods claim an https URL, holding a local path, is not sent."""
    async with Emulator() as emu, fast_client(emu) as client:
        with pytest.raises(InvalidRequestError):
            await client.submit(VideoRequest(subject=_LyingText("/etc/passwd"), prompt="x"))
        assert emu.counters.requests_to("submit") == 0


class _ShortText(str):
    """Text that claims to be five characters long, whatever it holds."""

    __slots__ = ()

    def __len__(self) -> int:
        return 5


@pytest.mark.parametrize(
    "make",
    [
        lambda: H3Request("x", references=[_LyingText("/etc/passwd")]),
        lambda: H3Request("x", first_frame=_LyingText("/etc/passwd")),
        lambda: VideoRequest(SubjectReference([_LyingText("/etc/passwd")]), prompt="x"),
        lambda: VideoRequest(subject=_URL, prompt=_ShortText("y" * 2001)),
        lambda: H3Request(_ShortText("y" * 7001), references=[_URL]),
    ],
    ids=["h3-reference", "h3-first-frame", "subject-reference", "v1-prompt", "h3-prompt"],
)
async def test_text_that_lies_is_checked_as_what_it_really_holds(
    make: Callable[[], VideoRequest | H3Request],
) -> None:
    """Any field of a str subclass is kept as its real text: checked and sent as that."""
    request = make()
    async with Emulator() as emu, fast_client(emu) as client:
        with pytest.raises(InvalidRequestError):
            await client.submit(request)
        assert emu.counters.requests_to("submit") + emu.counters.requests_to("v2_submit") == 0


async def test_the_same_update_sent_many_times_at_once_is_recorded_once(tmp_path: Path) -> None:
    """20 copies of one progress callback racing through a durable journal: one event."""
    async with Emulator(durations=Durations(preparing=60.0)) as emu:
        store = SQLiteStore(tmp_path / "j.db")
        async with served_client(emu, store=store) as (client, _):
            task = await client.submit(face_request())
            url = URL(emu.task(task.task_id).callback_url or "")
            async with aiohttp.ClientSession() as http:

                async def send(status: str) -> int:
                    async with http.post(url, json=status_update(task.task_id, status)) as answer:
                        return answer.status

                answers = await asyncio.gather(
                    *(send("Processing") for _ in range(20)), *(send("Queueing") for _ in range(5))
                )
            assert answers == [200] * 25
            processing = [e for e in task.events if e.snapshot.status is TaskStatus.PROCESSING]
            assert len(processing) == 1
            journaled = [
                s
                for s, _, _ in await store.events(task.task_id)
                if s.status is TaskStatus.PROCESSING
            ]
            assert len(journaled) == 1
            assert task.status is TaskStatus.PROCESSING

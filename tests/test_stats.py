"""receiver.stats() and client.stats() agree with what the emulator saw and with forged POSTs."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from minimax_s2v import (
    APIError,
    AuthenticationError,
    Client,
    ConfigurationError,
    SubmissionUncertainError,
    TaskStatus,
)
from minimax_s2v.emulator import (
    CallbackFaults,
    Durations,
    Emulator,
    Endpoint,
    EndpointFaults,
    FaultPlan,
)
from tests.client_setup import face_request, fast_client
from tests.processes import free_port
from tests.receiver_setup import POLLING, new_receiver

SUCCESS = {"status": "success", "file_id": "1", "base_resp": {"status_code": 0}}


async def post(
    http: aiohttp.ClientSession, url: URL | str, body: bytes, method: str = "POST"
) -> int:
    async with http.request(
        method, url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status


async def test_stats_match_the_emulator_after_faults_and_forgeries(tmp_path: Path) -> None:
    """Dropped, duplicated and forged callbacks: every figure equals what was really sent."""
    faults = FaultPlan(callbacks=CallbackFaults(drop=0.25, duplicate=0.3))
    # Processing is reported 0.2 s after creation: after the submit answer, so that each
    # callback meets a task the client already follows.
    durations = Durations(preparing=0.2, processing=(0.05, 0.2))
    count = 40
    async with Emulator(seed=11, durations=durations, faults=faults) as emu:
        receiver = new_receiver(fallback_after=1.0)
        async with receiver.serve("127.0.0.1", 0, path="/minimax"), aiohttp.ClientSession() as http:
            async with fast_client(emu, receiver=receiver, polling=POLLING) as client:
                tasks = await asyncio.gather(*(client.submit(face_request()) for _ in range(count)))
                results = await asyncio.gather(*(t.wait(timeout=30) for t in tasks))
                await emu.callbacks.drain(10)
                # A task whose file was retrieved when its success was confirmed is saved
                # without another retrieve; one resolved by a poll retrieves it now.
                retrieved_now = sum(1 for t in tasks[:3] if t.video is None)
                saved = [
                    await client.download(t, tmp_path / f"{i}.mp4") for i, t in enumerate(tasks[:3])
                ]

                url = URL(emu.task(tasks[0].task_id).callback_url or "")
                base = url.parent.parent
                good = b'{"task_id": "%s", "status": "processing"}' % tasks[0].task_id.encode()
                other = b'{"task_id": "999999", "status": "processing"}'
                forged_404 = [
                    base / "not-a-callback",
                    base / url.parent.name / ("0" * 32),  # a bad token
                    base / "abcdefghij" / url.name,  # the token of another nonce
                    receiver.callback_url("neverissued1"),  # verifies, but nobody holds it
                ]
                answers = [await post(http, target, good) for target in forged_404]
                answers.append(await post(http, url, other))  # 409
                answers.append(await post(http, url, b"{not json"))  # 400
                answers.append(await post(http, url, b"x" * (receiver.max_body + 1)))  # 413
                answers.append(await post(http, url, good, method="PUT"))  # 405
                answers.append(await post(http, url, good))  # a duplicate: 200
                client_stats = client.stats()
            answers.append(await post(http, url, good))  # after close: 503
            stats = receiver.stats()

    assert answers == [404, 404, 404, 404, 409, 400, 413, 405, 200, 503]
    assert {r.status for r in results} == {TaskStatus.SUCCESS}
    callbacks_sent = emu.counters.callbacks
    assert callbacks_sent["dropped"] > 0
    assert callbacks_sent["duplicated"] > 0
    status_acks = [
        d for d in emu.deliveries if d.kind == "status" and d.http_status == 200 and not d.error
    ]
    # Each status callback delivered is applied or a duplicate; the emulator's duplicates
    # (and the test's one) are the duplicates.
    c = stats.callbacks
    assert c.applied + c.duplicate == len(status_acks) + 1
    assert c.duplicate == callbacks_sent["duplicated"] + 1
    assert c.applied == len({(d.task_id, d.status) for d in status_acks})
    assert (c.not_found, c.conflict, c.malformed, c.too_large, c.wrong_method) == (4, 1, 1, 1, 1)
    assert (c.unavailable, c.too_slow) == (1, 0)
    assert c.rejected == 9
    # Every challenge the emulator saw passed was answered and timed.
    assert stats.challenges.count == callbacks_sent["challenges_passed"] == count
    assert sum(n for _, n in stats.challenges.buckets) == count
    assert stats.challenges.buckets[-1][0] == math.inf
    assert 0 < stats.challenges.max < 3.0
    # The client's figures against the emulator's requests.
    requests = emu.counters.requests
    assert client_stats.submissions.created == emu.counters.tasks_created == count
    assert (client_stats.submissions.rejected, client_stats.submissions.uncertain) == (0, 0)
    queries = sum(emu.counters.queries_by_task.values())
    assert queries == client_stats.confirmations + client_stats.fallback_polls
    assert client_stats.fallback_polls > 0  # some final callbacks were dropped
    assert client_stats.retrievals + retrieved_now == sum(requests["retrieve"].values())
    assert (client_stats.succeeded, client_stats.failed, client_stats.finished) == (count, 0, count)
    assert client_stats.following == 0
    assert client_stats.time_to_result.count == count
    assert client_stats.downloads == sum(requests["download"].values()) == 3
    assert (
        client_stats.download_bytes
        == sum(p.stat().st_size for p in saved)
        == 3 * emu.config.file_size
    )
    assert client_stats.retries.query == 0
    assert client_stats.rate_limited == 0


async def test_submissions_by_outcome() -> None:
    """Created, rejected (in-band refusal) and uncertain (answer lost) are counted apart."""
    lost = FaultPlan(endpoints={Endpoint.SUBMIT: EndpointFaults(lost_response=1.0)})
    async with Emulator(faults=lost) as emu:
        async with fast_client(emu) as client:
            with pytest.raises(SubmissionUncertainError):
                await client.submit(face_request())
            uncertain = client.stats()
        async with fast_client(emu, api_key="not-a-key") as refused:
            with pytest.raises(AuthenticationError):
                await refused.submit(face_request())
            rejected = refused.stats()
    assert (uncertain.submissions.created, uncertain.submissions.uncertain) == (0, 1)
    assert (rejected.submissions.rejected, rejected.submissions.uncertain) == (1, 0)
    assert emu.counters.tasks_created == 1


async def test_retries_and_rate_limits_by_endpoint() -> None:
    """Retries are counted per endpoint, and every 1002 the client saw is counted."""
    faults = FaultPlan(endpoints={Endpoint.QUERY: EndpointFaults(rate_limit=0.4)})
    async with Emulator(seed=3, faults=faults) as emu:
        # A task this client does not follow: only the test's own queries are made.
        async with aiohttp.ClientSession() as http:
            async with http.post(
                emu.url / "v1/video_generation",
                json={
                    "model": "S2V-01",
                    "subject_reference": [
                        {"type": "character", "image": ["https://example.com/face.jpg"]}
                    ],
                },
                headers={"Authorization": f"Bearer {emu.api_key}"},
            ) as response:
                task_id = (await response.json())["task_id"]
        async with fast_client(emu) as client:
            raised = 0
            for _ in range(20):
                try:
                    await client.get_task(task_id)
                except APIError:
                    raised += 1  # five 1002s in a row: not retried again
            stats = client.stats()
    limited = emu.counters.faults["query"]["rate_limit"]
    assert limited > 0
    assert stats.rate_limited == limited
    assert stats.retries.query == limited - raised
    assert stats.retries.submit == stats.retries.retrieve == stats.retries.download == 0


async def test_trace_configs_reach_the_session() -> None:
    """Client(trace_configs=...) gives aiohttp's tracing every request the client makes."""
    seen: list[str] = []

    async def on_start(
        _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append(params.url.path)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    async with Emulator() as emu:
        async with fast_client(emu, trace_configs=[config]) as client:
            task = await client.submit(face_request())
            await task.wait(timeout=10)
    assert seen[0] == "/v1/video_generation"
    assert "/v1/query/video_generation" in seen


async def test_trace_configs_with_a_session_are_refused() -> None:
    """trace_configs belong to the session: with the caller's own, they are refused."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match="trace_configs"):
            Client("key", session=session, trace_configs=[aiohttp.TraceConfig()])


async def test_serve_prints_a_summary_every_n_seconds() -> None:
    """`serve --stats-every` prints one line of receiver.stats() every N seconds."""
    from minimax_s2v.receiver import CallbackReceiver
    from tests.processes import python_process

    port = free_port()
    public = f"http://127.0.0.1:{port}/cb"
    secret = "serve-test-secret-0123456789"
    args = ["-m", "minimax_s2v", "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--public-url", public, "--secret", secret, "--stats-every", "0.2"]
    url = CallbackReceiver(public, secret=secret).callback_url("servenonce1")
    with python_process(args, port) as process:
        assert process.stdout is not None
        async with aiohttp.ClientSession() as http:
            assert await post(http, url, b'{"challenge": "c1"}') == 200
            assert await post(http, f"http://127.0.0.1:{port}/cb/x/y", b"{}") == 404
        lines: list[str] = []
        async with asyncio.timeout(20):
            while not any("challenges: 1 " in line for line in lines):
                lines.append(await asyncio.to_thread(process.stdout.readline))
    summary = next(line for line in lines if "challenges: 1 " in line)
    assert summary.startswith("callbacks: 0 applied, 0 duplicate, 1 not found,")

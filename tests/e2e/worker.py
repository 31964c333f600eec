"""A service process for the kill -9 test: client + receiver + SQLite journal, N generations.

Run: ``python -m tests.e2e.worker EMULATOR_URL DB PORT COUNT [mixed]``. On start it resumes
what the journal holds, submits every label the journal has never seen, and waits for all.
With ``mixed``, odd labels are MiniMax-H3 requests (the V2 API), even ones S2V-01's.
It prints one line per event, flushed, so a test can follow (and kill) it.
"""

from __future__ import annotations

import asyncio
import sys

from minimax_s2v import (
    AnyRequest,
    Client,
    H3Request,
    MiniMaxError,
    PollPolicy,
    RateLimit,
    RetryPolicy,
    Task,
    VideoRequest,
)
from minimax_s2v.receiver import CallbackReceiver
from minimax_s2v.stores import SQLiteStore

SECRET = "kill-test-secret-0123456789abcdef"


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the test reads these lines


def request_for(label: str, mixed: bool) -> AnyRequest:
    """S2V-01's request, or MiniMax-H3's for an odd label of a mixed run."""
    prompt = f"kill test {label}"
    if mixed and int(label) % 2:
        return H3Request(prompt, references=["https://example.com/f.jpg"])
    return VideoRequest(subject="https://example.com/f.jpg", prompt=prompt)


async def main(emulator: str, db: str, port: int, count: int, mixed: bool) -> None:
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/cb", secret=SECRET, fallback_after=3.0)
    store = SQLiteStore(db)
    polling = PollPolicy(first_interval=0.5, max_interval=1.0, max_rate=200)
    async with receiver.serve("127.0.0.1", port):
        async with Client(
            "emulator-key",
            base_url=emulator,
            receiver=receiver,
            store=store,
            polling=polling,
            retry=RetryPolicy(wait_initial=0.05, wait_max=0.5),
            rate_limit=RateLimit(v2_submit_rpm=None),
        ) as client:
            resumed = await client.resume()
            say(f"resumed {len(resumed.tasks)} uncertain {len(resumed.uncertain)}")
            seen = {s.label for s in await store.submissions()}
            slots = asyncio.Semaphore(50)

            async def follow(task: Task) -> None:
                try:
                    snapshot = await task.wait(timeout=120)
                    say(f"done {task.label} {snapshot.status.value}")
                except MiniMaxError as error:
                    say(f"error {task.label} {type(error).__name__}")

            async def submit(label: str) -> None:
                async with slots:
                    request = request_for(label, mixed)
                    try:
                        task = await client.submit(request, label=label)
                    except MiniMaxError as error:
                        say(f"submit-error {label} {type(error).__name__}")
                        return
                    say(f"submitted {label}")
                    await follow(task)

            labels = [str(i) for i in range(count) if str(i) not in seen]
            await asyncio.gather(
                *(follow(t) for t in resumed.tasks), *(submit(label) for label in labels)
            )
            uncertain = [s.label for s in await store.uncertain()]
            say(f"ALL DONE uncertain={','.join(str(u) for u in uncertain)}")
    await store.close()


if __name__ == "__main__":
    url, path, port, count = sys.argv[1:5]
    asyncio.run(main(url, path, int(port), int(count), sys.argv[5:6] == ["mixed"]))

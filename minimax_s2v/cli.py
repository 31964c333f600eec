"""The ``minimax-s2v`` command line (also ``python -m minimax_s2v``).

Exit codes:
    0   everything succeeded
    1   some generations failed (the others are saved)
    2   usage error or invalid input (a bad option, request or file; batch lines skipped)
    3   the API key is missing or was refused (check the key and the region)
    4   MiniMax (or the emulator) could not be reached or kept failing
    5   a submission may or may not have created a task (nothing was resent)
    130 interrupted (Ctrl-C); the batch journal stays consistent: run the batch again
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import attrs

from ._client import Client
from ._errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    MiniMaxError,
    ResponseValidationError,
    SubmissionUncertainError,
    TransportError,
)
from ._models import SubjectReference, TaskStatus, VideoRequest
from ._polling import PollPolicy
from ._progress import Reporter, make_reporter
from ._ratelimit import RateLimit
from ._tasks import Task
from ._wire import parse_request

__all__ = ["EXIT", "main"]

EXIT = {
    "ok": 0,
    "failed": 1,
    "usage": 2,
    "auth": 3,
    "unavailable": 4,
    "uncertain": 5,
    "interrupted": 130,
}
JOURNAL = ".minimax-s2v-journal.db"

DEMO_PROMPTS = (
    "A woman walks along a beach at sunset and turns to smile at the camera.",
    "A woman reads a book in a cafe, looks up and laughs.",
    "A woman runs toward the camera through a park and winks.",
    "A woman waves from a balcony while city lights come on behind her.",
    "A woman sips tea by a rainy window and smiles softly.",
)


class UsageError(Exception):
    """A problem with what was asked, reported in one line with exit code 2."""


def _exit_code(error: BaseException) -> int:
    if isinstance(error, AuthenticationError | ConfigurationError):
        return EXIT["auth"]
    if isinstance(error, InvalidRequestError | UsageError):
        return EXIT["usage"]
    if isinstance(error, SubmissionUncertainError):
        return EXIT["uncertain"]
    if isinstance(error, TransportError | ResponseValidationError) or (
        isinstance(error, APIError) and error.retryable
    ):
        return EXIT["unavailable"]
    return EXIT["failed"]


def _hint(error: BaseException) -> str:
    if isinstance(error, TransportError):
        return " (is the base URL right and reachable? --base-url or MINIMAX_BASE_URL)"
    if isinstance(error, SubmissionUncertainError):
        return " (not resent; check the task list before trying again)"
    return ""


def _fail(error: BaseException) -> int:
    print(f"error: {error}{_hint(error)}", file=sys.stderr)  # noqa: T201 - one line, then exit
    return _exit_code(error)


# -- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``minimax-s2v``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-key", help="MiniMax API key (default: MINIMAX_API_KEY)")
    common.add_argument(
        "--region",
        choices=("global", "cn"),
        default="global",
        help="api.minimax.io (global) or api.minimaxi.com (cn)",
    )
    common.add_argument(
        "--base-url", help="API base URL (default: MINIMAX_BASE_URL, else the region's)"
    )
    common.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    common.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="first poll interval when no callback reports a task (default 5)",
    )

    parser = argparse.ArgumentParser(
        prog="minimax-s2v",
        description="Generate videos with MiniMax S2V-01 (subject reference).",
        epilog="Exit codes: 0 ok, 1 some failed, 2 usage/input, 3 key, 4 unreachable, "
        "5 uncertain submission, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", parents=[common], help="generate one video and save it"
    )
    generate.add_argument(
        "--prompt", default=None, help="what happens in the video (<= 2000 characters)"
    )
    generate.add_argument(
        "--image", required=True, help="face image: an http(s) URL or a local file"
    )
    generate.add_argument(
        "--out", type=Path, default=None, help="output file (default: <task id>.mp4)"
    )
    generate.add_argument("--no-optimize", action="store_true", help="send the prompt as it is")
    generate.add_argument("--timeout", type=float, default=None, help="stop waiting after SECONDS")
    generate.add_argument("--callback-url", help="public URL of a running receiver to report to")
    generate.add_argument(
        "--serve-callbacks",
        metavar="HOST:PORT",
        help="run a receiver here for this generation (needs --callback-url)",
    )
    generate.add_argument(
        "--callback-secret",
        default=os.environ.get("MINIMAX_CALLBACK_SECRET"),
        help="receiver secret (default: MINIMAX_CALLBACK_SECRET)",
    )

    batch = commands.add_parser(
        "batch", parents=[common], help="generate one video per JSONL line, resumably"
    )
    batch.add_argument(
        "file", type=Path, help='JSONL: {"prompt": ..., "image": ..., "id": ...} per line'
    )
    batch.add_argument(
        "--out", type=Path, required=True, help="output directory (holds the journal)"
    )
    batch.add_argument(
        "--concurrency", type=int, default=8, help="generations in flight (default 8)"
    )
    batch.add_argument("--rpm", type=float, default=None, help="submissions per minute at most")

    status = commands.add_parser("status", parents=[common], help="show a task's status")
    status.add_argument("task_id")

    download = commands.add_parser("download", parents=[common], help="save a finished video")
    download.add_argument("id", help="a task id or a file id")
    download.add_argument("--out", type=Path, required=True, help="output file")

    serve = commands.add_parser("serve", parents=[common], help="run the callback receiver")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--public-url", required=True, help="the URL MiniMax reaches this receiver at"
    )
    serve.add_argument(
        "--secret",
        default=os.environ.get("MINIMAX_CALLBACK_SECRET"),
        help="receiver secret (default: MINIMAX_CALLBACK_SECRET)",
    )
    serve.add_argument(
        "--check", action="store_true", help="run self_check() once listening, then exit"
    )
    serve.add_argument(
        "--stats-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="print a one-line summary of the receiver's counters every SECONDS",
    )

    commands.add_parser(
        "emulate", help="run the MiniMax emulator (see emulate --help)", add_help=False
    )

    demo = commands.add_parser(
        "demo", parents=[common], help="the emulator, a receiver and the client in one process"
    )
    demo.add_argument("--count", type=int, default=5, help="how many videos (default 5)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    demo.add_argument("--seed", type=int, default=None, help="make the emulator repeatable")
    return parser


def _client(args: argparse.Namespace, **options: Any) -> Client:
    polling = PollPolicy(
        first_interval=args.poll_interval, max_interval=max(20.0, args.poll_interval)
    )
    return Client(
        args.api_key, region=args.region, base_url=args.base_url, polling=polling, **options
    )


def _emit(args: argparse.Namespace, text: str, **fields: Any) -> None:
    if args.json:
        print(json.dumps(fields, default=str))  # noqa: T201
    else:
        print(text)  # noqa: T201


# -- generate, status, download -------------------------------------------------------------


@asynccontextmanager
async def _callbacks(args: argparse.Namespace) -> AsyncIterator[Any]:
    if not args.callback_url:
        if args.serve_callbacks:
            raise UsageError("--serve-callbacks needs --callback-url, the public URL of HOST:PORT")
        yield None
        return
    from .receiver import CallbackReceiver

    receiver = CallbackReceiver(args.callback_url, secret=args.callback_secret)
    if not args.serve_callbacks:
        yield receiver
        return
    host, _, port = args.serve_callbacks.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError("--serve-callbacks takes HOST:PORT")
    async with receiver.serve(host, int(port)):
        yield receiver


async def _generate(args: argparse.Namespace) -> int:
    request = VideoRequest(
        subject=SubjectReference(args.image),
        prompt=args.prompt,
        prompt_optimizer=False if args.no_optimize else None,
    )
    async with _callbacks(args) as receiver, _client(args, receiver=receiver) as client:
        task = await client.submit(request)
        print(f"submitted task {task.task_id}", file=sys.stderr)  # noqa: T201
        try:
            async with asyncio.timeout(args.timeout):
                async for snapshot in task.updates():
                    if not args.json:
                        print(f"task {task.task_id}: {snapshot.status.value}", file=sys.stderr)  # noqa: T201
        except TimeoutError:
            print(  # noqa: T201
                f"error: task {task.task_id} not finished after {args.timeout}s; it goes on: "
                f"minimax-s2v status {task.task_id}, "
                f"then minimax-s2v download {task.task_id} --out FILE",
                file=sys.stderr,
            )
            return EXIT["failed"]
        result = await task.wait()
        out = args.out or Path(f"{task.task_id}.mp4")
        path = await client.download(task, out)
        _emit(
            args, f"saved {path}", task_id=task.task_id, status=result.status.value, path=str(path)
        )
    return EXIT["ok"]


async def _status(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        snapshot = await client.get_task(args.task_id)
    fields = {
        "task_id": snapshot.task_id,
        "status": snapshot.status.value,
        "file_id": snapshot.file_id,
        "width": snapshot.width,
        "height": snapshot.height,
        "error_code": snapshot.error_code,
        "error_message": snapshot.error_message,
    }
    text = f"task {snapshot.task_id}: {snapshot.status.value}"
    if snapshot.file_id:
        text += f" (file {snapshot.file_id}, {snapshot.width}x{snapshot.height})"
    if snapshot.error_code:
        text += f" (error {snapshot.error_code}: {snapshot.error_message})"
    _emit(args, text, **fields)
    return EXIT["ok"] if snapshot.status is not TaskStatus.FAIL else EXIT["failed"]


async def _download(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        target: Any = args.id
        try:
            snapshot = await client.get_task(args.id)
        except InvalidRequestError:
            snapshot = None  # not a task id: take it as a file id
        if snapshot is not None:
            if snapshot.status is not TaskStatus.SUCCESS:
                raise UsageError(f"task {args.id} is {snapshot.status.value}, it has no video yet")
            target = snapshot
        path = await client.download(target, args.out)
    _emit(args, f"saved {path}", path=str(path))
    return EXIT["ok"]


# -- batch --------------------------------------------------------------------------------


def _read_batch(
    path: Path, out: Path, reporter: Reporter
) -> tuple[dict[str, tuple[VideoRequest, Path]], int]:
    """Read the JSONL file: {label: (request, output file)}, and how many lines were bad."""
    items: dict[str, tuple[VideoRequest, Path]] = {}
    bad = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            label, request = _batch_line(line, number, path.parent)
            if label in items:
                raise ValueError(f"id {label!r} appears twice")  # noqa: TRY301 - same report
        except (ValueError, MiniMaxError) as error:
            bad += 1
            reporter.line(f"{path}:{number}: skipped: {error}")
            continue
        items[label] = (request, out / f"{label}.mp4")
    return items, bad


def _batch_line(line: str, number: int, base: Path) -> tuple[str, VideoRequest]:
    """One JSONL line: its label and request (``ValueError`` says what is wrong)."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")  # noqa: TRY004 - a bad line, not a bad call
    label = str(data.get("id") or f"line-{number:06d}")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", label):
        raise ValueError(f"id {label!r}: use letters, digits, '.', '_' and '-'")
    if "subject_reference" in data:
        return label, parse_request(data)
    if not isinstance(data.get("image"), str):
        raise ValueError('"image" (a URL or a file path) is required')  # noqa: TRY004 - bad line
    request = VideoRequest(
        subject=SubjectReference(_resolve(data["image"], base)),
        prompt=data.get("prompt"),
        prompt_optimizer=data.get("prompt_optimizer"),
    )
    return label, request


def _resolve(image: str, base: Path) -> str:
    if image[:8].lower().startswith(("http://", "https://")) or image[:5].lower() == "data:":
        return image
    candidate = Path(image).expanduser()
    return str(candidate if candidate.is_absolute() else base / candidate)


async def _batch(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one command, top to bottom
    from .stores import SQLiteStore

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    probe = Reporter(0, sys.stderr)
    items, bad = _read_batch(args.file, args.out, probe)
    store = SQLiteStore(args.out / JOURNAL)
    rate = RateLimit(submit_rpm=args.rpm) if args.rpm else RateLimit()
    failed = uncertain = saved = skipped = 0
    try:
        async with _client(args, store=store, rate_limit=rate) as client:
            resumed = await client.resume()
            journaled = {s.label: s for s in await store.submissions() if s.label is not None}
            reporter = make_reporter(len(items), as_json=args.json)
            with reporter:
                slots = asyncio.Semaphore(args.concurrency)

                async def finish(label: str, task: Task) -> None:
                    nonlocal failed, saved
                    _, out = items[label]
                    try:
                        async for snapshot in task.updates():
                            reporter.status(label, snapshot.status.value)
                        await task.wait()
                        await client.download(task, out)
                    except MiniMaxError as error:
                        failed += 1
                        reporter.done(label, False, f"{label}: {error}", error=str(error))
                        return
                    saved += 1
                    reporter.done(
                        label, True, f"{label}: saved {out}", task_id=task.task_id, path=str(out)
                    )

                async def submit(label: str) -> None:
                    nonlocal failed, uncertain, bad
                    request, _ = items[label]
                    async with slots:
                        try:
                            task = await client.submit(request, label=label)
                        except AuthenticationError:
                            raise  # the whole batch stops: one line, exit code 3
                        except SubmissionUncertainError as error:
                            uncertain += 1
                            reporter.done(label, False, f"{label}: {error}", error=str(error))
                            return
                        except InvalidRequestError as error:
                            bad += 1  # found by preflight: nothing was sent
                            reporter.done(label, False, f"{label}: {error}", error=str(error))
                            return
                        except MiniMaxError as error:
                            failed += 1
                            reporter.done(label, False, f"{label}: {error}", error=str(error))
                            return
                        reporter.status(label, "submitted")
                        await finish(label, task)

                following = {t.label for t in resumed.tasks}
                jobs = [finish(t.label, t) for t in resumed.tasks if t.label in items]
                for label, (_, out) in items.items():
                    if label in following:
                        continue
                    stored = journaled.get(label)
                    if stored is None:
                        jobs.append(submit(label))
                    elif stored.task_id is None:
                        uncertain += 1
                        reporter.done(
                            label,
                            False,
                            f"{label}: submitted before, outcome unknown: not resent",
                            error="uncertain",
                        )
                    elif out.exists():
                        skipped += 1
                        reporter.done(label, True, f"{label}: already saved {out}", path=str(out))
                    else:
                        jobs.append(finish(label, client.task(stored.task_id)))
                await asyncio.gather(*jobs)
                reporter.summary(
                    f"{saved} saved, {skipped} already done, {failed} failed, "
                    f"{uncertain} uncertain, {bad} bad lines; journal {args.out / JOURNAL}",
                    saved=saved,
                    skipped=skipped,
                    failed=failed,
                    uncertain=uncertain,
                    bad_lines=bad,
                )
    finally:
        await store.close()
    if uncertain:
        return EXIT["uncertain"]
    if failed:
        return EXIT["failed"]
    if bad:
        return EXIT["usage"]
    return EXIT["ok"]


# -- serve, demo ------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from .receiver import CallbackReceiver

    if not args.secret:
        raise UsageError(
            "a receiver needs a secret shared with the submitting service: "
            "--secret or MINIMAX_CALLBACK_SECRET"
        )
    if args.stats_every is not None and not args.stats_every > 0:
        raise UsageError("--stats-every must be a number of seconds > 0")
    receiver = CallbackReceiver(args.public_url, secret=args.secret)
    async with receiver.serve(args.host, args.port) as local:
        print(f"receiver listening on {local} for {args.public_url}", file=sys.stderr)  # noqa: T201
        if args.check:
            result = await receiver.self_check()
            _emit(
                args,
                f"self check: {'ok' if result.ok else 'FAILED'} "
                f"({result.error or f'{(result.latency or 0) * 1000:.1f} ms'})",
                ok=result.ok,
                latency=result.latency,
                error=result.error,
                url=result.url,
            )
            return EXIT["ok"] if result.ok else EXIT["unavailable"]
        if args.stats_every is None:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(args.stats_every)
            stats = receiver.stats()
            challenges = stats.challenges
            _emit(
                args,
                stats.summary(),
                callbacks=attrs.asdict(stats.callbacks),
                challenges={"count": challenges.count, "max": challenges.max},
            )
    return EXIT["ok"]


async def _demo(args: argparse.Namespace) -> int:
    from .emulator import Durations, Emulator
    from .receiver import CallbackReceiver

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    with ExitStack() as stack:
        face = stack.enter_context(as_file(files("minimax_s2v").joinpath("assets/sample_face.png")))
        requests = [
            VideoRequest(subject=face, prompt=DEMO_PROMPTS[i % len(DEMO_PROMPTS)])
            for i in range(args.count)
        ]
        async with Emulator(durations=Durations.demo(), seed=args.seed) as emu:
            receiver = CallbackReceiver(fallback_after=30.0)
            # Without a public URL of its own, the receiver takes the address it listens on.
            async with receiver.serve("127.0.0.1", 0, path="/callbacks") as local:
                reporter = make_reporter(args.count, as_json=args.json)
                reporter.line(
                    f"emulator at {emu.url}, receiver at {local}: "
                    f"{args.count} videos from {face.name}"
                )
                client = Client(
                    emu.api_key,
                    base_url=emu.url,
                    receiver=receiver,
                    polling=PollPolicy(first_interval=2.0, max_interval=5.0),
                )
                succeeded = failed = 0
                total_bytes = 0
                with reporter:
                    async with client:
                        args.out.mkdir(parents=True, exist_ok=True)
                        tasks = [
                            await client.submit(r, label=str(i)) for i, r in enumerate(requests)
                        ]

                        async def follow(task: Task) -> None:
                            nonlocal succeeded, failed, total_bytes
                            async for snapshot in task.updates():
                                reporter.status(task.task_id, snapshot.status.value)
                            try:
                                await task.wait()
                                path = await client.download(task, args.out / f"{task.task_id}.mp4")
                            except MiniMaxError as error:
                                failed += 1
                                reporter.done(
                                    task.task_id, False, f"task {task.task_id} failed: {error}"
                                )
                                return
                            size = path.stat().st_size
                            total_bytes += size
                            succeeded += 1
                            final = task.snapshot
                            assert final is not None  # noqa: S101 - a finished task has one
                            reporter.done(
                                task.task_id,
                                True,
                                f"task {task.task_id} succeeded: {path} ({size / 1024:.0f} KiB, "
                                f"{final.width}x{final.height})",
                                path=str(path),
                                bytes=size,
                            )

                        await asyncio.gather(*(follow(t) for t in tasks))
                    stats = client.stats()
                    challenges = receiver.stats().challenges.count
                    reporter.summary(
                        f"done in {_elapsed(reporter):.1f}s: {succeeded} succeeded, "
                        f"{failed} failed, {total_bytes / 1024:.0f} KiB of MP4 in {args.out}/; "
                        f"{challenges} callback challenges answered, "
                        f"{stats.confirmations} callbacks confirmed by a query, "
                        f"{stats.fallback_polls} fallback polls needed",
                        succeeded=succeeded,
                        failed=failed,
                        bytes=total_bytes,
                        out=str(args.out),
                        challenges=challenges,
                        confirmations=stats.confirmations,
                        polls=stats.fallback_polls,
                    )
    return EXIT["ok"] if failed == 0 else EXIT["failed"]


def _elapsed(reporter: Reporter) -> float:
    return time.monotonic() - reporter.started


# -- entry point --------------------------------------------------------------------------------

_COMMANDS = {
    "generate": _generate,
    "batch": _batch,
    "status": _status,
    "download": _download,
    "serve": _serve,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["emulate"]:
        from .emulator.__main__ import main as emulate

        return emulate(arguments[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        return asyncio.run(_COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)  # noqa: T201
        return EXIT["interrupted"]
    except (MiniMaxError, UsageError) as error:
        return _fail(error)


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

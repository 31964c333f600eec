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
import math
import os
import re
import signal
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, ExitStack, asynccontextmanager
from importlib.resources import as_file, files
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import attrs

from ._cli_display import Reporter, make_reporter
from ._client import Client
from ._errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    MiniMaxError,
    ResponseValidationError,
    StoreError,
    SubmissionUncertainError,
    TransportError,
    terminal_safe,
)
from ._models import (
    MODEL_S2V_01,
    AnyRequest,
    Dialect,
    H3Request,
    SubjectReference,
    TaskStatus,
    VideoRequest,
)
from ._polling import PollPolicy
from ._preflight import expand_home
from ._ratelimit import RateLimit
from ._redaction import Redactor, describe
from ._tasks import Task
from ._wire import is_http_url, is_id, parse_h3_request, parse_request, source_kind

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
T = TypeVar("T")
_MIN_SECRET_BYTES = 16  # what CallbackReceiver requires

DEMO_PROMPTS = (
    "A woman walks along a beach at sunset and turns to smile at the camera.",
    "A woman reads a book in a cafe, looks up and laughs.",
    "A woman runs toward the camera through a park and winks.",
    "A woman waves from a balcony while city lights come on behind her.",
    "A woman sips tea by a rainy window and smiles softly.",
)


class UsageError(Exception):
    """A problem with what was asked, reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors become one ``error:`` line with exit code 2.

    argparse quotes the values it refuses (``invalid choice: '<value>'``), so a key typed in
    the wrong place would be printed back. The refused values are left out of the line
    (option names stay), and ``main`` also scrubs every secret it knows of.
    """

    def error(self, message: str) -> NoReturn:
        message = _QUOTED_VALUE.sub("", message)
        prefix, found, rest = message.partition(_UNRECOGNIZED)
        if found:
            shown = [word if word.startswith("-") else "…" for word in rest.split()]
            message = f"{prefix}{found}{' '.join(shown)}"
        raise UsageError(f"{self.prog}: {message}")


# argparse's "invalid choice: 'x' (...)" and "invalid float value: 'x'": the value goes.
_QUOTED_VALUE = re.compile(r"""(?<=invalid choice)(: (?:'[^']*'|"[^"]*"))|(?<= value)(: .*$)""")
_UNRECOGNIZED = "unrecognized arguments: "


_SECRET_OPTIONS = ("--api-key", "--secret", "--callback-secret")
_SECRET_VARIABLES = ("MINIMAX_API_KEY", "MINIMAX_CALLBACK_SECRET")


def _secrets_in(arguments: Sequence[str]) -> Redactor:
    """A redactor of every secret the command line or the environment gives."""
    found: list[str] = [os.environ.get(name, "") for name in _SECRET_VARIABLES]
    for index, argument in enumerate(arguments):
        option, equals, value = argument.partition("=")
        if option in _SECRET_OPTIONS:
            if equals:
                found.append(value)
            elif index + 1 < len(arguments):
                found.append(arguments[index + 1])
    return Redactor(*found)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse option values that cannot work, naming the option (never quoting a secret)."""
    base_url = getattr(args, "base_url", None) or os.environ.get("MINIMAX_BASE_URL")
    if base_url and not is_http_url(base_url):
        raise UsageError("--base-url (or MINIMAX_BASE_URL) must be an absolute http(s) URL")
    for option in ("callback_url", "public_url"):
        value = getattr(args, option, None)
        # A receiver's URL carries its own query: one given here could not be kept.
        if value is not None and (not is_http_url(value) or "?" in value or "#" in value):
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} must be an absolute http(s) URL without a query")
    for option in ("secret", "callback_secret"):
        value = getattr(args, option, None)
        if value is not None and len(value.encode()) < _MIN_SECRET_BYTES:
            flag = "--" + option.replace("_", "-")
            raise UsageError(
                f"{flag} (or MINIMAX_CALLBACK_SECRET) must be at least {_MIN_SECRET_BYTES} bytes"
            )
    for option in ("poll_interval", "timeout", "rpm"):
        number = getattr(args, option, None)
        if number is not None and not number > 0:  # NaN too
            raise UsageError(f"--{option.replace('_', '-')} must be a positive number")
    for option in ("task_id", "id"):
        value = getattr(args, option, None)
        if value is not None and not is_id(value):
            raise UsageError("a task or file id is a string of digits")
    port = getattr(args, "port", None)
    if port is not None and not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")


def _exit_code(error: BaseException) -> int:
    if isinstance(error, AuthenticationError | ConfigurationError):
        return EXIT["auth"]
    if isinstance(error, InvalidRequestError | UsageError):
        return EXIT["usage"]
    if isinstance(error, SubmissionUncertainError):
        return EXIT["uncertain"]
    if isinstance(error, TransportError | ResponseValidationError | StoreError) or (
        isinstance(error, APIError) and error.retryable
    ):
        return EXIT["unavailable"]
    return EXIT["failed"]


def _hint(error: BaseException) -> str:
    if isinstance(error, StoreError) and error.task_id is None:
        return " (check that the journal's directory exists and is writable, and has room)"
    if isinstance(error, TransportError):
        return " (is the base URL right and reachable? --base-url or MINIMAX_BASE_URL)"
    if isinstance(error, SubmissionUncertainError):
        return " (not resent; check the task list before trying again)"
    return ""


def _fail(error: BaseException, redactor: Redactor) -> int:
    text = terminal_safe(redactor.text(f"{error}{_hint(error)}"))
    print(f"error: {text}", file=sys.stderr)  # noqa: T201 - one line, then exit
    return _exit_code(error)


# -- the parser ---------------------------------------------------------------------------


def _number(*, above: float | None = None, at_least: float = 0.0) -> Any:
    """An argparse type: a number ``> above`` (or ``>= at_least``), else a usage error.

    The settings these options feed (PollPolicy, RateLimit) would refuse the value too, but
    in their own names and as a configuration error: here it is a bad option (exit code 2).
    """
    bound = f"> {above:g}" if above is not None else f">= {at_least:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > above if above is not None else value >= at_least):
            raise argparse.ArgumentTypeError(f"must be a number {bound}, not {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``minimax-s2v``."""
    common = _Parser(add_help=False)
    common.add_argument("--api-key", help="MiniMax API key (default: MINIMAX_API_KEY)")
    common.add_argument(
        "--region",
        choices=("global", "cn"),
        default=None,
        help="api.minimax.io (global) or api.minimaxi.com (cn); wins over MINIMAX_BASE_URL",
    )
    common.add_argument(
        "--base-url",
        help="API base URL (default: the --region's host, else MINIMAX_BASE_URL, else global)",
    )
    common.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    common.add_argument(
        "--poll-interval",
        type=_number(at_least=0),
        default=5.0,
        metavar="SECONDS",
        help="first poll interval when no callback reports a task (default 5)",
    )

    parser = _Parser(
        prog="minimax-s2v",
        description="Generate videos with MiniMax S2V-01 or MiniMax-H3 (subject reference).",
        epilog="Exit codes: 0 ok, 1 some failed, 2 usage/input, 3 key, 4 unreachable, "
        "5 uncertain submission, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", parents=[common], help="generate one video and save it"
    )
    generate.add_argument(
        "--prompt",
        default=None,
        help="what happens in the video (S2V-01: <= 2000 characters; MiniMax-H3: <= 7000)",
    )
    generate.add_argument(
        "--model",
        default=MODEL_S2V_01,
        help="S2V-01 (default, the V1 API) or MiniMax-H3 / MiniMax-H3-Max (the V2 API)",
    )
    generate.add_argument(
        "--image", default=None, help="S2V-01: the face image, an http(s) URL or a local file"
    )
    generate.add_argument(
        "--reference",
        action="append",
        default=[],
        help="MiniMax-H3: a reference image of the subject (repeat for up to 9)",
    )
    generate.add_argument(
        "--resolution", default=None, help="MiniMax-H3: 768P or 2K (H3-Max: 480P, 768P)"
    )
    generate.add_argument("--duration", type=int, default=None, help="MiniMax-H3: seconds (4-15)")
    generate.add_argument(
        "--ratio", default=None, help="MiniMax-H3: 16:9, 9:16, 1:1, ... or adaptive"
    )
    # A str, not a Path: Path("new/") drops the slash that makes "new/" a directory.
    generate.add_argument(
        "--out",
        default=None,
        help="output file, or a directory (existing, or ending in /) (default: <task id>.mp4)",
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
    batch.add_argument(
        "--rpm", type=_number(above=0), default=None, help="submissions per minute at most"
    )

    status = commands.add_parser("status", parents=[common], help="show a task's status")
    status.add_argument("task_id")
    status.add_argument("--model", default=None, help="MiniMax-H3 for a task of the V2 API")

    download = commands.add_parser("download", parents=[common], help="save a finished video")
    download.add_argument("id", help="a task id or a file id")
    download.add_argument("--model", default=None, help="MiniMax-H3 for a task of the V2 API")
    download.add_argument(
        "--out", required=True, help="output file, or a directory (existing, or ending in /)"
    )

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
        type=_number(above=0),
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
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="with --seed: replace the videos of an earlier seeded demo in --out",
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("minimax-s2v")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _client(args: argparse.Namespace, **options: Any) -> Client:
    # The command line's own sources of a key, worded for its user (the library says
    # Client(api_key=...) instead).
    key = args.api_key if args.api_key is not None else os.environ.get("MINIMAX_API_KEY", "")
    if not key.strip():
        raise ConfigurationError("no API key: pass --api-key or set MINIMAX_API_KEY")
    polling = PollPolicy(
        first_interval=args.poll_interval, max_interval=max(20.0, args.poll_interval)
    )
    return Client(key, region=args.region, base_url=args.base_url, polling=polling, **options)


async def _listening(
    stack: AsyncExitStack,
    server: AbstractAsyncContextManager[T],
    host: str,
    port: int,
    option: str = "--port",
) -> T:
    """Enter ``server`` (an emulator or a receiver starting to listen) on ``stack``.

    A socket that cannot be bound (a port in use) is a one-line usage error; the server has
    cleaned up after itself by then, so nothing is left open.
    """
    from .emulator.__main__ import cannot_listen

    try:
        return await stack.enter_async_context(server)
    except OSError as error:
        raise UsageError(cannot_listen(host, port, error, option)) from None


def _emit(args: argparse.Namespace, text: str, **fields: Any) -> None:
    if args.json:
        print(json.dumps(fields, default=str))  # noqa: T201
    else:
        print(terminal_safe(text))  # noqa: T201


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
    async with AsyncExitStack() as stack:
        serving = receiver.serve(host, int(port))
        await _listening(stack, serving, host, int(port), "--serve-callbacks")
        yield receiver


def _generate_request(args: argparse.Namespace) -> AnyRequest:
    """The request ``generate`` sends: S2V-01's, or MiniMax-H3's for a V2 ``--model``."""
    if Dialect.of_model(args.model) is Dialect.V2:
        references = [*args.reference, *([args.image] if args.image else [])]
        if not args.prompt:
            raise UsageError(f"{args.model} needs --prompt")
        if not references:
            raise UsageError(f"{args.model} needs at least one --reference image")
        options: dict[str, Any] = {
            name: getattr(args, name)
            for name in ("resolution", "duration", "ratio")
            if getattr(args, name) is not None
        }
        return H3Request(args.prompt, references=references, model=args.model, **options)
    extras = [
        f"--{name}"
        for name in ("reference", "resolution", "duration", "ratio")
        if getattr(args, name)
    ]
    if extras:
        raise UsageError(f"{', '.join(extras)}: MiniMax-H3 options (add --model MiniMax-H3)")
    if args.image is None:
        raise UsageError("--image is required (the face image, a URL or a local file)")
    return VideoRequest(
        subject=SubjectReference(args.image),
        prompt=args.prompt,
        prompt_optimizer=False if args.no_optimize else None,
        model=args.model,
    )


async def _generate(args: argparse.Namespace) -> int:
    request = _generate_request(args)
    async with _callbacks(args) as receiver, _client(args, receiver=receiver) as client:
        try:
            task = await client.submit(request)
        except asyncio.CancelledError:
            print(  # noqa: T201
                "interrupted while submitting: if the request had left, a task may exist and "
                "be paid for; check the MiniMax task list before running this again (running "
                "the same command creates a new task)",
                file=sys.stderr,
            )
            raise
        print(f"submitted task {task.task_id}", file=sys.stderr)  # noqa: T201
        try:
            async with asyncio.timeout(args.timeout):
                async for snapshot in task.updates():
                    if not args.json:
                        print(f"task {task.task_id}: {snapshot.status.value}", file=sys.stderr)  # noqa: T201
        except asyncio.CancelledError:
            print(  # noqa: T201
                f"interrupted: task {task.task_id} goes on at MiniMax; follow it with "
                f"`minimax-s2v status {task.task_id}`, then `minimax-s2v download "
                f"{task.task_id} --out FILE` (running the same generate command again creates "
                "and pays for a new task)",
                file=sys.stderr,
            )
            raise
        except TimeoutError:
            print(  # noqa: T201
                f"error: task {task.task_id} not finished after {args.timeout}s; it goes on: "
                f"minimax-s2v status {task.task_id}, "
                f"then minimax-s2v download {task.task_id} --out FILE",
                file=sys.stderr,
            )
            return EXIT["failed"]
        result = await task.wait()
        path = await client.download(task, args.out or f"{task.task_id}.mp4")
        _emit(
            args, f"saved {path}", task_id=task.task_id, status=result.status.value, path=str(path)
        )
    return EXIT["ok"]


async def _status(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        client.task(args.task_id, model=args.model)
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
    failed = snapshot.status in (TaskStatus.FAIL, TaskStatus.CANCELLED)
    return EXIT["failed"] if failed else EXIT["ok"]


async def _download(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        client.task(args.id, model=args.model)
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


@attrs.frozen
class _BatchLine:
    """One accepted line of a batch file."""

    number: int
    request: AnyRequest
    out: Path


def _skipped(path: Path, number: int, label: str | None, error: BaseException) -> str:
    """How a skipped line is reported, wherever it was found wanting: ``FILE:LINE: …``."""
    return f"{path}:{number}: skipped{f' {label}' if label else ''}: {error}"


def _read_batch(path: Path, out: Path, reporter: Reporter) -> tuple[dict[str, _BatchLine], int]:
    """Read the JSONL file: {label: accepted line}, and how many lines were bad."""
    items: dict[str, _BatchLine] = {}
    bad = 0
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero would never end
                raise UsageError(f"{path} is a device, not a batch file")
            # Split as bytes: a line that is not UTF-8 is one bad line, not the whole file.
            lines = file.read().splitlines()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label = None
        try:
            data = _json_line(line)
            if not isinstance(data, dict):
                raise ValueError("a line must be a JSON object")  # noqa: TRY004, TRY301 - a bad line
            label = _batch_label(data, number)
            request = _batch_request(data, path.parent)
            if label in items:
                raise ValueError(f"id {label!r} appears twice")  # noqa: TRY301 - same report
        except (ValueError, MiniMaxError) as error:
            bad += 1
            reporter.line(_skipped(path, number, label, error))
            continue
        items[label] = _BatchLine(number, request, out / f"{label}.mp4")
    return items, bad


def _json_line(line: bytes) -> object:
    """A batch line's JSON document (``ValueError`` says why it is not one)."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 (byte {error.start + 1})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _batch_label(data: dict[str, Any], number: int) -> str:
    """A line's id, safe as a file name (``ValueError`` says why not)."""
    label = str(data.get("id") or f"line-{number:06d}")
    # A leading dot would make a hidden file, and "." and ".." name directories.
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", label):
        raise ValueError(
            f"id {label!r}: use up to 100 letters, digits, '.', '_' and '-', not starting with '.'"
        )
    return label


def _batch_request(data: dict[str, Any], base: Path) -> AnyRequest:
    """A line's request (``ValueError`` says what is wrong)."""
    if Dialect.of_model(data.get("model")) is Dialect.V2:
        return _batch_h3_request(data, base)
    if "subject_reference" in data:
        return parse_request(data)
    if not isinstance(data.get("image"), str):
        raise ValueError('"image" (a URL or a file path) is required')  # noqa: TRY004 - bad line
    return VideoRequest(
        subject=SubjectReference(_resolve(data["image"], base)),
        prompt=data.get("prompt"),
        prompt_optimizer=data.get("prompt_optimizer"),
    )


def _batch_h3_request(data: dict[str, Any], base: Path) -> H3Request:
    """A MiniMax-H3 line: the V2 body itself (``content``), or prompt and ``references``."""
    if "content" in data:
        request = parse_h3_request(data)
        return attrs.evolve(request, references=[_resolve(r, base) for r in request.references])
    references = data.get("references")
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise ValueError('"references" (a list of image URLs or file paths) is required')
    if not isinstance(data.get("prompt"), str):
        raise ValueError('"prompt" is required for MiniMax-H3')  # noqa: TRY004 - bad line
    options = {name: data[name] for name in ("resolution", "duration", "ratio") if name in data}
    return H3Request(
        data["prompt"],
        references=[_resolve(r, base) for r in references],
        model=data["model"],
        **options,
    )


def _resolve(image: str, base: Path) -> str:
    if source_kind(image) != "path":
        return image
    candidate = expand_home(image)
    return str(candidate if candidate.is_absolute() else base / candidate)


async def _batch(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one command, top to bottom
    from .stores import SQLiteStore

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"create {args.out}", error.strerror or str(error)) from None
    probe = Reporter(0, sys.stderr)
    items, bad = _read_batch(args.file, args.out, probe)
    store = SQLiteStore(args.out / JOURNAL)
    rate = RateLimit(submit_rpm=args.rpm) if args.rpm else RateLimit()
    failed = uncertain = saved = skipped = 0
    try:
        async with _client(args, store=store, rate_limit=rate) as client:
            resumed = await client.resume()
            try:
                submissions = await store.submissions()
            except Exception as error:
                raise StoreError("be read", describe(error)) from error
            journaled = {s.label: s for s in submissions if s.label is not None}
            reporter = make_reporter(len(items), as_json=args.json)
            with reporter:
                slots = asyncio.Semaphore(args.concurrency)

                async def finish(label: str, task: Task) -> None:
                    nonlocal failed, saved
                    out = items[label].out
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
                    item = items[label]
                    async with slots:
                        try:
                            task = await client.submit(item.request, label=label)
                        except AuthenticationError:
                            raise  # the whole batch stops: one line, exit code 3
                        except SubmissionUncertainError as error:
                            uncertain += 1
                            reporter.done(label, False, f"{label}: {error}", error=str(error))
                            return
                        except InvalidRequestError as error:
                            bad += 1  # found by preflight: nothing was sent
                            text = _skipped(args.file, item.number, label, error)
                            reporter.done(label, False, text, error=str(error), line=item.number)
                            return
                        except MiniMaxError as error:
                            failed += 1
                            reporter.done(label, False, f"{label}: {error}", error=str(error))
                            return
                        reporter.status(label, "submitted")
                        await finish(label, task)

                following = {t.label for t in resumed.tasks}
                jobs = [finish(t.label, t) for t in resumed.tasks if t.label in items]
                for label, item in items.items():
                    out = item.out
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
    receiver = CallbackReceiver(args.public_url, secret=args.secret)
    async with AsyncExitStack() as stack:
        local = await _listening(stack, receiver.serve(args.host, args.port), args.host, args.port)
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
    seeded = args.seed is not None
    if seeded and not args.overwrite and args.out.is_dir() and any(args.out.glob("*.mp4")):
        # Videos are named by task id, and the same --seed makes the same ids again (without
        # a seed every run's ids are new: `./run demo` can be run again as it is).
        raise UsageError(
            f"{args.out}/ already holds videos of an earlier demo: pick another --out, "
            "remove them, or pass --overwrite"
        )
    with ExitStack() as stack:
        face = stack.enter_context(as_file(files("minimax_s2v").joinpath("assets/sample_face.png")))
        # Every second video is MiniMax-H3's (the V2 API), the same face as its reference.
        requests: list[AnyRequest] = [
            H3Request(DEMO_PROMPTS[i % len(DEMO_PROMPTS)], references=[str(face)])
            if i % 2
            else VideoRequest(subject=face, prompt=DEMO_PROMPTS[i % len(DEMO_PROMPTS)])
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
                                + (
                                    "MiniMax-H3)"
                                    if final.video_url is not None
                                    else f"S2V-01, {final.width}x{final.height})"
                                ),
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


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    """Take SIGTERM as Ctrl-C: whatever handles SIGINT now (asyncio.run's) handles it."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM (a service manager's stop, ``kill``) ends it as Ctrl-C does.

    Killed where it stood, a run left a partly written video behind as a hidden part file
    and did not say how to resume; interrupted, it cleans up and says so.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can be set from the main thread only
        return
    previous = signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["emulate"]:
        from .emulator.__main__ import main as emulate

        return emulate(arguments[1:], prog="minimax-s2v emulate")
    redactor = _secrets_in(arguments)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
        _check_options(args)
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    except UsageError as error:
        return _fail(error, redactor)
    try:
        with _sigterm_as_interrupt():
            return asyncio.run(_COMMANDS[args.command](args))
    except KeyboardInterrupt:
        if args.command == "batch":  # its journal knows what was sent: nothing is sent twice
            print("interrupted; run the same command again to resume", file=sys.stderr)  # noqa: T201
        else:
            print("interrupted", file=sys.stderr)  # noqa: T201
        return EXIT["interrupted"]
    except (MiniMaxError, UsageError) as error:
        return _fail(redactor.clean(error), redactor)


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

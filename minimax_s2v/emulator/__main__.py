"""``python -m minimax_s2v.emulator``: run the MiniMax emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
from collections.abc import Sequence

from ._config import Durations, EmulatorConfig, Endpoint, EndpointFaults, FaultPlan

__all__ = ["main"]


def _durations(text: str) -> Durations:
    try:
        return Durations.from_speed(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--{error}") from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return port


def cannot_listen(host: str, port: int, error: OSError, option: str = "--port") -> str:
    """The one-line message for a socket that could not be bound (a port in use, say)."""
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        reason = (
            f"address already in use (another process has the port; pick another with {option})"
        )
    return f"cannot listen on {host}:{port}: {reason}"


def build_parser(prog: str = "python -m minimax_s2v.emulator") -> argparse.ArgumentParser:
    """The command line of the emulator (``prog`` is how it was started)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A local MiniMax S2V-01 API for tests and offline development.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8090, help="port (default 8090; 0 picks a free one)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="a key to accept (repeatable; default emulator-key); any other key gets 2049, "
        "as a key of the other region does",
    )
    parser.add_argument(
        "--speed",
        type=_durations,
        default=Durations.demo(),
        help="task durations: instant, demo (default), realistic, or a factor",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="make timing, outcomes and faults repeatable"
    )
    parser.add_argument(
        "--data-urls",
        choices=("accept", "reject"),
        default="accept",
        help="accept data: image URLs, or reject them with 1000 (both seen)",
    )
    parser.add_argument(
        "--late-fail-ratio",
        type=float,
        default=0.0,
        help="share of tasks that fail after Processing with 1027",
    )
    parser.add_argument(
        "--submit-rpm", type=int, default=None, help="rate limit of submissions per minute"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help=f"probability of each fault kind ({', '.join(EndpointFaults.KINDS)}) on every "
        "endpoint (chaos)",
    )
    parser.add_argument("--file-size", type=int, default=256 * 1024, help="bytes of each MP4")
    parser.add_argument(
        "--download-rate",
        type=float,
        default=None,
        metavar="BYTES_PER_S",
        help="pace each download to this rate, like a CDN link (default: unpaced)",
    )
    parser.add_argument(
        "--callback-target",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="deliver callbacks to these origins in turn (a load balancer)",
    )
    parser.add_argument(
        "--challenge-timing",
        choices=("in_create", "after_create"),
        default="in_create",
        help="check a callback URL during the submission, which fails with 2013 when the "
        "echo does not come back within 3 s (in_create, the default, as the API was seen "
        "to), or after creating the task, in the background (after_create)",
    )
    parser.add_argument(
        "--v2-max-in-flight",
        type=int,
        default=30,
        metavar="N",
        help="V2 (MiniMax-H3) tasks a key may have queued or running at once (default 30; "
        "0: no cap)",
    )
    parser.add_argument(
        "--h3-max-references",
        choices=("accept", "reject"),
        default="accept",
        help="whether MiniMax-H3-Max takes reference inputs (MiniMax's pages disagree)",
    )
    return parser


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    from ._server import Emulator

    async with Emulator(config, host=host, port=port) as emulator:
        print(f"MiniMax emulator listening on {emulator.url}", flush=True)
        print(f"accepted API key: {emulator.api_key}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()


def main(argv: Sequence[str] | None = None, prog: str = "python -m minimax_s2v.emulator") -> int:
    """Run the emulator until SIGINT or SIGTERM; ``prog`` names the command in messages."""
    args = build_parser(prog).parse_args(argv)
    rate_limits = {Endpoint.SUBMIT: args.submit_rpm} if args.submit_rpm else {}
    try:
        faults = FaultPlan.chaos(args.fault_rate) if args.fault_rate else FaultPlan()
        config = EmulatorConfig(
            api_keys=tuple(args.api_keys or ("emulator-key",)),
            durations=args.speed,
            seed=args.seed,
            data_urls=args.data_urls,
            late_fail_ratio=args.late_fail_ratio,
            rate_limits=rate_limits,
            faults=faults,
            file_size=args.file_size,
            download_rate=args.download_rate,
            callback_targets=tuple(args.callback_target),
            challenge_timing=args.challenge_timing,
            v2_max_in_flight=args.v2_max_in_flight or None,
            h3_max_references=args.h3_max_references,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(f"error: {cannot_listen(args.host, args.port, exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

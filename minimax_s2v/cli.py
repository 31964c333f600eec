"""The ``minimax-s2v`` command line.

Exit codes: 0 success; 1 some generations failed; 2 usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DEMO_PROMPTS = (
    "A woman walks along a beach at sunset and turns to smile at the camera.",
    "A woman reads a book in a cafe, looks up and laughs.",
    "A woman runs toward the camera through a park and winks.",
    "A woman waves from a balcony while city lights come on behind her.",
    "A woman sips tea by a rainy window and smiles softly.",
)


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a command line prints


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``minimax-s2v``."""
    parser = argparse.ArgumentParser(
        prog="minimax-s2v", description="Generate videos with MiniMax S2V-01."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="generate videos against the bundled emulator (no API key needed)",
        description="Start the bundled emulator, generate videos from a sample face, save them.",
    )
    demo.add_argument("--count", type=int, default=5, help="how many videos (default 5)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    demo.add_argument("--seed", type=int, default=None, help="make the emulator repeatable")
    emulate = commands.add_parser("emulate", help="run the MiniMax emulator", add_help=False)
    emulate.add_argument("args", nargs=argparse.REMAINDER)
    return parser


async def _demo(count: int, out: Path, seed: int | None) -> int:
    from ._client import Client
    from ._models import VideoRequest
    from ._polling import PollPolicy
    from .emulator import Durations, Emulator

    with ExitStack() as stack:
        face = stack.enter_context(as_file(files("minimax_s2v").joinpath("assets/sample_face.png")))
        requests = [
            VideoRequest(subject=face, prompt=DEMO_PROMPTS[i % len(DEMO_PROMPTS)])
            for i in range(count)
        ]
        polling = PollPolicy(first_interval=0.5, max_interval=1.5, max_rate=50)
        started = time.perf_counter()
        async with Emulator(durations=Durations.demo(), seed=seed) as emu:
            _say(f"emulator running at {emu.url}; generating {count} videos from {face.name}")
            async with Client(emu.api_key, base_url=emu.url, polling=polling) as client:
                succeeded = failed = 0
                total_bytes = 0
                async for outcome in client.generate_many(
                    requests, concurrency=count, dest_dir=out
                ):
                    done = succeeded + failed + 1
                    generation = outcome.generation
                    if generation is not None and generation.path is not None:
                        size = generation.path.stat().st_size
                        total_bytes += size
                        succeeded += 1
                        _say(
                            f"[{done}/{count}] task {generation.task_id} succeeded: "
                            f"{generation.path} ({size / 1024:.0f} KiB, "
                            f"{generation.snapshot.width}x{generation.snapshot.height})"
                        )
                    else:
                        failed += 1
                        _say(f"[{done}/{count}] request {outcome.index} failed: {outcome.error}")
        elapsed = time.perf_counter() - started
    _say(
        f"done in {elapsed:.1f}s: {succeeded} succeeded, {failed} failed, "
        f"{total_bytes / 1024:.0f} KiB of MP4 in {out}/"
    )
    return EXIT_OK if failed == 0 else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "emulate":
        from .emulator.__main__ import main as emulate

        return emulate(args.args)
    if args.count < 1:
        _say("error: --count must be at least 1")
        return EXIT_USAGE
    try:
        return asyncio.run(_demo(args.count, args.out, args.seed))
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Generate several videos at once, reported by callbacks to a receiver this script runs.

``python examples/many_with_callbacks.py face.jpg videos/ --public-url URL --port 8080``
where URL is how MiniMax reaches port 8080 of this machine (e.g. through a tunnel or a
reverse proxy). Polling takes over for any task whose callback does not arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from minimax_s2v import CallbackReceiver, Client, VideoRequest

PROMPTS = [
    "The person waves at the camera from a sunny street.",
    "The person laughs while reading a letter.",
    "The person looks up at falling snow.",
]


async def main(image: str, out: str, public_url: str, port: int) -> int:
    secret = os.environ.get("MINIMAX_CALLBACK_SECRET") or "example-secret-change-me-0123456789"
    receiver = CallbackReceiver(public_url, secret=secret, fallback_after=120)
    requests = [VideoRequest(subject=image, prompt=prompt) for prompt in PROMPTS]
    failures = 0
    async with receiver.serve("0.0.0.0", port), Client(receiver=receiver) as client:  # noqa: S104
        async for outcome in client.generate_many(requests, concurrency=3, dest_dir=out):
            if outcome.generation is not None:
                print(f"{outcome.index}: saved {outcome.generation.path}")
            else:
                failures += 1
                print(f"{outcome.index}: {outcome.error}")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image")
    parser.add_argument("out")
    parser.add_argument("--public-url", required=True)
    parser.add_argument("--port", type=int, default=8080)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.image, options.out, options.public_url, options.port)))

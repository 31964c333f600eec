"""Generate one video, watching its status change, and save it.

Against MiniMax: ``MINIMAX_API_KEY=... python examples/generate_one.py face.jpg out.mp4``.
Against the emulator: start ``python -m minimax_s2v.emulator --port 8090`` and set
``MINIMAX_BASE_URL=http://127.0.0.1:8090 MINIMAX_API_KEY=emulator-key``.
"""

from __future__ import annotations

import asyncio
import sys

from minimax_s2v import Client, TaskFailedError, VideoRequest


async def main(image: str, out: str) -> int:
    request = VideoRequest(subject=image, prompt="The person turns to the camera and smiles.")
    async with Client() as client:  # key and URL from MINIMAX_API_KEY / MINIMAX_BASE_URL
        task = await client.submit(request)
        print(f"task {task.task_id} submitted")
        async for snapshot in task.updates():
            print(f"  {snapshot.status.value}")
        try:
            await task.wait()
        except TaskFailedError as error:
            print(f"failed: {error}")
            return 1
        path = await client.download(task, out)
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "out.mp4")))

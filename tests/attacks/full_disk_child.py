"""Run in a child process whose files may not grow past RLIMIT_FSIZE (a full disk, as EFBIG).

``python full_disk_child.py download DIR`` or ``... journal DIR``: prints the type of what the
call raised (or OK), one line.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys
from pathlib import Path

from minimax_s2v import Client, MiniMaxError, set_testing
from minimax_s2v.emulator import Emulator
from minimax_s2v.stores import MemoryStore, SQLiteStore
from tests.client_setup import TEST_RETRY, face_request

LIMIT = 300_000  # the emulator's video is bigger; a journal row or two fit


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


async def main(what: str, where: Path) -> None:
    async with Emulator(file_size=2_000_000) as emu:
        store = SQLiteStore(where / "j.db") if what == "journal" else MemoryStore()
        async with Client(emu.api_key, base_url=emu.url, retry=TEST_RETRY, store=store) as client:
            try:
                if what == "download":
                    await client.generate(face_request(), dest=where / "out.mp4")
                else:
                    for _ in range(50):
                        await client.submit(face_request("x" * 1500))
                say("OK")
            except MiniMaxError as error:
                say(f"typed {type(error).__name__}")
            except Exception as error:  # noqa: BLE001 - what the test looks for
                say(f"untyped {type(error).__module__}.{type(error).__name__}")
    left = sorted(p.name for p in where.iterdir() if p.name.endswith(".part"))
    say(f"parts {left}")


if __name__ == "__main__":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
    set_testing()  # retries go at once, as in the suite that runs this child
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))

"""Without the [otel] extra nothing imports OpenTelemetry, and asking for tracing says why."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.processes import ROOT

# Without the extra: nothing imports OpenTelemetry, even through a whole generation.
_BLOCKED = """
import asyncio, importlib.abc, sys, tempfile

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"{name} is blocked")
        return None

sys.meta_path.insert(0, Blocker())

import minimax_s2v, minimax_s2v.cli, minimax_s2v.receiver, minimax_s2v.stores
from minimax_s2v import Client, ConfigurationError, VideoRequest
from minimax_s2v.emulator import Emulator
from minimax_s2v.receiver import CallbackReceiver

async def main():
    async with Emulator() as emu:
        receiver = CallbackReceiver()
        async with receiver.serve("127.0.0.1", 0):
            async with Client(emu.api_key, base_url=emu.url, receiver=receiver) as client:
                request = VideoRequest(subject="https://example.com/f.jpg", prompt="hi")
                with tempfile.TemporaryDirectory() as out:
                    await client.generate(request, out + "/")
                stats = client.stats()
        assert stats.downloads == 1 and receiver.stats().callbacks.applied >= 1
    try:
        Client("key", tracing=True)
    except ConfigurationError as error:
        print("refused:", error)

asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
print("loaded:", loaded)
"""


def test_nothing_imports_opentelemetry_without_the_extra() -> None:
    """With opentelemetry unimportable, a whole generation runs; tracing=True says what to do."""
    env = {k: v for k, v in os.environ.items() if k != "MINIMAX_S2V_TRACING"}
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    assert "refused: tracing needs OpenTelemetry's API: pip install 'minimax-s2v[otel]'" in (
        done.stdout
    )


def test_the_env_var_turns_tracing_on_and_a_bad_install_is_refused() -> None:
    """MINIMAX_S2V_TRACING=1 without the extra: a ConfigurationError at construction."""
    script = _BLOCKED.split("async def main", maxsplit=1)[0] + (
        "try:\n    Client('key')\nexcept ConfigurationError as error:\n    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "MINIMAX_S2V_TRACING": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"

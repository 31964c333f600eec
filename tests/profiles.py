"""Hypothesis profiles: every property test's full count of examples in CI, a fifth locally.

``HYPOTHESIS_PROFILE=ci`` (``.ci/run`` sets it) runs each test with the count it names;
without it the ``dev`` profile runs a fifth as many, so that a local ``./run test`` stays
quick. A test names its full count through :func:`examples`.
"""

from __future__ import annotations

import os

from hypothesis import settings

_FULL = 100  # Hypothesis's own default count, which the ci profile keeps

settings.register_profile("ci", max_examples=_FULL)
settings.register_profile("dev", max_examples=_FULL // 5)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def examples(full: int) -> int:
    """``full`` examples under the ci profile; the loaded profile's share of them otherwise."""
    return max(1, full * settings().max_examples // _FULL)

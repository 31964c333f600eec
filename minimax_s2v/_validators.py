"""attrs validators for configuration objects: each refusal names the class and the field.

A configuration object (``PollPolicy``, ``Timeouts``, ``RateLimit``, ``RetryPolicy``, the
emulator's ``EmulatorConfig``) checks its values when it is constructed, so that nonsense
fails at the line that wrote it, not deep inside a call::

    Timeouts(connect=-5)
    # ConfigurationError: Timeouts.connect must be a number > 0, not -5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any, cast

import attrs

from ._errors import ConfigurationError

__all__ = ["check_argument", "instance_of", "number", "one_of", "strings"]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _refuse(instance: object, attribute: attrs.Attribute[Any], what: str, value: object) -> None:
    name = f"{type(instance).__name__}.{attribute.name}"
    raise ConfigurationError(f"{name} must be {what}, not {value!r}")


def number(
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    integer: bool = False,
    optional: bool = False,
    described: str | None = None,
) -> Validator:
    """A real number (an ``int`` with ``integer``) within the given bounds.

    Args:
        above: the value must be greater than this.
        at_least: the value must be at least this.
        below: the value must be less than this.
        at_most: the value must be at most this.
        integer: only whole numbers (``int``) are accepted.
        optional: ``None`` is accepted too.
        described: what to call an acceptable value in the message (e.g. "a probability").
    """
    bounds = []
    if above is not None:
        bounds.append(f"> {above:g}")
    if at_least is not None:
        bounds.append(f">= {at_least:g}")
    if below is not None:
        bounds.append(f"< {below:g}")
    if at_most is not None:
        bounds.append(f"<= {at_most:g}")
    what = " ".join(["an integer" if integer else "a number", " and ".join(bounds)]).strip()
    what = described or what
    if optional:
        what = f"None or {what}"

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        # bool is an int to Python, never a count or a duration to a reader.
        if isinstance(value, bool) or not isinstance(value, int | float):
            _refuse(instance, attribute, what, value)
            return
        if integer and not isinstance(value, int):
            _refuse(instance, attribute, what, value)
        number = float(value)
        if (
            math.isnan(number)
            or (above is not None and not number > above)
            or (at_least is not None and not number >= at_least)
            or (below is not None and not number < below)
            or (at_most is not None and not number <= at_most)
        ):
            _refuse(instance, attribute, what, value)

    return check


def one_of(choices: Collection[object]) -> Validator:
    """One of ``choices`` exactly."""
    what = "one of " + ", ".join(repr(choice) for choice in choices)

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or value not in choices:
            _refuse(instance, attribute, what, value)

    return check


def instance_of(kind: type | tuple[type, ...], what: str) -> Validator:
    """An instance of ``kind``, described to the reader as ``what``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            _refuse(instance, attribute, what, value)

    return check


def strings(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A tuple of strings (a lone string is refused: it is not a list of one)."""
    if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
        _refuse(instance, attribute, "a tuple of strings", value)


class _Argument:
    """Stands in for an attrs field: the name a refusal gives (``Class.name``)."""

    def __init__(self, name: str) -> None:
        self.name = name


def check_argument(owner: object, name: str, value: object, validator: Validator) -> None:
    """Check a constructor argument of a plain class with one of these validators.

    Raises:
        ConfigurationError: ``value`` is refused; the message names ``Owner.name``.
    """
    validator(owner, cast("attrs.Attribute[Any]", _Argument(name)), value)

"""Settings of the emulator: keys, task timing, outcomes, files, callbacks, limits, faults."""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, cast

import attrs

from .._errors import ConfigurationError
from .._validators import instance_of, number, one_of, strings
from .._wire import is_http_url

__all__ = [
    "CallbackFaults",
    "Durations",
    "EmulatorConfig",
    "Endpoint",
    "EndpointFaults",
    "FaultPlan",
]

Range = tuple[float, float]


class Endpoint(enum.Enum):
    """The endpoint classes that rate limits and fault plans are set for."""

    SUBMIT = "submit"
    QUERY = "query"
    RETRIEVE = "retrieve"
    DOWNLOAD = "download"
    #: The V2 API (MiniMax-H3): create, query by id, list, cancel.
    V2_SUBMIT = "v2_submit"
    V2_QUERY = "v2_query"
    V2_LIST = "v2_list"
    V2_CANCEL = "v2_cancel"


def _as_range(value: float | Range) -> Range:
    if isinstance(value, int | float):
        return (float(value), float(value))
    low, high = value
    return (float(low), float(high))


def _check_range(_: object, attribute: attrs.Attribute[Range], value: Range) -> None:
    low, high = value
    # Not "low < 0 or high < low": NaN passes both, and an infinite phase never ends.
    if not (0 <= low <= high and math.isfinite(high)):
        raise ValueError(
            f"{attribute.name} must be a finite duration or a (low, high) range, low <= high"
        )


@attrs.frozen
class Durations:
    """How long each phase lasts, in seconds: a value, or a (low, high) range drawn per task."""

    preparing: Range = attrs.field(default=(0.0, 0.0), converter=_as_range, validator=_check_range)
    queueing: Range = attrs.field(default=(0.0, 0.0), converter=_as_range, validator=_check_range)
    processing: Range = attrs.field(default=(0.0, 0.0), converter=_as_range, validator=_check_range)

    @classmethod
    def instant(cls) -> Durations:
        """Every phase takes no time: a task is done as soon as it is created (tests)."""
        return cls()

    @classmethod
    def demo(cls) -> Durations:
        """A few seconds in all: long enough to watch the states go by."""
        return cls(preparing=(0.2, 0.6), queueing=(0.3, 1.2), processing=(1.0, 3.0))

    @classmethod
    def realistic(cls) -> Durations:
        """Like the real service: about one to five minutes in all."""
        return cls(preparing=(2, 8), queueing=(5, 60), processing=(50, 230))

    @classmethod
    def from_speed(cls, speed: str | float) -> Durations:
        """The durations a speed names, as the command line's ``--speed`` takes it.

        Args:
            speed: ``"instant"``, ``"demo"``, ``"realistic"``, or a factor of realistic
                (``0.01`` is a hundred times faster than the real service).

        Raises:
            ValueError: anything else (the message says what is accepted).
        """
        named = {"instant": cls.instant, "demo": cls.demo, "realistic": cls.realistic}
        if isinstance(speed, str) and speed in named:
            return named[speed]()
        try:
            factor = float(speed)
        except (TypeError, ValueError):
            factor = math.nan
        if isinstance(speed, bool) or not (factor >= 0 and math.isfinite(factor)):
            raise ValueError(
                "speed takes instant, demo, realistic or a factor of realistic (finite, >= 0), "
                f"not {speed!r}"
            )
        return cls.realistic().scaled(factor)

    def scaled(self, factor: float) -> Durations:
        """The same durations multiplied by ``factor``."""
        return Durations(
            preparing=(self.preparing[0] * factor, self.preparing[1] * factor),
            queueing=(self.queueing[0] * factor, self.queueing[1] * factor),
            processing=(self.processing[0] * factor, self.processing[1] * factor),
        )


_PROBABILITY = number(at_least=0, at_most=1, described="a probability between 0 and 1")


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _probability_field() -> float:
    return attrs.field(default=0.0, validator=_PROBABILITY)


@attrs.frozen
class EndpointFaults:
    """Probabilities of each fault on one endpoint; one draw per request picks at most one.

    Attributes:
        http_5xx: answer 500/502/503 with a short non-JSON body; nothing is done.
        server_error: answer in-band 1000, 1001 or 1013; nothing is done.
        rate_limit: answer in-band 1002 (or HTTP 429 in HTTP rate-limit mode).
        drop: close the connection without an answer; nothing is done (for downloads:
            after part of the body was sent).
        slow: answer normally after ``slow_seconds``.
        non_json: answer HTTP 200 with an HTML page; nothing is done.
        lost_response: submit only: the task IS created, then the connection is closed
            before the answer (the ambiguous submit).

    ``EndpointFaults.KINDS`` names the kinds (the probability fields), in the order one
    draw tries them.
    """

    KINDS: ClassVar[tuple[str, ...]]

    http_5xx: float = _probability_field()
    server_error: float = _probability_field()
    rate_limit: float = _probability_field()
    drop: float = _probability_field()
    slow: float = _probability_field()
    non_json: float = _probability_field()
    lost_response: float = _probability_field()
    slow_seconds: float = 2.0

    def __attrs_post_init__(self) -> None:
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {self.total:.3f}, more than 1")

    @property
    def total(self) -> float:
        """The probability that a request meets any fault."""
        return float(sum(getattr(self, kind) for kind in self.KINDS))

    @classmethod
    def uniform(
        cls, probability: float, *, submit: bool = False, slow_seconds: float = 2.0
    ) -> EndpointFaults:
        """Every fault kind with the same probability (``lost_response`` only for submit)."""
        chances = dict.fromkeys(cls.KINDS, probability)
        chances["lost_response"] = probability if submit else 0.0
        return cls(slow_seconds=slow_seconds, **chances)


# Derived from the fields, so that a new kind is declared in one place.
EndpointFaults.KINDS = tuple(
    field.name for field in attrs.fields(EndpointFaults) if field.name != "slow_seconds"
)


@attrs.frozen
class CallbackFaults:
    """Probabilities of what happens to each status callback (drawn independently).

    Attributes:
        drop: the callback is never sent.
        duplicate: it is sent twice.
        reorder: it is held back and sent after the next one.
        delay: it is sent ``delay_seconds`` late.
    """

    drop: float = _probability_field()
    duplicate: float = _probability_field()
    reorder: float = _probability_field()
    delay: float = _probability_field()
    delay_seconds: float = 1.0


@attrs.frozen
class FaultPlan:
    """A seedable plan of faults: the same seed gives the same fault sequence per endpoint."""

    endpoints: Mapping[Endpoint, EndpointFaults] = attrs.field(factory=dict)
    callbacks: CallbackFaults = attrs.field(factory=CallbackFaults)

    def for_endpoint(self, endpoint: Endpoint) -> EndpointFaults:
        """The faults of ``endpoint`` (none when not planned)."""
        return self.endpoints.get(endpoint, _NO_FAULTS)

    @classmethod
    def chaos(cls, probability: float = 0.05, *, slow_seconds: float = 2.0) -> FaultPlan:
        """Every fault kind on every API endpoint at ``probability`` (the chaos test plan)."""
        return cls(
            endpoints={
                endpoint: EndpointFaults.uniform(
                    probability,
                    submit=endpoint in (Endpoint.SUBMIT, Endpoint.V2_SUBMIT),
                    slow_seconds=slow_seconds,
                )
                for endpoint in Endpoint
                if endpoint is not Endpoint.DOWNLOAD
            }
        )


_NO_FAULTS = EndpointFaults()
_BOOL = instance_of(bool, "True or False")


# The converters below take what reads naturally in a call or a pytest marker; anything
# they cannot convert is passed on unchanged for the validator to refuse, naming the field.


def _usable_keys(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    # A key no Authorization header can carry would refuse every request with 1004 or 2049.
    if not value or any(
        not key.strip() or key != key.strip() or not key.isprintable() for key in value
    ):
        name = f"{type(instance).__name__}.{attribute.name}"
        raise ConfigurationError(
            f"{name} must hold at least one key, each printable, without spaces at its ends"
        )


def _http_origins(
    instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    # Each callback is sent to one of them: one that is no URL would fail every delivery.
    for target in value:
        if not is_http_url(target):
            name = f"{type(instance).__name__}.{attribute.name}"
            raise ConfigurationError(
                f"{name} must hold absolute http(s) URLs (http://host:port), not {target!r}"
            )


def _as_tuple(value: Sequence[str]) -> tuple[str, ...]:
    # A list becomes a tuple; a lone string is not a list of one (the validator refuses it).
    return tuple(value) if isinstance(value, list) else cast("tuple[str, ...]", value)


def _as_durations(value: Durations | str | float) -> Durations:
    # The command line's speed names and factors ("demo", 0.01).
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            return Durations.from_speed(value)
    return cast("Durations", value)


def _as_endpoint_keys(value: Mapping[Endpoint, int] | Mapping[str, int]) -> Mapping[Endpoint, int]:
    # {"submit": 5} means {Endpoint.SUBMIT: 5}.
    if not isinstance(value, Mapping):
        return cast("Mapping[Endpoint, int]", value)
    names: dict[object, Endpoint] = {endpoint.value: endpoint for endpoint in Endpoint}
    return {names.get(key, cast("Endpoint", key)): rpm for key, rpm in value.items()}


def _check_rate_limits(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    good = isinstance(value, Mapping) and all(
        isinstance(key, Endpoint)
        and isinstance(rpm, int)
        and not isinstance(rpm, bool)
        and rpm >= 1
        for key, rpm in value.items()
    )
    if not good:
        raise ConfigurationError(
            f"{type(instance).__name__}.{attribute.name} must map endpoints "
            f"({', '.join(e.value for e in Endpoint)}) to requests per minute (an integer >= 1), "
            f"not {value!r}"
        )


@attrs.frozen
class EmulatorConfig:
    """Everything the emulator can be told.

    Attributes:
        api_keys: the keys accepted. Any other key gets ``2049 invalid api key``, which is
            also what the real API answers a key of the other region.
        durations: phase durations; zero for tests, a few seconds for the demo.
        seed: makes task timing, outcomes, ids and every fault draw repeatable.
        sensitive_marker: a prompt containing it fails right after Preparing with 1026.
        late_fail_ratio: the share of tasks that fail after Processing with 1027.
        data_urls: ``"accept"`` data URLs, or ``"reject"`` them with 1000 (both seen).
        download_ttl: seconds a ``download_url`` stays valid (expired: HTTP 403).
        file_size: bytes of each generated MP4 (streamed, never held in memory).
        download_rate: bytes per second each download is paced to, like a CDN link; ``None``
            serves as fast as the connection takes them.
        report_file_bytes: report the size in retrieve's ``bytes`` (else 0, also seen).
        backup_download_url: add ``backup_download_url`` to retrieve answers.
        task_ttl: seconds after creation when a task is forgotten (query: error 2013).
        challenge: validate each callback URL with a ``challenge`` first.
        challenge_timing: when the challenge is sent. ``"in_create"`` (the default, as two
            field reports saw the real API do): during the submission, which answers only
            after the echo; a refused connection, a timeout, a non-2xx answer or a wrong echo
            answers ``2013 invalid params, fail to check callback url`` and creates nothing.
            ``"after_create"`` (the older reading): after the task was created, in the
            background; a failed challenge only stops the task's status callbacks.
        challenge_timeout: seconds the echo may take.
        stop_after_failed_challenge: with ``"after_create"``, no status callbacks for a task
            whose challenge failed.
        callback_casing: ``"lower"`` (``processing``/``success``/``failed``, as documented) or
            ``"query"`` (``Processing``/``Success``/``Fail``, as a sibling API sends).
        callback_timeout: seconds the emulator waits for a callback answer.
        submit_answer_delay: seconds between creating a task and answering the submit, so
            that callbacks can arrive before the answer does (as they may in production).
        callback_targets: origins (``http://host:port``) to deliver callbacks to in turn,
            keeping each URL's path and query: a load balancer in front of several replicas.
        rate_limits: requests per minute per endpoint class (sliding 60 s window), per key.
        rate_limit_mode: ``"inband"`` (HTTP 200 + 1002) or ``"http"`` (HTTP 429).
        faults: the fault plan.
        v2_max_in_flight: V2 tasks a key may have queued or running at once (MiniMax-H3's
            documented 30); a create past it answers 429 and creates nothing. ``None``: no cap.
        h3_max_references: ``"accept"`` reference inputs on MiniMax-H3-Max (the newer Chinese
            page) or ``"reject"`` them with 400/2013 (the older English page and the guide).
        v2_aigc_watermark: ``"accept"`` ``aigc_watermark`` on V2 creates (the Chinese page) or
            ``"reject"`` it with 400/2013 (a reading of the English page).
    """

    api_keys: tuple[str, ...] = attrs.field(
        default=("emulator-key",), converter=_as_tuple, validator=[strings, _usable_keys]
    )
    durations: Durations = attrs.field(
        factory=Durations,
        converter=_as_durations,
        validator=instance_of(
            Durations, "a Durations or a speed (instant, demo, realistic or a factor)"
        ),
    )
    seed: int | None = attrs.field(default=None, validator=number(integer=True, optional=True))
    sensitive_marker: str = attrs.field(default="[sensitive]", validator=instance_of(str, "a str"))
    late_fail_ratio: float = attrs.field(default=0.0, validator=_PROBABILITY)
    data_urls: Literal["accept", "reject"] = attrs.field(
        default="accept", validator=one_of(("accept", "reject"))
    )
    download_ttl: float = attrs.field(default=3600.0, validator=number(at_least=0))
    file_size: int = attrs.field(default=256 * 1024, validator=number(at_least=1, integer=True))
    download_rate: float | None = attrs.field(
        default=None, validator=number(above=0, optional=True)
    )
    report_file_bytes: bool = attrs.field(default=True, validator=_BOOL)
    backup_download_url: bool = attrs.field(default=False, validator=_BOOL)
    task_ttl: float = attrs.field(default=7 * 24 * 3600.0, validator=number(at_least=0))
    challenge: bool = attrs.field(default=True, validator=_BOOL)
    challenge_timing: Literal["in_create", "after_create"] = attrs.field(
        default="in_create", validator=one_of(("in_create", "after_create"))
    )
    challenge_timeout: float = attrs.field(default=3.0, validator=number(above=0))
    stop_after_failed_challenge: bool = attrs.field(default=True, validator=_BOOL)
    callback_casing: Literal["lower", "query"] = attrs.field(
        default="lower", validator=one_of(("lower", "query"))
    )
    callback_timeout: float = attrs.field(default=10.0, validator=number(above=0))
    submit_answer_delay: float = attrs.field(default=0.0, validator=number(at_least=0))
    callback_targets: tuple[str, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=[strings, _http_origins]
    )
    rate_limits: Mapping[Endpoint, int] = attrs.field(
        factory=dict, converter=_as_endpoint_keys, validator=_check_rate_limits
    )
    rate_limit_mode: Literal["inband", "http"] = attrs.field(
        default="inband", validator=one_of(("inband", "http"))
    )
    faults: FaultPlan = attrs.field(
        factory=FaultPlan, validator=instance_of(FaultPlan, "a FaultPlan")
    )
    v2_max_in_flight: int | None = attrs.field(
        default=30, validator=number(at_least=1, integer=True, optional=True)
    )
    h3_max_references: Literal["accept", "reject"] = attrs.field(
        default="accept", validator=one_of(("accept", "reject"))
    )
    v2_aigc_watermark: Literal["accept", "reject"] = attrs.field(
        default="accept", validator=one_of(("accept", "reject"))
    )

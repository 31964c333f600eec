"""Settings of the emulator: keys, task timing, outcomes, files, callbacks, limits, faults."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Literal

import attrs

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


def _as_range(value: float | Range) -> Range:
    if isinstance(value, int | float):
        return (float(value), float(value))
    low, high = value
    return (float(low), float(high))


def _check_range(_: object, attribute: attrs.Attribute[Range], value: Range) -> None:
    low, high = value
    if low < 0 or high < low:
        raise ValueError(f"{attribute.name} must be a duration or a (low, high) range, low <= high")


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

    def scaled(self, factor: float) -> Durations:
        """The same durations multiplied by ``factor``."""
        return Durations(
            preparing=(self.preparing[0] * factor, self.preparing[1] * factor),
            queueing=(self.queueing[0] * factor, self.queueing[1] * factor),
            processing=(self.processing[0] * factor, self.processing[1] * factor),
        )


def _probability(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability between 0 and 1, got {value}")


def _positive_or_none(
    _: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _probability_field() -> float:
    return attrs.field(default=0.0, validator=_probability)


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
    """

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
        return (
            self.http_5xx
            + self.server_error
            + self.rate_limit
            + self.drop
            + self.slow
            + self.non_json
            + self.lost_response
        )

    @classmethod
    def uniform(
        cls, probability: float, *, submit: bool = False, slow_seconds: float = 2.0
    ) -> EndpointFaults:
        """Every fault kind with the same probability (``lost_response`` only for submit)."""
        return cls(
            slow_seconds=slow_seconds,
            http_5xx=probability,
            server_error=probability,
            rate_limit=probability,
            drop=probability,
            slow=probability,
            non_json=probability,
            lost_response=probability if submit else 0.0,
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
                    probability, submit=endpoint is Endpoint.SUBMIT, slow_seconds=slow_seconds
                )
                for endpoint in (Endpoint.SUBMIT, Endpoint.QUERY, Endpoint.RETRIEVE)
            }
        )


_NO_FAULTS = EndpointFaults()


@attrs.frozen
class EmulatorConfig:
    """Everything the emulator can be told.

    Attributes:
        api_keys: keys accepted as this region's.
        other_region_keys: keys "of the other region": rejected with 2049, as the real API does.
        region: ``"global"`` (api.minimax.io) or ``"cn"`` (api.minimaxi.com, which also takes
            ``aigc_watermark``).
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
    """

    api_keys: tuple[str, ...] = ("emulator-key",)
    other_region_keys: tuple[str, ...] = ()
    region: Literal["global", "cn"] = "global"
    durations: Durations = attrs.field(factory=Durations)
    seed: int | None = None
    sensitive_marker: str = "[sensitive]"
    late_fail_ratio: float = attrs.field(default=0.0, validator=_probability)
    data_urls: Literal["accept", "reject"] = "accept"
    download_ttl: float = 3600.0
    file_size: int = 256 * 1024
    download_rate: float | None = attrs.field(default=None, validator=_positive_or_none)
    report_file_bytes: bool = True
    backup_download_url: bool = False
    task_ttl: float = 7 * 24 * 3600.0
    challenge: bool = True
    challenge_timing: Literal["in_create", "after_create"] = attrs.field(
        default="in_create", validator=attrs.validators.in_(("in_create", "after_create"))
    )
    challenge_timeout: float = attrs.field(default=3.0, validator=_positive)
    stop_after_failed_challenge: bool = True
    callback_casing: Literal["lower", "query"] = "lower"
    callback_timeout: float = 10.0
    submit_answer_delay: float = 0.0
    callback_targets: tuple[str, ...] = ()
    rate_limits: Mapping[Endpoint, int] = attrs.field(factory=dict)
    rate_limit_mode: Literal["inband", "http"] = "inband"
    faults: FaultPlan = attrs.field(factory=FaultPlan)

"""What the chaos runs of both dialects check: nothing lost, nothing paid twice, all reported."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from minimax_s2v import APIError, GenerationOutcome, SubmissionUncertainError, TransportError
from minimax_s2v.emulator import Emulator, Endpoint, EndpointFaults, FaultPlan

FILE_SIZE = 40_000


def chaos_plan() -> FaultPlan:
    """Every fault kind at 5% on every endpoint, downloads included; slow means 0.2 s."""
    chaos = FaultPlan.chaos(0.05, slow_seconds=0.2)
    return FaultPlan(
        endpoints={
            **chaos.endpoints,
            Endpoint.DOWNLOAD: EndpointFaults.uniform(0.05, slow_seconds=0.2),
        }
    )


def check_chaos_outcomes(
    outcomes: Sequence[GenerationOutcome],
    emu: Emulator,
    *,
    submit: Endpoint,
    faulty: Sequence[str],
    total: int,
) -> None:
    """Every request has one outcome, every task the emulator created reached the caller.

    A task was created at most once per request. Each is reported by its id, as the task
    of its own request, or, where the submission's answer was lost, as that request's
    uncertain submission; and every task reported exists.
    """
    tasks = emu.state(tasks=True)["tasks"]
    faults = emu.counters.faults[submit.value]
    assert sorted(o.index for o in outcomes) == list(range(total))
    created = Counter(task["prompt"] for task in tasks)
    assert max(created.values()) == 1  # nothing created twice
    submitted = {o.request.prompt for o in outcomes if o.generation is not None}
    uncertain = {
        o.request.prompt for o in outcomes if isinstance(o.error, SubmissionUncertainError)
    }
    other = [
        o.error
        for o in outcomes
        if o.error is not None and not isinstance(o.error, SubmissionUncertainError)
    ]
    assert all(isinstance(e, APIError | TransportError) for e in other), other
    assert len(submitted) + len(uncertain) + len(other) == total

    reported = {o.task_id: o.request.prompt for o in outcomes if o.task_id is not None}
    made = {task["task_id"]: task["prompt"] for task in tasks}
    assert reported.items() <= made.items()  # every reported task exists, for its own request
    unreported = {task_id: prompt for task_id, prompt in made.items() if task_id not in reported}
    assert set(unreported.values()) <= uncertain, unreported
    assert len(unreported) == faults["lost_response"]
    assert submitted <= set(created)

    # Every fault kind really happened on the submit endpoint, ambiguous submits included.
    assert set(faults) == set(EndpointFaults.KINDS)
    for endpoint in faulty:
        assert emu.counters.faults[endpoint], endpoint
    # Uncertain without a task are at most the ambiguous faults that created nothing.
    assert len(uncertain - set(created)) <= faults["drop"] + faults["http_5xx"] + faults["non_json"]
    assert len(uncertain & set(created)) == faults["lost_response"]
    saved = [o.generation.path for o in outcomes if o.generation is not None and o.generation.path]
    assert len(saved) == len(submitted)
    assert all(p.stat().st_size == FILE_SIZE for p in saved)

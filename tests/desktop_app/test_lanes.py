"""The lane runner alone, with a plain object as its context: nothing of Kenning."""

from __future__ import annotations

import threading
import time
from typing import Any

from desktop_app.lanes import LaneJob, Lanes


class Counter:
    def __init__(self) -> None:
        self.closed_with: list[float | None] = []
        self.threads: dict[str, int] = {}


def make(open_: Any = Counter) -> Lanes:
    return Lanes(("own", "slow"), open_, lambda ctx, left: ctx.closed_with.append(left))


def test_jobs_run_on_their_lane_and_results_come_back_on_the_gui_thread(qtbot: Any) -> None:
    lanes = make()
    with qtbot.waitSignal(lanes.sig_opened, timeout=10_000):
        lanes.start()
    gui = threading.get_ident()
    got: dict[str, Any] = {}

    def run(lane: str) -> Any:
        def body(ctx: Counter, report: Any) -> Any:
            ctx.threads[lane] = threading.get_ident()
            report(f"{lane} working")
            return lane.upper()

        return body

    returned: list[Any] = []
    lanes.sig_returned.connect(lambda job, result: returned.append(job.on_result(result)))
    lanes.sig_yielded.connect(lambda job, value: job.on_yield(value))
    for lane in ("own", "slow"):
        lanes.submit(
            LaneJob(
                lane,
                run(lane),
                on_result=lambda r, lane=lane: got.__setitem__(lane, (r, threading.get_ident())),
                on_yield=lambda v, lane=lane: got.__setitem__(f"{lane} yield", v),
                lane=lane,
            )
        )
    qtbot.waitUntil(lambda: len(returned) == 2, timeout=10_000)
    context: Counter = lanes.context
    assert got["own"][0] == "OWN" and got["slow"][0] == "SLOW"
    assert got["slow yield"] == "slow working"  # a streamed value, delivered in order
    assert got["own"][1] == gui == got["slow"][1]  # delivered on the GUI thread
    assert context.threads["own"] != context.threads["slow"] != gui  # each on its lane
    assert lanes.stop(time.monotonic() + 10)
    assert context.closed_with and not lanes.running
    lanes.dispose()


def test_a_context_that_fails_to_open_fails_every_job_in_words(qtbot: Any) -> None:
    def broken() -> Any:
        raise RuntimeError("disk on fire")

    lanes = Lanes(("own",), broken, lambda ctx, left: None, not_open="It did not open.")
    with qtbot.waitSignal(lanes.sig_open_failed, timeout=10_000) as failed:
        lanes.start()
    assert "disk on fire" in failed.args[0] and "Traceback" in failed.args[1]
    with qtbot.waitSignal(lanes.sig_errored, timeout=10_000) as errored:
        lanes.submit(LaneJob("Could not count", lambda ctx, report: 1))
    assert errored.args[1].startswith("It did not open.")
    assert lanes.stop(None)


def test_retire_closes_on_the_owner_and_signals_when_every_thread_ended(qtbot: Any) -> None:
    lanes = make()
    with qtbot.waitSignal(lanes.sig_opened, timeout=10_000):
        lanes.start()
    context: Counter = lanes.context
    with qtbot.waitSignal(lanes.sig_retired, timeout=10_000):
        assert lanes.retire()
    assert context.closed_with == [None] and not lanes.running
    lanes.dispose()

"""The single writer: order, one-at-a-time rounds, cancel."""

from __future__ import annotations

import threading

from engine.writer import Writer


def test_submit_once_coalesces_and_cancel_lets_the_next_round_queue() -> None:
    writer = Writer()
    gate = threading.Event()
    ran: list[str] = []
    try:
        writer.submit("blocking", lambda cancel: gate.wait(10))
        assert writer.submit_once("round", "a round", lambda cancel: ran.append("first"))
        assert not writer.submit_once("round", "a round", lambda cancel: ran.append("twice"))
        assert writer.is_queued("round")
        writer.cancel()  # drops the queued round before it starts
        gate.set()
        assert writer.wait_until_idle(10)
        assert ran == [] and not writer.is_queued("round")
        assert writer.submit_once("round", "a round", lambda cancel: ran.append("after"))
        assert writer.wait_until_idle(10)
        assert ran == ["after"]
    finally:
        gate.set()
        assert writer.stop(10)

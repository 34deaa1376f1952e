"""Lanes: named worker threads that run jobs against one shared object, off the GUI thread.

A :class:`Lanes` set opens its object (the *context*) on its first lane, the
owner, runs each :class:`LaneJob` on the lane it names, and delivers the job's
result, the values it streams and its failure back on the GUI thread as
signals, in the style of superqt's thread workers. Closing runs on the owner
lane too, so the object is opened, used and closed off the GUI thread.

It knows nothing of Kenning: :mod:`desktop_app.bridge` opens the engine in it
and decides which call runs on which lane.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

Report = Callable[[Any], None]
Describe = Callable[[BaseException, str], tuple[str, str]]


def describe_plainly(exc: BaseException, doing: str) -> tuple[str, str]:
    """A message and the traceback as details: the default for unexpected errors."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"Something went wrong ({doing}): {exc}", details


@dataclass(eq=False)
class LaneJob:
    """One call: ``run(context, report)`` on a lane, callbacks on the GUI thread.

    Args:
        title: What the error says failed ("Could not add the folder").
        run: Runs on the lane's thread; ``report(value)`` streams a value to ``on_yield``.
        on_result: Gets the return value, on the GUI thread.
        on_yield: Gets each reported value, on the GUI thread.
        quiet: Log no traceback for a failure (polls that fail the same way often).
        lane: Which lane runs it.
        on_error: Called on the GUI thread when it fails, before the error goes out.
    """

    title: str
    run: Callable[[Any, Report], Any]
    on_result: Callable[[Any], None] | None = None
    on_yield: Callable[[Any], None] | None = None
    quiet: bool = False
    lane: str = ""
    on_error: Callable[[], None] | None = None


class _Runner(QObject):
    """Runs jobs on its thread against the context the owner lane holds."""

    sig_yielded = Signal(object, object)  # job, value
    sig_returned = Signal(object, object)  # job, result
    sig_errored = Signal(object, str, str)  # job, message, details

    def __init__(self, owner: _Owner | None, describe: Describe) -> None:
        super().__init__()
        self._owner = owner
        self._describe = describe

    def _context(self) -> Any:
        return self._owner.context if self._owner is not None else None

    def _failure(self) -> tuple[str, str]:
        failure = self._owner.open_failure if self._owner is not None else None
        return failure or ("", "")

    @Slot(object)
    def run_job(self, job: LaneJob) -> None:
        context = self._context()
        if context is None:
            message, details = self._failure()
            not_open = self._owner.not_open if self._owner is not None else ""
            self.sig_errored.emit(job, f"{not_open} {message}".strip(), details)
            return
        try:
            result = job.run(context, lambda value: self.sig_yielded.emit(job, value))
        except Exception as exc:
            if not job.quiet:
                log.exception("%s", job.title)
            self.sig_errored.emit(job, *self._describe(exc, job.title.lower()))
            return
        self.sig_returned.emit(job, result)


class _Owner(_Runner):
    """The first lane: opens the context, runs jobs, closes it and ends its thread."""

    sig_opened = Signal()
    sig_open_failed = Signal(str, str)  # message, details

    def __init__(
        self,
        open_: Callable[[], Any],
        close: Callable[[Any, float | None], None],
        describe: Describe,
        *,
        opening: str,
        not_open: str,
    ) -> None:
        super().__init__(None, describe)
        self._open = open_
        self._close = close
        self._opening = opening
        self.not_open = not_open
        self.context: Any = None  # read from other threads: the other lanes, the GUI
        self.open_failure: tuple[str, str] | None = None
        self.close_deadline: float | None = None  # monotonic; set before close is sent
        self._owner = self  # its own jobs see the context and the failure like the others

    @Slot()
    def open(self) -> None:
        try:
            self.context = self._open()
        except Exception as exc:
            log.exception("could not open the lanes' context (%s)", self._opening)
            self.open_failure = self._describe(exc, self._opening)
            self.sig_open_failed.emit(*self.open_failure)
            return
        self.sig_opened.emit()

    @Slot()
    def close(self) -> None:
        try:
            if self.context is not None:
                deadline = self.close_deadline
                left = None if deadline is None else max(0.5, deadline - time.monotonic())
                self._close(self.context, left)
        except Exception:
            log.exception("closing the lanes' context failed")
        finally:
            self.context = None
            thread = self.thread()
            if thread is not None:
                thread.quit()


class _Dispatch(QObject):
    """Lives on the GUI thread; its signal queues a job on one runner's thread."""

    sig_submit = Signal(object)


class Lanes(QObject):
    """One set of lane threads around one context, from opening to closing.

    Args:
        names: The lanes; the first is the owner (opens, closes, runs its own jobs).
        open_: Creates the context, on the owner lane.
        close: ``close(context, seconds_left)`` on the owner lane; seconds_left is
            None when :meth:`stop` has no deadline.
        describe: Turns an exception into (message, details) for the person.
        opening: What opening is, for its error ("starting Kenning").
        not_open: Prefix of the error every job gets when opening failed.
        thread_prefix: Names the threads ``<prefix>-<lane>`` (for debuggers and logs).

    A set is used once: to open a new context (new settings), retire this one
    and make another. Keep a reference until :attr:`running` is False: a
    running QThread must not be destroyed.
    """

    sig_opened = Signal()
    sig_open_failed = Signal(str, str)  # message, details
    sig_yielded = Signal(object, object)  # job, value
    sig_returned = Signal(object, object)  # job, result
    sig_errored = Signal(object, str, str)  # job, message, details
    sig_retired = Signal()  # every thread has ended after retire()

    _sig_open = Signal()
    _sig_close = Signal()

    def __init__(
        self,
        names: Sequence[str],
        open_: Callable[[], Any],
        close: Callable[[Any, float | None], None],
        describe: Describe = describe_plainly,
        *,
        opening: str = "opening",
        not_open: str = "",
        thread_prefix: str = "lane",
    ) -> None:
        super().__init__()
        if not names:
            raise ValueError("Lanes need at least one lane")
        self.names = tuple(names)
        self._owner = _Owner(open_, close, describe, opening=opening, not_open=not_open)
        self._threads: dict[str, QThread] = {}
        self._dispatch: dict[str, _Dispatch] = {}
        self._retiring: list[QThread] = []
        runners: dict[str, _Runner] = {self.names[0]: self._owner}
        for lane in self.names[1:]:
            runners[lane] = _Runner(self._owner, describe)
        for lane, runner in runners.items():
            thread = QThread()
            thread.setObjectName(f"{thread_prefix}-{lane}")
            runner.moveToThread(thread)
            runner.sig_yielded.connect(self.sig_yielded)
            runner.sig_returned.connect(self.sig_returned)
            runner.sig_errored.connect(self.sig_errored)
            dispatch = _Dispatch(self)
            dispatch.sig_submit.connect(runner.run_job)
            self._dispatch[lane] = dispatch
            self._threads[lane] = thread
        self._runners = runners  # referenced here: they live as long as the set
        self._sig_open.connect(self._owner.open)
        self._sig_close.connect(self._owner.close)
        self._owner.sig_opened.connect(self.sig_opened)
        self._owner.sig_open_failed.connect(self.sig_open_failed)

    @property
    def owner(self) -> str:
        return self.names[0]

    @property
    def started(self) -> bool:
        """Whether the owner lane is running (opening, open or closing)."""
        return self._threads[self.owner].isRunning()

    @property
    def running(self) -> bool:
        """Whether any lane's thread still runs."""
        return any(thread.isRunning() for thread in self._threads.values())

    @property
    def context(self) -> Any:
        """The opened context, or None (not open yet, failed, or closed)."""
        return self._owner.context

    def is_running(self, lane: str) -> bool:
        return self._threads[lane].isRunning()

    def start(self) -> None:
        """Start every lane and open the context on the owner; returns at once."""
        if self.started:
            return
        # No lower priority (nice) for the lanes: a descheduled worker holding the GIL
        # kept the GUI thread waiting longer (priority inversion on a busy machine).
        for thread in self._threads.values():
            thread.start()
        self._sig_open.emit()

    def submit(self, job: LaneJob) -> None:
        """Queue ``job`` on its lane (the owner when it names none)."""
        self._dispatch[job.lane or self.owner].sig_submit.emit(job)

    def stop(self, deadline: float | None, *, finish_first: Sequence[str] = ()) -> bool:
        """Close the context and end the threads, by ``deadline`` (monotonic) if given.

        The lanes other than the owner end after their current job. Those in
        ``finish_first`` (short writes worth finishing) are waited for before the
        context closes on the owner; the rest get a moment after it (their work is
        not saved, and a lane loading a model cannot be interrupted).

        Returns:
            True when every thread has ended; False when one was still busy.
        """
        if not self.started:
            return True
        others = self.names[1:]
        for lane in others:
            self._threads[lane].quit()
        stopped = all([_wait(self._threads[lane], deadline) for lane in finish_first])
        self._owner.close_deadline = None if deadline is None else deadline - 0.5
        self._sig_close.emit()
        stopped = _wait(self._threads[self.owner], deadline) and stopped
        if deadline is not None:
            deadline = min(deadline, time.monotonic() + 1.0)
        for lane in others:
            if lane not in finish_first:
                stopped = _wait(self._threads[lane], deadline) and stopped
        return stopped

    def retire(self) -> bool:
        """Close the context and end the threads without waiting; ``sig_retired`` follows.

        Returns:
            False when nothing was running (nothing to wait for, no signal comes).
        """
        running = [thread for thread in self._threads.values() if thread.isRunning()]
        if not running:
            return False
        self._retiring = running
        for thread in running:
            thread.finished.connect(self._on_thread_finished)
        for lane in self.names[1:]:
            self._threads[lane].quit()
        self._sig_close.emit()  # the owner closes the context, then quits its thread
        return True

    def wait_ended(self, msecs: int) -> bool:
        """Wait up to ``msecs`` for every thread to end (``finished`` comes just before)."""
        return all(thread.wait(msecs) for thread in self._threads.values())

    def dispose(self) -> None:
        """Drop the dispatchers (the set's threads have ended, or never started)."""
        for dispatch in self._dispatch.values():
            dispatch.deleteLater()

    @Slot()
    def _on_thread_finished(self) -> None:
        if any(thread.isRunning() for thread in self._retiring):
            return
        for thread in self._retiring:
            thread.finished.disconnect(self._on_thread_finished)
            # ``finished`` is emitted just before the thread ends: dropping the last
            # reference a moment too early destroyed a running QThread (qFatal, seen
            # under load in the restart test). The wait returns at once otherwise.
            thread.wait()
        self._retiring = []
        self.sig_retired.emit()


def _wait(thread: QThread, deadline: float | None) -> bool:
    if deadline is None:
        return thread.wait()
    return thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))

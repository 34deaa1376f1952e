"""The single writer: every change to the stores runs here, one job at a time.

Indexing, deletes, the vector index's repair and the learning rounds all
submit to one :class:`Writer`, so two writes never race and a job sees the
effects of every job submitted before it. Searches and answers do not queue:
they read beside it (SQLite WAL readers, a locked vector index).

The writer counts work that is coming but not yet submitted (a folder whose
file events are still being debounced, see :meth:`Writer.hold`), so "idle"
means nothing is queued, running or on its way.

>>> writer = Writer()
>>> writer.submit("Saying hello", lambda cancel: print("hello"))
>>> writer.wait_until_idle(timeout=5)
hello
True
>>> writer.stop(timeout=5)
True
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.progress import Progress

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside long work when its cancel flag is set."""


class CancelFlag(threading.Event):
    """The flag long work polls between steps (``if cancel.is_set(): raise Cancelled``),
    which also holds the work there while indexing is paused.

    Pausing at the cancel checks needs no second checkpoint in every loop: a file
    is either fully indexed or not started when the work stops, exactly as with
    cancel. Setting the flag (cancel, close) ends a pause at once.

    >>> flag = CancelFlag()
    >>> flag.pause(); flag.paused
    True
    >>> flag.set(); flag.is_set()  # cancelling a paused job does not wait
    True
    """

    def __init__(self) -> None:
        super().__init__()
        self._running = threading.Event()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def is_set(self) -> bool:
        while not self._running.wait(0.1) and not super().is_set():
            pass
        return super().is_set()


@dataclass
class Job:
    """One unit of writer work: ``run(cancel)`` checks ``cancel`` between steps."""

    describe: str  # what the person sees while it runs ("Indexing ~/Notes")
    run: Callable[[threading.Event], None]
    folder: Path | None = None  # the folder it works on, for the folder's state in status


class Writer:
    """A worker thread that runs submitted jobs in order.

    Args:
        progress: Ended after each job, so a job that raised leaves no stale bar.
        after_job: Called on the writer thread after each job with whether the
            queue is now empty (the library saves its vector index then).
    """

    def __init__(
        self,
        progress: Progress | None = None,
        *,
        after_job: Callable[[bool], None] | None = None,
    ) -> None:
        self.progress = progress or Progress()
        self._after_job = after_job
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0  # queued + running jobs + folders with changes on their way
        self._running: Job | None = None
        self._once: set[str] = set()  # keys of submit_once jobs queued, not yet started
        self._cancel = CancelFlag()  # also pauses indexing (pause)
        self._thread = threading.Thread(target=self._work, name="kenning-engine", daemon=True)
        self._thread.start()

    # -- submitting ----------------------------------------------------------------------
    def submit(
        self, describe: str, run: Callable[[threading.Event], None], folder: Path | None = None
    ) -> None:
        """Queue ``run`` after everything submitted before it."""
        with self._idle:
            self._pending += 1
        self._jobs.put(Job(describe, run, folder))

    def submit_once(self, key: str, describe: str, run: Callable[[threading.Event], None]) -> bool:
        """Queue ``run`` unless a job of ``key`` is already queued and not started.

        For rounds that learn whatever is pending when they run (a learning round):
        a second request while one waits adds nothing. Returns whether it was queued.
        """
        with self._idle:
            if key in self._once:
                return False
            self._once.add(key)

        def once(cancel: threading.Event) -> None:
            with self._idle:
                self._once.discard(key)
            run(cancel)

        self.submit(describe, once)
        return True

    def is_queued(self, key: str) -> bool:
        """Whether a job of ``key`` (see :meth:`submit_once`) waits to start."""
        return key in self._once

    def hold(self, delta: int) -> None:
        """Count work on its way as pending (+1), or stop counting it (-1)."""
        with self._idle:
            self._pending = max(0, self._pending + delta)
            self._idle.notify_all()

    # -- what is going on ------------------------------------------------------------------
    @property
    def ident(self) -> int | None:
        """The writer thread's identifier (jobs run on it and on nothing else)."""
        return self._thread.ident

    @property
    def running(self) -> Job | None:
        """The job running now, if any."""
        return self._running

    @property
    def queued(self) -> int:
        """Jobs waiting (and work on its way), not counting the running one."""
        return max(0, self._pending - (1 if self._running else 0))

    @property
    def pending(self) -> int:
        """Everything not done: queued, running and on its way."""
        return self._pending

    def queued_folders(self) -> set[Path]:
        """The folders queued jobs will work on."""
        with self._jobs.mutex:
            return {j.folder for j in list(self._jobs.queue) if j is not None and j.folder}

    def wait_until_idle(self, timeout: float = 60.0, *, grace: float = 0.0) -> bool:
        """Block until nothing is pending; False if ``timeout`` passed with work left.

        Args:
            timeout: Seconds to wait at most.
            grace: Wait at least this long even when idle (a file written just before
                the call needs a moment to reach the folder watcher).
        """
        now = time.monotonic()
        deadline = now + timeout
        grace_end = now + grace
        with self._idle:
            while self._pending or time.monotonic() < grace_end:
                now = time.monotonic()
                if now >= deadline:
                    # A timeout shorter than the grace (a progress loop polling every
                    # 0.5 s) must still see idle: only pending work makes it False.
                    return not self._pending
                wait = deadline - now if self._pending else grace_end - now
                self._idle.wait(min(wait, deadline - now))
        return True

    # -- control ---------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the running job at its next check and drop the queued ones."""
        dropped = 0
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._jobs.put(None)
                break
            dropped += 1
        self._cancel.set()
        with self._idle:
            self._pending -= dropped
            # Dropped submit_once jobs never run to clear their keys; a key left behind
            # kept every later round of its kind from being queued until a restart.
            self._once.clear()
            self._idle.notify_all()

    def pause(self) -> None:
        """Hold jobs that check the flag (indexing) after their current step."""
        self._cancel.pause()

    def resume(self) -> None:
        """Continue where :meth:`pause` held them."""
        self._cancel.resume()

    @property
    def paused(self) -> bool:
        return self._cancel.paused

    def stop(self, timeout: float | None = None) -> bool:
        """Cancel what is left and end the thread; False if it was still busy at ``timeout``."""
        self.cancel()  # also ends a pause
        self._jobs.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._cancel.clear()
            self._running = job
            try:
                job.run(self._cancel)
            except Cancelled:
                log.info("cancelled: %s", job.describe)
            except EngineError as exc:
                log.error("%s failed: %s", job.describe, exc)
            except Exception:
                log.exception("%s failed", job.describe)
            finally:
                self._running = None
                self.progress.end()
                if self._after_job is not None:
                    try:
                        self._after_job(self._jobs.empty())
                    except Exception:
                        log.exception("after %s", job.describe)
                with self._idle:
                    self._pending = max(0, self._pending - 1)
                    self._idle.notify_all()

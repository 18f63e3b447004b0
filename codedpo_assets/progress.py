"""Progress lines — done/total, rate and ETA of a stage — for the run log and the terminal.

A stage reports through :class:`Progress`; each line goes to the caller's logger (the Dagster run
log) and, when ``$CODEDPO_PROGRESS_FILE`` names a file, is appended there: the CLI follows that file
and prints the lines, so progress from any process (asset steps, the Pipes training job) reaches
one terminal while everything else goes to the log file.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

PROGRESS_ENV = "CODEDPO_PROGRESS_FILE"


def duration(seconds: float) -> str:
    """``1h02m``, ``3m07s``, ``42s``: an ETA a person reads at a glance."""
    s = max(round(seconds), 0)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def line(stage: str, done: int, total: int, elapsed_s: float, unit: str = "items", extra: str = "", base: int = 0) -> str:
    """``[stage] done/total unit (pct %), rate/s, ETA …``; the rate counts items done after ``base``
    (work found done at the start, e.g. cached, is not speed); no rate before any is done."""
    pct = f"{100 * done / total:.0f} %" if total else "-"
    text = f"[{stage}] {done}/{total} {unit} ({pct})"
    if done > base and elapsed_s > 0:
        rate = (done - base) / elapsed_s
        rate_text = f"{rate:.1f}/s" if rate >= 0.1 else f"{rate * 60:.1f}/min"
        text += f", {rate_text}, elapsed {duration(elapsed_s)}"
        text += f", ETA {duration((total - done) / rate)}" if done < total else ", done"
    elif elapsed_s >= 1:  # nothing done yet: how long it has been waiting
        text += f", elapsed {duration(elapsed_s)}"
    return f"{text}{', ' + extra if extra else ''}"


def publish(text: str) -> None:
    """Append a line to the progress file, when one is set (one write per line; a reader keeps a
    line that is still being written until its newline arrives)."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text.replace("\n", " ") + "\n")


def notice(text: str) -> None:
    """A one-off line for the terminal of a CLI run (the progress channel) and stderr (the run's log)."""
    print(text, file=sys.stderr, flush=True)
    publish(text)


class Progress:
    """Counts a stage's work; reports at most every ``every_s`` seconds, and always when the count
    reaches the total."""

    def __init__(
        self, stage: str, total: int, unit: str = "items", log: Callable[[str], None] | None = None, every_s: float = 5.0
    ):
        self.stage, self.total, self.unit, self.log, self.every_s = stage, total, unit, log, every_s
        self.start = time.monotonic()
        self.done, self._last, self._reported = 0, float("-inf"), -1
        self._base: int | None = None
        self._lock, self._stop = threading.Lock(), threading.Event()

    def update(self, done: int, extra: str = "") -> None:
        """Set the count of finished items; a lower count, or the count last reported, is ignored (a
        count held back by the throttle is reported with a later call). The first call's count is the
        starting point of the rate."""
        if done < self.done or done == self._reported:
            return
        if self._base is None:  # the first count is where this stage started
            self._base = done
        self.done = done
        now = time.monotonic()
        if now - self._last < self.every_s and done < self.total:
            return
        self._emit(done, extra, now)

    def _emit(self, done: int, extra: str, now: float) -> None:
        with self._lock:
            self._last, self._reported = now, done
            text = line(self.stage, done, self.total, now - self.start, self.unit, extra, self._base or 0)
            if self.log:
                self.log(text)
            publish(text)

    def keep_alive(self) -> None:
        """Repeat the line every ``every_s`` while no count arrives (one model batch can take
        minutes: a silent terminal reads as a hang), until :meth:`close`."""
        threading.Thread(target=self._beat, name=f"progress {self.stage}", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            now = time.monotonic()
            if self._base is not None and self.done < self.total and now - self._last >= self.every_s:
                self._emit(self.done, "working on the next batch", now)

    def close(self) -> None:
        self._stop.set()

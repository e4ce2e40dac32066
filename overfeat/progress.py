"""Progress of a long pass (images decoded, a training epoch's steps, files written), for
people and for logs.

Every command's progress goes through :func:`progress`: the reproductions' passes, the training
engine's epochs, ``make-synthetic`` and ``classify``. It lives outside those packages so that
each can import it without importing the others.

On a terminal a tqdm bar is redrawn in place. Anywhere else (a log file, CI, a pipe) a bar's
carriage returns make one unreadable line per redraw, so there the pass prints one plain line
each time another :data:`LOG_EVERY_PERCENT` of it is done. ``--no-progress`` prints neither.
Messages about single items (:meth:`Progress.write`) are printed in every case, above the bar
on a terminal.

Decision PROGRESS_LOG_LINES: in a log, one line each time a pass crosses another 10%, with the
count, the seconds so far, the seconds left at the pace so far and the latest running figures a
bar would show (a training step's loss).
"""

from __future__ import annotations

import sys
import time

__all__ = ["LOG_EVERY_PERCENT", "Progress", "progress"]

LOG_EVERY_PERCENT = 10


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """``update(n)`` after n more items, ``set_postfix(name=value)`` for running figures (a
    loss), ``write(message)`` for a line about one item, then ``close()``; use :func:`progress`
    to get the right kind."""

    def __init__(self, stream=None):
        self.stream = stream

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def write(self, message: str) -> None:
        print(message, file=self.stream or sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Bar(Progress):
    def __init__(self, total: int, desc: str, unit: str, initial: int, stream, leave: bool):
        from tqdm import tqdm

        super().__init__(stream)
        self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                        file=stream, dynamic_ncols=True)  # fmt: skip

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, **values) -> None:
        self.bar.set_postfix(**values)

    def write(self, message: str) -> None:
        self.bar.write(message, file=self.stream)

    def close(self) -> None:
        self.bar.close()


class _LogLines(Progress):
    def __init__(self, total: int, desc: str, unit: str, initial: int, stream):
        super().__init__(stream)
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self.start_done = initial
        self.postfix: dict[str, object] = {}
        self.start = time.perf_counter()
        self.next_percent = (self._percent() // LOG_EVERY_PERCENT + 1) * LOG_EVERY_PERCENT
        if initial and total:
            self.write(f"{desc}: continuing at {initial:,} of {total:,} {unit} "
                       f"({self._percent()}%)")  # fmt: skip

    def _percent(self) -> int:
        return 100 * self.done // self.total if self.total else 100

    def set_postfix(self, **values) -> None:
        self.postfix = values  # shown on the next line, as a bar shows its latest

    def update(self, n: int = 1) -> None:
        self.done += n
        percent = self._percent()
        if percent < self.next_percent:
            return
        self.next_percent = (percent // LOG_EVERY_PERCENT + 1) * LOG_EVERY_PERCENT
        seconds = time.perf_counter() - self.start
        line = f"{self.desc}: {percent}% ({self.done:,} of {self.total:,} {self.unit}, {seconds:.0f} s"
        ran = self.done - self.start_done
        if self.done < self.total and ran > 0:
            line += f", about {seconds / ran * (self.total - self.done):.0f} s left"
        line += "".join(f", {k} {v}" for k, v in self.postfix.items())
        self.write(line + ")")


def progress(total: int, desc: str, enabled: bool = True, unit: str = "img", initial: int = 0,
             stream=None, leave: bool = False) -> Progress:  # fmt: skip
    """The progress of a pass over ``total`` items (``initial`` of them done before): a bar on
    a terminal, a line per :data:`LOG_EVERY_PERCENT` elsewhere, nothing when not ``enabled``.
    ``stream``: where it goes (default: ``sys.stderr`` now); ``leave``: a finished bar stays on
    the terminal (a training epoch's does: one line per epoch)."""
    stream = stream or sys.stderr
    if not enabled:
        return Progress(stream)
    if _is_terminal(stream):
        return _Bar(total, desc, unit, initial, stream, leave)
    return _LogLines(total, desc, unit, initial, stream)

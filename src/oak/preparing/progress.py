"""Progress of `oak prepare` in a log (a DVC stage's output, logs/repro/, a SLURM job's file), where a bar cannot show.

A line when a step starts, at each tenth of the way and at its end, each with the rate and the time
left, on stderr as the bars are (oak.preparing.parallel chooses: a bar on a terminal, these lines elsewhere).
"""

import math
import sys
import time

from tqdm import tqdm

STEPS = 10  # lines per step of the work, besides its first


class LogProgress:
    """What oak.preparing.parallel uses of a tqdm bar (`update`, `close`, `with`), written as lines."""

    def __init__(self, description: str, total: int, unit: str, *, scaled: bool = False) -> None:
        self.description, self.total, self.unit, self.scaled = description, total, unit, scaled
        self.done, self.start = 0, time.perf_counter()
        self._next = 0  # the count at which the next line is due
        self._say()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def update(self, count: int) -> None:
        self.done += count
        if self.done >= self._next and self.done < self.total:
            self._say()

    def close(self) -> None:
        if self.done and self.done >= self.total:  # a step stopped by an error says nothing more
            self._say()
        self._next = math.inf

    def _say(self) -> None:
        if self._next == math.inf:
            return
        seconds = time.perf_counter() - self.start
        done = self._amount(self.done) if self.scaled else f"{self.done:,}"
        line = f"{self.description}: {done} of {self._amount(self.total)}"
        if self.done:
            rate = self.done / max(seconds, 1e-9)
            line += f" ({100 * self.done / max(self.total, 1):.0f}%), {self._amount(rate)}/s, "
            left = (self.total - self.done) / rate
            line += f"{tqdm.format_interval(seconds)} in all" if self.done >= self.total else f"{tqdm.format_interval(left)} left"
        print(line, file=sys.stderr, flush=True)
        self._next = self.done + max(1, math.ceil(self.total / STEPS))

    def _amount(self, value: float) -> str:
        """`value` in the unit: bytes scaled (12.3MB), other units counted (1,024 images)."""
        return tqdm.format_sizeof(value, suffix=self.unit, divisor=1024) if self.scaled else f"{value:,.0f} {self.unit}"

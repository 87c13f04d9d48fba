"""How `oak prepare` runs its steps: an ordered map over forked worker processes, and progress bars on stderr."""

import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from oak.preparing.progress import LogProgress


@contextmanager
def worker_map(workers: int) -> Iterator[Callable[[Callable, list], Iterable]]:
    """An ordered, lazy map over `workers` processes. Forked, so they start at once; nothing the
    tasks use imports torch (that would cost each worker seconds and hundreds of MB)."""
    if workers == 1:
        yield map
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool.imap


def advancing(results: Iterable, progress: tqdm, sizes: list[int]) -> Iterator:
    """`results` as they come, the progress bar advancing by each task's size."""
    with progress:
        for result, size in zip(results, sizes):
            progress.update(size)
            yield result


def image_progress(description: str, total: int) -> tqdm | LogProgress:
    # On stderr with rate and ETA: a bar on a terminal, lines in a log (DVC logs, SLURM, CI).
    if not sys.stderr.isatty():
        return LogProgress(description, total, "images")
    return tqdm(total=total, desc=description, unit="img", file=sys.stderr, smoothing=0.1)


def byte_progress(description: str, total: int) -> Callable[[int], object]:
    """A callback fed the bytes read as an archive is indexed; a read of 0 bytes, its end, closes the bar."""
    if sys.stderr.isatty():
        bar = tqdm(total=total, desc=description, unit="B", unit_scale=True, file=sys.stderr)
    else:
        bar = LogProgress(description, total, "B", scaled=True)
    return lambda count: bar.update(count) if count else bar.close()

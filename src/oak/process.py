"""How an `oak` process starts and ends: Python's cyclic collector kept off the libraries' objects, and
loader workers an error left behind killed.

torch, torchvision and timm make millions of objects as they import, and every full collection walks
them all: during the imports that follow (Lightning, MLflow), during the run, and several times as
Python tears its modules down at exit. Measured on a 2-core machine: `import torch, timm` with the
collector off and frozen, then `import lightning, mlflow`, 5.2-5.8 s against 6.4-7.2 s (best and worst
of 3); the exit with all four loaded 0.3 s frozen against 1.8 s; a one-epoch demo `oak train` process
21.9-24.2 s of CPU against 27.5-30.0 s (4 runs of each, the versions alternated).
"""

import gc
import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


@contextmanager
def imports_kept_from_the_collector() -> Iterator[None]:
    """The collector off for a block of imports, whose objects then stay out of its passes (`gc.freeze`)
    until `release_imports`."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def release_imports() -> None:
    """Hand the frozen objects back to the collector, for a caller that goes on (a test calling `main`)."""
    gc.unfreeze()


def kill_leftover_workers() -> None:
    """Loader workers ignore SIGTERM (see oak.data.loader): any an error left running are killed here, or
    Python's exit, which stops them with SIGTERM and waits, would wait for good."""
    for child in multiprocessing.active_children():
        child.kill()
        child.join()


def exit_without_collecting(status: int) -> NoReturn:
    """End the process with every object out of the collector's passes at teardown. Nothing is left to
    flush by then: every writer closes its files (`with`, `write_atomic`), and the atexit handlers
    (MLflow's among them) still run."""
    gc.freeze()
    sys.exit(status)

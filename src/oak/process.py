"""How an `oak` process starts and ends: Python's cyclic collector kept off the libraries' objects, loader
workers an error left behind killed, the long-lived processes it starts ended with it however it ends,
and the commands that change a repository's pipeline run there one at a time.

torch, torchvision and timm make millions of objects as they import, and every full collection walks
them all: during the imports that follow (Lightning, MLflow), during the run, and several times as
Python tears its modules down at exit. Measured on a 2-core machine: `import torch, timm` with the
collector off and frozen, then `import lightning, mlflow`, 5.2-5.8 s against 6.4-7.2 s (best and worst
of 3); the exit with all four loaded 0.3 s frozen against 1.8 s; a one-epoch demo `oak train` process
21.9-24.2 s of CPU against 27.5-30.0 s (4 runs of each, the versions alternated).
"""

import fcntl
import gc
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from oak.errors import OakError

REPOSITORY_LOCK = Path(".dvc/tmp/oak.lock")  # in DVC's own folder of run-time state, beside its locks
WATCH_SECONDS = 0.2  # how often a watchdog looks whether its parent is still there
STOP_GRACE_SECONDS = 30  # SIGTERM to SIGKILL, as SLURM's default KillWait: a training stops after its batch
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


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
    """Loader workers ignore SIGTERM (see oak.loading.loader): any an error left running are killed here, or
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


@contextmanager
def repository_lock(command: str) -> Iterator[None]:
    """Held while `command` (`oak repro`, `oak submit`, `oak plan`) changes what this repository's pipeline
    runs or records: a second such command refuses, naming the first, instead of truncating its stage logs,
    running its stages a second time or rewriting the plan its stages read. A folder without DVC's has no
    pipeline to run, so no lock. The lock is the kernel's (flock), so a killed holder leaves none behind."""
    if not REPOSITORY_LOCK.parent.parent.is_dir():
        yield
        return
    REPOSITORY_LOCK.parent.mkdir(exist_ok=True)
    descriptor = os.open(REPOSITORY_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode(errors="replace").strip() or "another oak command"
            raise OakError(f"{holder} is running in this repository ({REPOSITORY_LOCK}); wait for it to end or stop it first") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{command} (pid {os.getpid()} on {socket.gethostname()})".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def tethered(command: list[str]) -> list[str]:
    """`command` under a watchdog (this module run as a program) that ends it, and every process it started,
    when this process ends, SIGKILL included: start what this returns instead, as a plain child.

    The watchdog runs the command in a process group of its own inside a session of its own, so that
    signals to this process's group (Ctrl-C, `kill -9 %1`) reach neither, and this process decides. It stops
    the group (SIGTERM, then SIGKILL after STOP_GRACE_SECONDS) when this process is gone, when it is sent
    SIGTERM itself, or when the command ends (whatever it left running); it exits as the command did.
    """
    return [sys.executable, "-m", "oak.process", str(os.getpid()), *command]


def _watch(parent: int, command: list[str]) -> int:
    os.setsid()
    _adopt_orphans()
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    child = subprocess.Popen(command, process_group=0)
    # the parent's pid, not os.getppid() now: it may have ended before this process got here
    while child.poll() is None and not stop and os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    _end_group(child)
    return child.returncode


def _adopt_orphans() -> None:
    """The command's processes whose parent ends become the watchdog's children (Linux), not init's: it
    reaps them, and so sees its group end. Some containers' init reaps nothing, and a zombie stays a member
    of its group: without this, stopping a stage would wait out STOP_GRACE_SECONDS there."""
    if sys.platform == "linux":
        import ctypes  # here: the watchdog alone needs it

        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _end_group(child: subprocess.Popen) -> None:
    """SIGTERM to every process left in the command's group, SIGKILL to those still there after the grace."""
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    _signal_group(child.pid, signal.SIGTERM)
    while _group_left(child) and time.monotonic() < deadline:
        time.sleep(WATCH_SECONDS)
    _signal_group(child.pid, signal.SIGKILL)
    while _group_left(child):  # SIGKILL cannot be caught: they end as soon as the kernel lets them
        time.sleep(WATCH_SECONDS)


def _group_left(child: subprocess.Popen) -> bool:
    if child.poll() is None:  # the command itself first: its status is the watchdog's
        return True
    try:
        while os.waitpid(-child.pid, os.WNOHANG)[0]:  # the orphans of the group adopted here
            pass
    except ChildProcessError:  # none adopted
        pass
    try:
        os.killpg(child.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:  # every process of it has ended
        pass


def _exit_as(returncode: int) -> NoReturn:
    """Exit with the command's status, or die of the signal it died of."""
    if returncode < 0:
        if -returncode != signal.SIGKILL:  # the only one whose action cannot be set, nor needs to be
            signal.signal(-returncode, signal.SIG_DFL)  # not this watchdog's handler, nor Python's
        os.kill(os.getpid(), -returncode)
    sys.exit(returncode)


if __name__ == "__main__":
    _exit_as(_watch(int(sys.argv[1]), sys.argv[2:]))

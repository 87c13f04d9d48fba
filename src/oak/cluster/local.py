"""`oak repro --jobs N`: `dvc repro` with up to N stages running at once on this machine.

`dvc repro` runs one stage at a time. DVC's locks let several `dvc repro --single-item` run side by
side: each holds the repository lock while it checks its stage and while it records the outputs in
dvc.lock, not while the stage's command runs, and `--wait-for-lock` makes the others wait for those
moments instead of failing. So every out-of-date stage (oak.cluster.jobs) runs as its own
`dvc repro --single-item`, once the stages it needs have succeeded; DVC still decides whether it
must run (an evaluation whose checkpoint came out byte for byte as recorded is skipped) and records it.

Several stages at once pay where each takes one core: the demo recipe fixes `train.cpu_threads` to 1
(its comment has the measurement). A stage that measures time (bench-g1, the trainings' throughput)
measures it beside the others.
"""

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oak.cluster.jobs import StaleStage
from oak.errors import OakError
from oak.process import tethered

LOG_TAIL_LINES = 15
POLL_SECONDS = 0.2
SKIPPED = "didn't change, skipping"  # what `dvc repro` says of a stage it did not run


def reproduce(stages: list[StaleStage], *, jobs: int, logs: Path, dvc: str) -> int:
    """Run every stage, at most `jobs` at a time, each once those it needs have succeeded; return how
    many DVC found unchanged once their inputs were made (an evaluation of a checkpoint that came out
    byte for byte as recorded), and skipped.

    After a failure no stage starts; the running ones finish. Raises naming the failed stages. On
    Ctrl-C or SIGTERM the running stages are stopped, their commands included, and their watchdogs stop
    them if this process is killed outright: DVC records nothing for them, and the next run starts them
    again (a training resumes from its last checkpoint).
    """
    logs.mkdir(parents=True, exist_ok=True)
    waiting, succeeded, failed, unchanged = list(stages), set(), [], 0
    running: dict[subprocess.Popen, tuple[StaleStage, float]] = {}
    with _stopped_on_exit(running):
        while running or (waiting and not failed):
            for stage in [] if failed else _ready(waiting, succeeded, jobs - len(running)):
                waiting.remove(stage)
                running[_start(stage, logs / f"{stage.name}.log", dvc)] = (stage, time.perf_counter())
                print(f"{stage.name}: started ({len(running)} running, {len(waiting)} waiting)", flush=True)
            if not running:
                raise OakError(f"{', '.join(stage.name for stage in waiting)}: waiting for stages that are not in the list; a bug")
            time.sleep(POLL_SECONDS)
            for process in [process for process in running if process.poll() is not None]:
                stage, start = running.pop(process)
                seconds = time.perf_counter() - start
                if process.returncode == 0:
                    succeeded.add(stage.name)
                    skipped = SKIPPED in (logs / f"{stage.name}.log").read_text(errors="replace")
                    unchanged += skipped
                    print(f"{stage.name}: {'unchanged, skipped' if skipped else 'done'} in {seconds:.0f} s", flush=True)
                else:
                    failed.append(stage.name)
                    print(f"{stage.name}: failed (exit {process.returncode}) after {seconds:.0f} s; the end of its log:")
                    print(_tail(logs / f"{stage.name}.log"), flush=True)
    if failed:
        raise OakError(
            f"{', '.join(failed)} failed (logs in {logs}); {len(waiting)} stage(s) not started, {len(succeeded)} done; "
            "fix it and run again: what is done stays done"
        )
    return unchanged


def _ready(waiting: list[StaleStage], succeeded: set[str], free: int) -> list[StaleStage]:
    return [stage for stage in waiting if succeeded.issuperset(stage.after)][:free]


def _start(stage: StaleStage, log: Path, dvc: str) -> subprocess.Popen:
    """`dvc repro` of the stage under a watchdog (oak.process.tethered): it and the stage's command end
    when this process ends, however it ends, and when the watchdog is sent SIGTERM."""
    with log.open("w") as out:
        command = [dvc, "--wait-for-lock", "repro", "--single-item", stage.name]
        return subprocess.Popen(tethered(command), stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def _stopped_on_exit(running: dict[subprocess.Popen, tuple[StaleStage, float]]) -> Iterator[None]:
    """SIGTERM interrupts as Ctrl-C does; either way this process stops the running stages and waits
    for them to end."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in running:
            process.terminate()
        for process, (stage, _) in running.items():
            process.wait()
            print(f"{stage.name}: stopped", flush=True)


def _tail(log: Path) -> str:
    return "\n".join("    " + line for line in log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])

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

import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from oak.cluster.jobs import StaleStage
from oak.errors import OakError

LOG_TAIL_LINES = 15


def reproduce(stages: list[StaleStage], *, jobs: int, logs: Path, dvc: str) -> None:
    """Run every stage, at most `jobs` at a time, each once those it needs have succeeded.

    After a failure no stage starts; the running ones finish. Raises naming the failed stages.
    """
    logs.mkdir(parents=True, exist_ok=True)
    waiting, succeeded, failed = list(stages), set(), []
    running: dict[Future, StaleStage] = {}
    with ThreadPoolExecutor(jobs) as pool:
        while running or (waiting and not failed):
            for stage in [] if failed else _ready(waiting, succeeded, jobs - len(running)):
                waiting.remove(stage)
                running[pool.submit(_run, stage, logs / f"{stage.name}.log", dvc)] = stage
                print(f"{stage.name}: started ({len(running)} running, {len(waiting)} waiting)", flush=True)
            if not running:
                raise OakError(f"{', '.join(stage.name for stage in waiting)}: waiting for stages that are not in the list; a bug")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                code, seconds = future.result()
                if code == 0:
                    succeeded.add(stage.name)
                    print(f"{stage.name}: done in {seconds:.0f} s", flush=True)
                else:
                    failed.append(stage.name)
                    print(f"{stage.name}: failed (exit {code}) after {seconds:.0f} s; the end of its log:")
                    print(_tail(logs / f"{stage.name}.log"), flush=True)
    if failed:
        raise OakError(
            f"{', '.join(failed)} failed (logs in {logs}); {len(waiting)} stage(s) not started, {len(succeeded)} done; "
            "fix it and run again: what is done stays done"
        )


def _ready(waiting: list[StaleStage], succeeded: set[str], free: int) -> list[StaleStage]:
    return [stage for stage in waiting if succeeded.issuperset(stage.after)][:free]


def _run(stage: StaleStage, log: Path, dvc: str) -> tuple[int, float]:
    start = time.perf_counter()
    command = [dvc, "--wait-for-lock", "repro", "--single-item", stage.name]
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    return code, time.perf_counter() - start


def _tail(log: Path) -> str:
    return "\n".join("    " + line for line in log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])

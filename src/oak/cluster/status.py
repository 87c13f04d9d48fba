"""`oak status`: the jobs of the last `oak submit`, each queued, running, done or failed, with its
SLURM job id, its log and, for a planned run, its MLflow run.

The queue says what is queued or running; a finished job's own state file says how it ended
(SLURM forgets finished jobs, and accounting is not on every cluster).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from oak.cluster.slurm import Submitted, queue_states, read_submitted
from oak.layout import RUN_FILE, Layout
from oak.tracking.tracker import Tracker

QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"}


@dataclass(frozen=True)
class JobStatus:
    stage: str
    job_id: str
    state: str  # queued, running, done, failed or cancelled
    log: str
    mlflow: str  # the run's link or id, for a planned run's stages once training has opened it


def job_statuses(layout: Layout, tracker: Tracker) -> list[JobStatus]:
    submitted = read_submitted(layout.jobs)
    queue = queue_states([job.job_id for job in submitted])
    return [
        JobStatus(job.stage, job.job_id, _state(job, queue, layout.jobs), job.log, _mlflow(job.stage, layout, tracker)) for job in submitted
    ]


def render(statuses: list[JobStatus]) -> str:
    width = max(len(status.stage) for status in statuses)
    lines = [f"{'stage':{width}}  {'job':>8}  {'state':9}  log / MLflow run"]
    for status in statuses:
        where = status.log if status.state == "failed" else status.mlflow or status.log
        lines.append(f"{status.stage:{width}}  {status.job_id:>8}  {status.state:9}  {where}")
    failed = [status for status in statuses if status.state == "failed"]
    if failed:
        lines.append(f"{len(failed)} failed: their stages stay out of date; see their logs, fix, and `oak submit` again")
    return "\n".join(lines)


def _state(job: Submitted, queue: dict[str, str], logs: Path) -> str:
    if job.job_id in queue:
        return "queued" if queue[job.job_id] in QUEUED else "running"
    state_file = logs / f"{job.stage}.state"
    if not state_file.exists():
        return "cancelled"  # never started: a job it waited for failed
    words = state_file.read_text().split()
    if words[0] == "running":
        return "failed"  # gone from the queue without saying how it ended: killed with its node
    return "done" if words[1] == "0" else "failed"


def _mlflow(stage: str, layout: Layout, tracker: Tracker) -> str:
    kind, _, run = stage.partition("@")
    if kind not in ("train", "evaluate"):  # the other stages (report, sync, ...) have no run of their own
        return ""
    record = layout.run_folder(run) / RUN_FILE
    if not record.exists():
        return ""
    return tracker.run_link(json.loads(record.read_text())["run_id"])

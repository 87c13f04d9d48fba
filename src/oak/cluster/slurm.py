"""Jobs to SLURM: one batch script per job, submitted with `sbatch`, and what the queue says of them.

Each script runs the stage's command, then records its outputs in dvc.lock and DVC's run cache with
`dvc --wait-for-lock commit --force STAGE`: DVC's repository lock serialises the jobs that finish
together (set `core.hardlink_lock` on NFS), so no job waits for another's training, and a failed
command leaves its stage out of date. A job is requeued on preemption (`--requeue`); run again, its
training resumes from the run's last checkpoint in the same MLflow run. The job's environment is
the submitter's (`--export=ALL`), so credentials travel in variables, never in a file. While the jobs
of the last submission are in the queue, `oak submit`, `oak repro` and `oak plan` refuse to start.
"""

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from oak.cluster.jobs import Job
from oak.errors import OakError
from oak.files import write_atomic, write_json
from oak.layout import Layout
from oak.process import repository_lock

SUBMITTED_FILE = "submitted.json"  # in the log folder: stage -> job id and log, from the last `oak submit`


@dataclass(frozen=True)
class Submitted:
    stage: str
    job_id: str
    log: str


def script(job: Job, *, repo_root: Path, logs: Path, bin_dir: Path) -> str:
    """The batch script of `job`: its command, the record of its outputs, and its state for `oak status`."""
    state = shlex.quote(str(logs / f"{job.stage}.state"))
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Written by `oak submit` for the stage {job.stage} of dvc.yaml.",
            "set -euo pipefail",
            f"cd {shlex.quote(str(repo_root))}",
            f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"',
            f'echo "running $SLURM_JOB_ID $(hostname)" > {state}',
            f"trap 'echo \"exited $? $SLURM_JOB_ID\" > {state}' EXIT",
            job.command,
            f"dvc --wait-for-lock commit --force --quiet {shlex.quote(job.stage)}",
            "",
        ]
    )


def sbatch_options(job: Job, cluster: DictConfig, after: list[str], log: Path) -> list[str]:
    """`sbatch` options sizing the job from its run, with the cluster's defaults from params.yaml."""
    settings = job.settings.cluster if job.settings is not None else cluster
    options = [
        f"--job-name=oak:{job.stage}",
        f"--nodes={job.nodes}",
        f"--ntasks-per-node={job.tasks_per_node}",
        f"--cpus-per-task={settings.cpus_per_task}",
        f"--time={settings.time}",
        f"--output={log}",
        "--open-mode=append",  # a requeued job adds to its log
        "--requeue",
        "--export=ALL",
    ]
    options += [f"--gpus-per-node={job.gpus_per_node}"] if job.gpus_per_node else []
    options += [f"--partition={settings.partition}"] if settings.partition else []
    options += [f"--account={settings.account}"] if settings.account else []
    if after:  # a failed stage cancels the jobs waiting for it instead of leaving them pending for ever
        options += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
    return options + list(settings.sbatch)


def submit_jobs(jobs: list[Job], cluster: DictConfig, *, repo_root: Path, logs: Path, bin_dir: Path) -> list[Submitted]:
    """Submit `jobs` in order (each after those it waits for) and record their ids in the log folder."""
    logs.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    submitted = []
    for job in jobs:
        path, log = logs / f"{job.stage}.sbatch", logs / f"{job.stage}.log"
        write_atomic(path, script(job, repo_root=repo_root, logs=logs, bin_dir=bin_dir))
        (logs / f"{job.stage}.state").unlink(missing_ok=True)
        options = sbatch_options(job, cluster, [ids[stage] for stage in job.after], log)
        ids[job.stage] = _sbatch([*options, str(path)])
        submitted.append(Submitted(job.stage, ids[job.stage], str(log)))
        write_json(logs / SUBMITTED_FILE, {s.stage: {"job_id": s.job_id, "log": s.log} for s in submitted})
    return submitted


def read_submitted(logs: Path) -> list[Submitted]:
    path = logs / SUBMITTED_FILE
    if not path.exists():
        raise OakError(f"{path}: no jobs submitted from this repository yet; `oak submit` submits them")
    return [Submitted(stage, entry["job_id"], entry["log"]) for stage, entry in json.loads(path.read_text()).items()]


@contextmanager
def pipeline_changes(command: str, config: DictConfig) -> Iterator[None]:
    """Held while `command` changes what this repository's pipeline runs or records: not beside another
    such command (oak.process.repository_lock), nor while jobs of the last `oak submit` are in the queue,
    which would then run their stages a second time or record their outputs against another plan."""
    with repository_lock(command):
        queued = _jobs_in_queue(Layout.of(config).jobs)
        if queued:
            ids = ", ".join(job.job_id for job in queued)
            raise OakError(
                f"{len(queued)} job(s) of the last `oak submit` are queued or running (SLURM ids {ids}; `oak status` lists them): "
                f"wait for them to end, or scancel them, before `{command}`"
            )
        yield


def _jobs_in_queue(logs: Path) -> list[Submitted]:
    """The jobs of the last `oak submit` the queue still holds, queued or running. None where no SLURM
    command answers: no job of this repository can be running from here."""
    if not (logs / SUBMITTED_FILE).exists() or shutil.which("squeue") is None:
        return []
    submitted = read_submitted(logs)
    queue = queue_states([job.job_id for job in submitted])
    return [job for job in submitted if job.job_id in queue]


def queue_states(job_ids: list[str]) -> dict[str, str]:
    """The SLURM state (PENDING, RUNNING, ...) of each job the queue still holds."""
    if not job_ids:
        return {}
    listed = _slurm(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(job_ids)}"], allow_failure=True)
    return dict(line.split() for line in listed.splitlines() if line.strip())


def _sbatch(arguments: list[str]) -> str:
    return _slurm(["sbatch", "--parsable", *arguments]).strip().split(";")[0]


def _slurm(command: list[str], *, allow_failure: bool = False) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise OakError(f"`{command[0]}` not found: run oak submit and oak status on a SLURM login node") from None
    if done.returncode != 0 and not allow_failure:
        raise OakError(f"`{' '.join(command[:2])} ...` failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
    return done.stdout

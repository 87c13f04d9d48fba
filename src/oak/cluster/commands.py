"""`oak submit` and `oak status`: the planned runs' stages as SLURM jobs, and how they are doing;
`oak repro`: the stages on this machine, several at once."""

import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from omegaconf import DictConfig

from oak.cluster.jobs import Job, out_of_date_jobs, out_of_date_stages
from oak.cluster.local import reproduce
from oak.cluster.lock import prune_lock
from oak.cluster.slurm import pipeline_changes, sbatch_options, submit_jobs
from oak.cluster.status import job_statuses, render
from oak.errors import OakError
from oak.layout import PLAN_FILE, Layout
from oak.studies.plan import current_runs, plan_runs
from oak.studies.study import load_studies
from oak.tracking.mirror import results_view
from oak.tracking.tracker import Tracker


def submit(config: DictConfig, params: Path, profile: str | None, overrides: list[str], *, dry_run: bool) -> None:
    """Submit every out-of-date stage as a job, each after those it needs; with `dry_run`, only print them."""
    if overrides:
        raise OakError(f"{' '.join(overrides)}: the jobs run dvc.yaml's commands as they are; set it in params.yaml or a study")
    # one at a time, and not beside an `oak repro` running the same stages; a dry run only looks
    with nullcontext() if dry_run else pipeline_changes("oak submit", config):
        planned, _ = current_runs()  # the plan must say what the studies say
        if profile and profile != planned:
            raise OakError(f"{PLAN_FILE} plans the {planned} profile; run `oak plan {profile}` first (dvc.yaml's stages come from it)")
        jobs = out_of_date_jobs(Path.cwd(), params, plan_runs(load_studies(), planned), config)
        if not jobs:
            print("every stage is up to date: nothing to submit")
            return
        layout = Layout.of(config)
        for job in jobs:
            print(_described(job, sbatch_options(job, config.cluster, [], layout.jobs / f"{job.stage}.log")))
        if dry_run:
            return
        for job in submit_jobs(jobs, config.cluster, repo_root=Path.cwd(), logs=layout.jobs, bin_dir=_bin_dir()):
            print(f"{job.stage}: job {job.job_id}, log {job.log}")
    print(f"{len(jobs)} jobs submitted; `oak status` follows them")


def repro(config: DictConfig, overrides: list[str], *, jobs: int) -> None:
    """Run every out-of-date stage of dvc.yaml, up to `jobs` at a time, each after those it needs."""
    if overrides:
        raise OakError(f"{' '.join(overrides)}: the stages run dvc.yaml's commands as they are; set it in params.yaml or a study")
    if jobs < 1:
        raise OakError(f"--jobs {jobs}: run at least 1 stage at a time")
    layout = Layout.of(config)
    with pipeline_changes("oak repro", config):  # a second one would truncate this one's logs and run its stages again
        stages = out_of_date_stages(Path.cwd())
        if not stages:
            print("every stage is up to date")
        else:
            # The store before any stage: stages starting together on a fresh clone would race to create an
            # SQLite store's tables (MLflow's migrations failed so with 3 at once), and a refused login stops here.
            Tracker(config).check_login()
            start = time.perf_counter()
            unchanged = reproduce(stages, jobs=jobs, logs=layout.repro_logs, dvc=str(_bin_dir() / "dvc"))
            seconds = time.perf_counter() - start
            print(f"{len(stages)} stages: {len(stages) - unchanged} ran, {unchanged} unchanged, in {seconds:.0f} s, {jobs} at a time")
        pruned = prune_lock(Path.cwd())
    if pruned:
        print(f"dvc.lock: dropped {len(pruned)} entries of stages the pipeline no longer has ({', '.join(pruned)})")
    print(f"results: {layout.reports / 'README.md'} (tables, figures, claims); {results_view(config)}")


def status(config: DictConfig) -> None:
    print(render(job_statuses(Layout.of(config), Tracker(config))))


def _described(job: Job, options: list[str]) -> str:
    after = f" after {', '.join(job.after) if len(job.after) <= 3 else f'{len(job.after)} stages'}" if job.after else ""
    return f"{job.stage}: sbatch {' '.join(options)}{after}\n    $ {job.command}"


def _bin_dir() -> Path:
    """Where this installation's oak and dvc are: the stages run them."""
    return Path(shutil.which("oak") or sys.argv[0]).resolve().parent

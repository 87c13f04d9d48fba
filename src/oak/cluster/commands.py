"""`oak submit` and `oak status`: the planned runs' stages as SLURM jobs, and how they are doing;
`oak repro`: the stages on this machine, several at once."""

import json
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
from oak.cluster.summary import summary
from oak.errors import OakError
from oak.layout import PLAN_FILE, Layout
from oak.preparing.sources import DATASET_FILE
from oak.studies.plan import current_runs, plan_runs
from oak.studies.study import load_studies
from oak.tracking.mirror import results_view
from oak.tracking.redaction import redact_text
from oak.tracking.tracker import Tracker, tracking_uri

DEMO_PROFILE = "demo"  # the one profile made for the demo's synthetic images


def submit(config: DictConfig, params: Path, profile: str | None, overrides: list[str], *, dry_run: bool, verbose: bool) -> None:
    """Submit every out-of-date stage as a job, each after those it needs; with `dry_run`, only check and summarise them.

    What the jobs need is checked before anything is printed or written: SLURM's commands, data that is not
    the demo's for a paper profile, and a tracking server for a run on several nodes."""
    if overrides:
        raise OakError(f"{' '.join(overrides)}: the jobs run dvc.yaml's commands as they are; set it in params.yaml or a study")
    if not dry_run:
        _check_slurm()
    # one at a time, and not beside an `oak repro` running the same stages; a dry run only looks
    with nullcontext() if dry_run else pipeline_changes("oak submit", config):
        planned, _ = current_runs()  # the plan must say what the studies say
        if profile and profile != planned:
            raise OakError(f"{PLAN_FILE} plans the {planned} profile; run `oak plan {profile}` first (dvc.yaml's stages come from it)")
        _check_data(config, planned)
        runs = plan_runs(load_studies(), planned)
        jobs = out_of_date_jobs(Path.cwd(), params, runs, config)
        if not jobs:
            print("every stage is up to date: nothing to submit")
            return
        _check_tracking(config, jobs)
        layout = Layout.of(config)
        print(summary(jobs, planned, runs, devices=layout.devices, params=params))
        if verbose:
            for job in jobs:
                print(_described(job, sbatch_options(job, config.cluster, [], layout.jobs / f"{job.stage}.log")))
        if dry_run:
            print("a dry run: nothing submitted" + ("" if verbose else "; `oak submit --dry-run -v` lists the jobs"))
            return
        submitted = submit_jobs(jobs, config.cluster, repo_root=Path.cwd(), logs=layout.jobs, bin_dir=_bin_dir())
        for job in submitted if verbose else ():
            print(f"{job.stage}: job {job.job_id}, log {job.log}")
    print(f"{len(jobs)} jobs submitted (SLURM ids {submitted[0].job_id} to {submitted[-1].job_id}, logs in {layout.jobs}); `oak status` follows them")


def _check_slurm() -> None:
    missing = [command for command in ("sbatch", "squeue") if shutil.which(command) is None]
    if missing:
        raise OakError(
            f"{' and '.join(f'`{command}`' for command in missing)} not found on PATH: run `oak submit` on a SLURM login node "
            "(`oak submit --dry-run` checks and summarises the jobs anywhere)"
        )


def _check_data(config: DictConfig, profile: str) -> None:
    """A paper profile's runs on the demo's synthetic images would spend GPU-hours on numbers that say nothing."""
    source = Path(config.data.source)
    if profile != DEMO_PROFILE and (source.resolve() == Path(config.paths.demo).resolve() or _described_synthetic(source)):
        raise OakError(
            f"data.source={config.data.source}: the demo's synthetic images, not data for the {profile} profile; "
            "point data.source in params.yaml at ImageNet (docs/imagenet.md)"
        )


def _described_synthetic(source: Path) -> bool:
    """Whether the set's own description (the demo writes one) marks it synthetic, as its shards' info will."""
    description = source / DATASET_FILE
    return description.is_file() and json.loads(description.read_text()).get("synthetic") is True


def _check_tracking(config: DictConfig, jobs: list[Job]) -> None:
    """A run's nodes log to one MLflow store: only a server reaches them all (an SQLite file is one machine's)."""
    spread = next((job for job in jobs if job.nodes > 1), None)
    uri = tracking_uri(config)
    if spread and not uri.startswith(("http://", "https://")):
        raise OakError(
            f"stage {spread.stage} runs on {spread.nodes} nodes, which log to one MLflow server: tracking is {redact_text(uri)}; "
            "start `oak server` on a host every node reaches and set tracking.uri (or MLFLOW_TRACKING_URI) to its http:// address"
        )


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

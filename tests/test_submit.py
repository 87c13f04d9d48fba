"""How `oak submit` turns a planned run into a SLURM job, without a cluster (tests/test_cluster.py submits for real)."""

import os
from pathlib import Path

import pytest
from params_files import PARAMS, params_file

from oak.cli import main
from oak.cluster.jobs import Job, _job
from oak.cluster.slurm import SUBMITTED_FILE, sbatch_options, script
from oak.config.load import load_config
from oak.errors import OakError
from oak.files import write_json
from oak.studies.plan import Run
from oak.tracking.tracker import Tracker

TWO_NODES_OF_EIGHT = ("trainer.devices=8", "trainer.num_nodes=2")


def run_job(run: Run, *overrides: str) -> Job:
    config = load_config(PARAMS, list(overrides))
    return _job(
        f"train@{run.name}", f"{config.launch} oak train --run {run.name} {run.model}", ("prepare",), PARAMS, {run.name: run}, config
    )


def test_a_job_is_sized_from_its_runs_devices_and_nodes_and_waits_for_its_inputs() -> None:
    run = Run("r50", "resnet50", "resnet_he2016", (*TWO_NODES_OF_EIGHT, "cluster.time=3-00:00:00"))
    job = run_job(run, "launch=srun")  # as params.yaml would set it
    options = sbatch_options(job, load_config(PARAMS).cluster, ["12"], Path("logs/slurm/train@r50.log"))
    assert {"--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--time=3-00:00:00", "--requeue"} <= set(options)
    assert {"--dependency=afterok:12", "--kill-on-invalid-dep=yes"} <= set(options)
    assert job.after == ("prepare",) and job.command == "srun oak train --run r50 resnet50"


def test_several_devices_need_one_srun_task_each() -> None:
    with pytest.raises(OakError, match=r"stage train@r50: 2 node\(s\) x 8 device\(s\) need one SLURM task per device; set `launch: srun`"):
        run_job(Run("r50", "resnet50", "resnet_he2016", TWO_NODES_OF_EIGHT))


def test_a_job_needs_a_count_of_devices() -> None:
    with pytest.raises(OakError, match=r"trainer.devices=auto: a SLURM job asks for a number of devices"):
        run_job(Run("r18", "resnet18", "demo", ("trainer.devices=auto",)))


def test_the_script_records_the_stage_in_dvc_only_after_its_command_succeeded() -> None:
    job = Job("train@r18", "oak train --run r18 resnet18 recipe=demo")
    lines = script(job, repo_root=Path("/repo"), logs=Path("logs/slurm"), bin_dir=Path("/repo/.venv/bin")).splitlines()
    assert "set -euo pipefail" in lines
    assert lines.index(job.command) + 1 == lines.index("dvc --wait-for-lock commit --force --quiet train@r18")


def test_a_run_on_several_nodes_refuses_an_sqlite_store() -> None:
    config = load_config(PARAMS, ["trainer.num_nodes=2", "tracking.uri=sqlite:///mlflow.db"])
    with pytest.raises(OakError, match=r"a run on 2 nodes cannot log to an SQLite file; start `oak server`"):
        Tracker(config)


@pytest.mark.parametrize("verb", [["submit"], ["repro"], ["plan", "demo"]])
def test_no_pipeline_command_starts_while_the_last_submissions_jobs_are_in_the_queue(
    verb: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # they would run those jobs' stages a second time, or change the plan the jobs record their outputs against
    (tmp_path / ".dvc").mkdir()
    params_file(tmp_path)
    submitted = {"train@r18": {"job_id": "12", "log": "logs/slurm/train@r18.log"}, "evaluate@r18": {"job_id": "13", "log": "x"}}
    write_json(tmp_path / "logs" / "slurm" / SUBMITTED_FILE, submitted)
    squeue = tmp_path / "bin" / "squeue"  # the queue, as SLURM's squeue prints it: job 12 has ended, 13 waits
    squeue.parent.mkdir()
    squeue.write_text("#!/bin/sh\necho '13 PENDING'\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{squeue.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    assert main(verb) == 2
    assert capsys.readouterr().err.strip() == (
        f"oak {verb[0]}: error: 1 job(s) of the last `oak submit` are queued or running (SLURM ids 13; `oak status` lists them): "
        f"wait for them to end, or scancel them, before `oak {verb[0]}`"
    )
    files = {
        str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file() and not {".dvc", "recipes"} & set(path.parts)
    }
    assert files == {"bin/squeue", "logs/slurm/submitted.json", "params.yaml"}  # no plan, job script or stage log

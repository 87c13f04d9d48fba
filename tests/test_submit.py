"""How `oak submit` turns a planned run into a SLURM job, without a cluster (tests/test_cluster.py submits for real)."""

import os
from pathlib import Path

import pytest
from params_files import PARAMS, params_file
from test_pipeline import STUDY, copy_repository, set_params

from oak.cli import main
from oak.cluster.commands import _check_tracking
from oak.cluster.jobs import Job, _job
from oak.cluster.slurm import SUBMITTED_FILE, sbatch_options, script
from oak.config.load import load_config
from oak.errors import OakError
from oak.files import write_json
from oak.report.cost import run_hours
from oak.studies.plan import Run, plan_runs, run_config
from oak.studies.study import load_studies
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
    sbatch = squeue.with_name("sbatch")  # there, as on a login node; never reached
    sbatch.write_text("#!/bin/sh\nexit 1\n")
    for command in (squeue, sbatch):
        command.chmod(0o755)
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
    assert files == {"bin/sbatch", "bin/squeue", "logs/slurm/submitted.json", "params.yaml"}  # no plan, job script or stage log


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository planning the demo of two small models, nothing run yet."""
    return copy_repository(tmp_path_factory.mktemp("submit") / "oak")


def files_in(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if ".git" not in path.parts}


def submitting(repo: Path, monkeypatch: pytest.MonkeyPatch, *arguments: str, path: str = "") -> int:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PATH", path or os.environ["PATH"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return main(["submit", *arguments])


def test_without_slurm_oak_submit_refuses_in_one_line_before_printing_or_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / ".dvc").mkdir()
    params_file(tmp_path)
    before = files_in(tmp_path)
    assert submitting(tmp_path, monkeypatch, path=str(tmp_path / "bin")) == 2  # a PATH without SLURM's commands
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == (
        "oak submit: error: `sbatch` and `squeue` not found on PATH: run `oak submit` on a SLURM login node "
        "(`oak submit --dry-run` checks and summarises the jobs anywhere)\n"
    )
    assert files_in(tmp_path) == before  # no job script, log or lock


@pytest.mark.slow  # a copy of the repository and DVC's status of it: about 20 s
def test_a_dry_run_summarises_the_jobs_and_the_device_hours_measured_and_lists_them_only_with_verbose(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    runs = plan_runs(load_studies(repo / "pipelines" / "studies"), "demo")
    config = run_config(repo / "params.yaml", runs["resnet18"])
    measured = {"model": "resnet18", "image_size": config.train.image_size, "batch_size": config.train.batch_size}
    measured |= {"precision": "32-true", "channels_last": config.train.channels_last, "epochs": config.train.epochs}
    measured |= {"images_per_second": 0.5}
    write_json(
        repo / "metrics" / "devices" / "a-cpu" / "cost-demo.json",  # the demo profile's measurements (`oak bench cost --profile demo`)
        {"device": "a CPU", "device_kind": "cpu", "batch_size_cap": None, "runs": {"resnet18": measured}},
    )
    assert submitting(repo, monkeypatch, "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    hours = f"{run_hours(measured):,.0f}"
    assert lines == [
        "10 jobs for the demo profile: 6 other on 1 node x 1 task, no GPU, 2 train on 1 node x 1 GPU, 2 evaluate on 1 node x 1 GPU",
        "GPUs: 4 requested in all, at most 1 by one job",
        f"estimated: {hours} device-hours on a CPU for 1 of the 2 trainings (metrics/devices/a-cpu/cost-demo.json); "
        "1 unestimated, not measured with their settings",
        "a dry run: nothing submitted; `oak submit --dry-run -v` lists the jobs",
    ]
    assert submitting(repo, monkeypatch, "--dry-run", "-v") == 0
    listed = capsys.readouterr().out
    assert "train@resnet18: sbatch --job-name=oak:train@resnet18" in listed and "$ oak train --run resnet18 resnet18" in listed


def test_a_paper_profile_on_the_demos_synthetic_images_is_refused_before_any_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    studies = tmp_path / "pipelines" / "studies"
    params_file(tmp_path)
    studies.mkdir()
    profiles = "profiles: {demo: {recipe: demo}, imagenet: {recipe: resnet_he2016}}"
    (studies / "a.yaml").write_text(f"title: A\nsource: a test\nmetric: top1\n{profiles}\nrows:\n  - {{label: R18, model: resnet18}}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "imagenet"]) == 0
    capsys.readouterr()
    assert submitting(tmp_path, monkeypatch, "--dry-run") == 2
    assert capsys.readouterr().err == (
        "oak submit: error: data.source=data/demo: the demo's synthetic images, not data for the imagenet profile; "
        "point data.source in params.yaml at ImageNet (docs/imagenet.md)\n"
    )


def test_a_job_on_several_nodes_needs_a_tracking_server_not_an_sqlite_file() -> None:
    jobs = [Job("prepare", "oak prepare"), Job("train@r50", "srun oak train --run r50 resnet50", nodes=2, tasks_per_node=8)]
    with pytest.raises(OakError, match=r"^stage train@r50 runs on 2 nodes, which log to one MLflow server: tracking is sqlite:///mlflow.db; st"):
        _check_tracking(load_config(PARAMS, ["tracking.uri=sqlite:///mlflow.db"]), jobs)
    _check_tracking(load_config(PARAMS, ["tracking.uri=http://tracking-host:5000"]), jobs)
    _check_tracking(load_config(PARAMS, ["tracking.uri=sqlite:///mlflow.db"]), jobs[:1])  # one node: its own file is enough

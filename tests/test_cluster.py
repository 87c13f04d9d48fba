"""`oak submit` and `oak status` against a real one-node SLURM cluster started on this machine: the
planned runs as parallel jobs, one requeued mid-training, one failing, and DVC's record intact."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from slurm_cluster import missing_daemons, one_node_cluster
from test_pipeline import SHRINK, copy_repository
from test_tracking import free_port, start_server, stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(missing_daemons()),
        reason=f"SLURM is not installed ({', '.join(missing_daemons())} missing): .ci/run installs slurm-wlm and munge",
    ),
]

RUNS = ["resnet18", "shufflenet_v2_x0_5"]
# resnet18 trains long enough to be requeued mid-way; the bad row asks for more images per batch than there are.
STUDY = """title: "Two small models, and a broken row"
source: "a test"
metric: top1
profiles: {demo: {recipe: demo}}
rows:
  - {label: ResNet-18, model: resnet18, paper: 69.758, profiles: {demo: {settings: {train: {epochs: 4}}}}}
  - {label: ShuffleNet-v2 0.5x, model: shufflenet_v2_x0_5, paper: 60.552}
"""
BROKEN_ROW = "  - {label: Broken, model: plain18, paper: 1, profiles: {demo: {settings: {train: {batch_size: 1000}}}}}\n"
ON_THIS_CLUSTER = {"cluster": {"cpus_per_task": 1, "gpus": False, "time": "00:20:00"}, "trainer": {"accelerator": "cpu"}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with one_node_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The team's tracking server every job logs to (`oak server`'s command), on 127.0.0.1."""
    port = free_port()
    process = start_server(tmp_path_factory.mktemp("server"), port)
    yield f"http://127.0.0.1:{port}"
    stop(process)


def oak(repo: Path, env: dict[str, str], *arguments: str, check: bool = True) -> str:
    done = subprocess.run([sys.executable, "-m", "oak.cli", *arguments], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 or not check, done.stdout + done.stderr
    return done.stdout + done.stderr


def dvc(repo: Path, env: dict[str, str], *arguments: str) -> str:
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), *arguments], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def submitted(repo: Path) -> dict[str, dict]:
    return json.loads((repo / "logs" / "slurm" / "submitted.json").read_text())


def states(repo: Path, env: dict[str, str]) -> dict[str, str]:
    """Each job's state, as `oak status` prints it: stage, job id, state, log or MLflow run."""
    rows = [line.split() for line in oak(repo, env, "status").splitlines()[1:]]
    return {row[0]: row[2] for row in rows if len(row) >= 3 and row[1].isdigit()}


def failed_logs(repo: Path, env: dict[str, str]) -> str:
    """The last lines of every failed job's log: what an assertion needs to say why a job it waited for never finished."""
    tails = []
    for stage, state in states(repo, env).items():
        log = repo / "logs" / "slurm" / f"{stage}.log"
        if state == "failed" and log.exists():
            tails.append(f"--- {stage} ---\n" + "\n".join(log.read_text().splitlines()[-25:]))
    return "\n".join(tails)


def wait_for_jobs(repo: Path, env: dict[str, str], timeout: float = 900) -> dict[str, str]:
    """`oak status` once the queue holds none of the submitted jobs (asked of squeue: cheaper than Oak, which imports MLflow)."""
    ids = ",".join(job["job_id"] for job in submitted(repo).values())
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "--noheader", f"--jobs={ids}"], env=env, capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, f"jobs still unfinished after {timeout} s: {states(repo, env)}"
        time.sleep(2)
    return states(repo, env)


@pytest.fixture(scope="module")
def first_submit(tmp_path_factory: pytest.TempPathFactory, cluster: dict[str, str], server: str) -> tuple[Path, dict, str]:
    """Submit a fresh copy with a broken row; requeue resnet18's job once it has a checkpoint; wait for every job."""
    env = {**os.environ, **cluster, "MLFLOW_TRACKING_URI": server, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    repo = copy_repository(tmp_path_factory.mktemp("cluster") / "oak", study=STUDY + BROKEN_ROW, params={**SHRINK, **ON_THIS_CLUSTER})
    printed = oak(repo, env, "submit", "demo")
    assert printed.startswith("12 jobs for the demo profile: 6 other on 1 node x 1 task, no GPU, 3 train on 1 node x 1 task, no GPU")
    assert "\n12 jobs submitted (SLURM ids " in printed
    job = submitted(repo)["train@resnet18"]["job_id"]
    checkpoint = repo / "models" / "resnet18" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not checkpoint.exists():
        assert time.monotonic() < deadline, f"no checkpoint of resnet18 after 600 s: {states(repo, env)}\n{failed_logs(repo, env)}"
        time.sleep(0.5)
    run_id = json.loads((checkpoint.parent / "run.json").read_text())["run_id"]
    subprocess.run(["scontrol", "requeue", job], env=env, check=True)
    # SLURM holds a requeued job for two minutes before it may start again; the test does not wait for that.
    while (
        subprocess.run(["squeue", "--noheader", "--format=%T", f"--jobs={job}"], env=env, capture_output=True, text=True).stdout.strip()
        != "PENDING"
    ):
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)
    return repo, wait_for_jobs(repo, env), run_id


def test_every_out_of_date_stage_is_a_job_after_those_it_needs(first_submit: tuple[Path, dict, str]) -> None:
    repo, _, _ = first_submit
    jobs = submitted(repo)
    runs = [*RUNS, "plain18"]
    assert set(jobs) == {"demo-data", "prepare", "facts", "bench-g1", "report", "sync"} | {
        f"{s}@{r}" for s in ("train", "evaluate") for r in runs
    }
    script = (repo / "logs" / "slurm" / "train@resnet18.sbatch").read_text()
    assert "oak train --run resnet18 resnet18 recipe=demo train.epochs=4\n" in script  # the stage's command, as dvc.yaml has it


def test_a_failing_job_is_named_with_its_log_and_leaves_its_stage_out_of_date(first_submit: tuple[Path, dict, str], cluster) -> None:
    repo, final, _ = first_submit
    assert final["train@plain18"] == "failed"
    assert {final["evaluate@plain18"], final["report"]} == {"cancelled"}  # they waited for it
    assert all(final[f"{stage}@{run}"] == "done" for stage in ("train", "evaluate") for run in RUNS)  # the others finished
    status = oak(repo, {**os.environ, **cluster}, "status")
    assert "logs/slurm/train@plain18.log" in status and "1 failed" in status
    assert "no full batch" in (repo / "logs" / "slurm" / "train@plain18.log").read_text()
    assert "train@plain18" in dvc(repo, {**os.environ, **cluster}, "status")


def test_a_requeued_training_resumes_from_its_checkpoint_in_the_same_mlflow_run(first_submit: tuple[Path, dict, str], server: str) -> None:
    repo, _, run_id = first_submit
    log = (repo / "logs" / "slurm" / "train@resnet18.log").read_text()
    assert "Restoring states from the checkpoint path" in log
    record = json.loads((repo / "models" / "resnet18" / "run.json").read_text())
    assert record["complete"] is True and record["run_id"] == run_id
    client = MlflowClient(server)
    [run] = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id], "tags.run = 'resnet18'")
    assert run.info.run_id == run_id and run.info.status == "FINISHED" and "eval/top1" in run.data.metrics


def test_after_the_fix_only_the_report_is_submitted_and_dvc_has_nothing_left_to_run(
    first_submit: tuple[Path, dict, str], cluster: dict[str, str], server: str
) -> None:
    repo, _, _ = first_submit
    env = {**os.environ, **cluster, "MLFLOW_TRACKING_URI": server, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    (repo / "pipelines" / "studies" / "small.yaml").write_text(STUDY)  # the broken row removed
    oak(repo, env, "plan", "demo")
    assert oak(repo, env, "submit").startswith("2 jobs for the demo profile: 2 other on 1 node x 1 task, no GPU\n")
    assert set(submitted(repo)) == {"report", "sync"}
    assert wait_for_jobs(repo, env) == {"report": "done", "sync": "done"}
    assert dvc(repo, env, "status").strip() == "Data and pipelines are up to date."
    assert "Data and pipelines are up to date." in dvc(repo, env, "repro")
    results = (repo / "reports" / "results.csv").read_text()
    assert all(f"\n{run}," in results for run in RUNS)
    client = MlflowClient(server)
    runs = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id], "tags.stage = 'train,evaluate'")
    assert sorted(run.data.tags["run"] for run in runs) == RUNS  # one MLflow run per planned run

"""`oak repro --jobs N`: the out-of-date stages of a real DVC pipeline, several at once, each after those it needs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from params_files import params_file

pytestmark = pytest.mark.slow  # a dozen real dvc processes

# Two independent stages that each take 3 s and note when they ran, and one that needs both.
PIPELINE = """
stages:
  left:
    cmd: date +%s.%N > left.txt && sleep 3 && date +%s.%N >> left.txt
    outs: [left.txt]
  right:
    cmd: date +%s.%N > right.txt && sleep 3 && test ! -e fail-right && date +%s.%N >> right.txt
    outs: [right.txt]
  both:
    cmd: date +%s.%N > both.txt && cat left.txt right.txt >> both.txt
    deps: [left.txt, right.txt]
    outs: [both.txt]
"""

# Two runs, each trained then evaluated, as dvc.yaml's foreach stages are.
RUNS_PIPELINE = """
stages:
  train:
    foreach: [a, b]
    do:
      cmd: echo ${item} > trained-${item}.txt
      outs:
        - trained-${item}.txt
  evaluate:
    foreach: [a, b]
    do:
      cmd: cp trained-${item}.txt evaluated-${item}.txt
      deps:
        - trained-${item}.txt
      outs:
        - evaluated-${item}.txt
"""


def oak_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}  # the default store, in the repository
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return env


def oak_repro(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["oak", "repro", *args], cwd=repo, env=oak_env(), capture_output=True, text=True)


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run([Path(sys.executable).parent / "dvc", *args], cwd=repo, capture_output=True, text=True, check=True)
    return result.stdout


def times(repo: Path, name: str) -> list[float]:
    return [float(line) for line in (repo / f"{name}.txt").read_text().split()[:2]]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc(tmp_path, "init", "-q")
    params_file(tmp_path)
    (tmp_path / "dvc.yaml").write_text(PIPELINE)
    return tmp_path


def test_independent_stages_run_side_by_side_and_a_stage_waits_for_its_inputs(repo: Path) -> None:
    result = oak_repro(repo, "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    (left_start, left_end), (right_start, right_end) = times(repo, "left"), times(repo, "right")
    assert left_start < right_end and right_start < left_end  # they overlapped
    assert float((repo / "both.txt").read_text().split()[0]) >= max(left_end, right_end)
    assert "3 stages: 3 ran, 0 unchanged" in result.stdout
    assert "Data and pipelines are up to date." in dvc(repo, "status")  # dvc.lock records all three
    assert (repo / "logs" / "repro" / "left.log").exists()


def test_one_job_runs_the_stages_one_after_another(repo: Path) -> None:
    assert oak_repro(repo, "--jobs", "1").returncode == 0
    first, second = sorted([times(repo, "left"), times(repo, "right")])
    assert first[1] <= second[0]


def test_a_runs_evaluation_starts_as_soon_as_its_training_is_done(repo: Path) -> None:
    (repo / "dvc.yaml").write_text(RUNS_PIPELINE)
    result = oak_repro(repo, "--jobs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    started = [line.split(":")[0] for line in result.stdout.splitlines() if ": started" in line]
    assert started == ["train@a", "evaluate@a", "train@b", "evaluate@b"]  # not both trainings first


def test_a_dvc_yaml_dvc_cannot_read_is_one_clear_error(repo: Path) -> None:
    (repo / "dvc.yaml").write_text("stages:\n  left:\n    cmd: [unclosed\n")
    result = oak_repro(repo)
    assert result.returncode == 2
    assert result.stderr.startswith("oak repro: error: DVC: unable to read: 'dvc.yaml', YAML file structure is corrupted (")
    assert len(result.stderr.strip().splitlines()) == 1  # with the parser's line and column, no traceback


def test_after_a_failure_nothing_starts_and_a_rerun_runs_only_what_is_still_out_of_date(repo: Path) -> None:
    (repo / "fail-right").touch()
    failed = oak_repro(repo, "--jobs", "2")
    assert failed.returncode != 0
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("oak repro: error: right failed (logs in logs/repro); 1 stage(s) not started, 1 done")
    assert "right: failed (exit 255)" in failed.stdout  # DVC's code for a failed stage
    log_tail = failed.stdout.split("right: failed (exit 255)")[1].split("\nleft: ")[0]
    assert "exited with 1" in log_tail  # the end of its log follows; left, still running, may end after it
    assert not (repo / "both.txt").exists()
    left_run = (repo / "left.txt").read_text()

    (repo / "fail-right").unlink()
    assert oak_repro(repo, "--jobs", "2").returncode == 0
    assert (repo / "left.txt").read_text() == left_run  # done stays done
    assert "Data and pipelines are up to date." in dvc(repo, "status")
    assert oak_repro(repo).stdout.splitlines()[0] == "every stage is up to date"


def test_sigterm_stops_the_running_stages_and_their_commands(repo: Path) -> None:
    (repo / "dvc.yaml").write_text(PIPELINE.replace("sleep 3", "sleep 97"))
    command = ["oak", "repro", "--jobs", "2"]
    oak = subprocess.Popen(command, cwd=repo, env=oak_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((repo / "left.txt").exists() and (repo / "right.txt").exists()):  # both commands are running
        assert time.monotonic() < deadline and oak.poll() is None, "the stages did not start"
        time.sleep(0.2)
    oak.terminate()
    stdout, stderr = oak.communicate(timeout=60)
    assert oak.returncode == 130 and stderr.strip().endswith("oak repro: interrupted")
    assert {"left: stopped", "right: stopped"} <= set(stdout.splitlines())
    sleeping = subprocess.run(["pgrep", "-f", "sleep 97"], capture_output=True, text=True).stdout.split()
    assert not sleeping  # no stage's command outlived oak repro
    status = dvc(repo, "status")
    assert "left" in status and "right" in status  # DVC recorded neither: the next run starts them again


def test_a_stage_whose_inputs_came_out_as_recorded_is_reported_unchanged(repo: Path) -> None:
    # as an evaluation on a fresh clone, whose checkpoint the training remade byte for byte
    (repo / "dvc.yaml").write_text(
        "stages:\n  source: {cmd: echo same > same.txt, outs: [same.txt]}\n"
        "  copy: {cmd: cp same.txt copy.txt, deps: [same.txt], outs: [copy.txt]}\n"
    )
    assert "2 stages: 2 ran, 0 unchanged" in oak_repro(repo).stdout
    (repo / "same.txt").unlink()
    result = oak_repro(repo, "--jobs", "2")
    assert "copy: unchanged, skipped in" in result.stdout and "2 stages: 1 ran, 1 unchanged" in result.stdout


def test_the_tracking_store_exists_before_the_first_stage_starts(repo: Path) -> None:
    # stages that start together on a fresh clone would race to create the SQLite store's tables
    (repo / "dvc.yaml").write_text("stages:\n  look: {cmd: test -s mlflow.db && touch seen, outs: [seen]}\n")
    assert oak_repro(repo).returncode == 0 and (repo / "seen").exists()


def test_a_count_below_one_is_refused(repo: Path) -> None:
    result = oak_repro(repo, "--jobs", "0")
    assert result.returncode != 0 and result.stderr.strip() == "oak repro: error: --jobs 0: run at least 1 stage at a time"


def processes_in(folder: Path) -> list[int]:
    """Every live process working in `folder`: a stage's dvc, its shell and its command."""
    working = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cwd").resolve() == folder.resolve():
                working.append(int(entry.name))
        except OSError:  # ended meanwhile, or a zombie: no working folder
            pass
    return working


def started_sleeping(repo: Path) -> subprocess.Popen:
    """`oak repro` of one stage whose command sleeps, once the command runs."""
    (repo / "dvc.yaml").write_text("stages:\n  sleeper:\n    cmd: touch started && sleep 95\n    outs: [started]\n")
    oak = subprocess.Popen(["oak", "repro"], cwd=repo, env=oak_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (repo / "started").exists():
        assert time.monotonic() < deadline and oak.poll() is None, "the stage did not start"
        time.sleep(0.2)
    return oak


def test_sigkill_of_oak_repro_ends_its_stages_and_their_commands(repo: Path) -> None:
    oak = started_sleeping(repo)
    oak.kill()  # nothing of oak repro's own runs: no handler, no finally
    oak.communicate()
    deadline = time.monotonic() + 20
    while processes_in(repo) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = processes_in(repo)
    for pid in left:  # so that a failure leaves nothing behind either
        os.kill(pid, 9)
    assert not left, "dvc repro or its stage's command outlived oak repro"
    assert not (repo / "dvc.lock").exists()  # nothing recorded the stopped stage


def test_a_second_oak_repro_refuses_naming_the_first_and_leaves_its_logs_alone(repo: Path) -> None:
    first = started_sleeping(repo)
    log = repo / "logs" / "repro" / "sleeper.log"
    written = log.read_text()
    second = oak_repro(repo)
    first.terminate()
    first.communicate(timeout=60)
    assert second.returncode == 2 and not second.stdout
    assert second.stderr.strip() == (
        f"oak repro: error: oak repro (pid {first.pid} on {os.uname().nodename}) is running in this repository (.dvc/tmp/oak.lock); "
        "wait for it to end or stop it first"
    )
    assert log.read_text().startswith(written) and "Running stage 'sleeper'" in written


def test_the_entries_dvc_lock_keeps_of_stages_no_longer_declared_go_and_the_end_says_where_results_are(repo: Path) -> None:
    # DVC keeps a foreach item's entry after the item is gone (a run the studies no longer plan)
    (repo / "dvc.yaml").write_text(RUNS_PIPELINE)
    assert oak_repro(repo).returncode == 0
    (repo / "dvc.yaml").write_text(RUNS_PIPELINE.replace("[a, b]", "[a]"))
    result = oak_repro(repo)
    assert result.returncode == 0, result.stderr
    assert "dvc.lock: dropped 2 entries of stages the pipeline no longer has (evaluate@b, train@b)" in result.stdout
    lock = (repo / "dvc.lock").read_text()
    assert "train@a" in lock and "evaluate@a" in lock and "@b" not in lock
    assert "Data and pipelines are up to date." in dvc(repo, "status")
    assert result.stdout.splitlines()[-1].startswith("results: reports/README.md (tables, figures, claims); MLflow")

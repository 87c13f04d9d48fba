"""The processes an `oak` command starts end with it, however it ends; the commands that change a
repository's pipeline run there one at a time."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from params_files import PARAMS, params_file

from oak.cli import main
from oak.cluster.commands import submit
from oak.config.load import load_config
from oak.errors import OakError
from oak.process import REPOSITORY_LOCK, repository_lock, tethered

# A command that stops as a training does on SIGTERM (a moment's work, then exit), after starting a
# process of its own in the background.
STOPPING_SLOWLY = (
    "sleep 61 & echo $! > background; trap 'echo stopping >> log; sleep 0.3; echo stopped >> log; exit 0' TERM; "
    "echo up > log; while :; do sleep 0.05; done"
)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_killing_the_parent_stops_the_tethered_command_and_ends_what_it_started(tmp_path: Path) -> None:
    parent_code = "import subprocess, sys, time; from oak.process import tethered; subprocess.Popen(tethered(sys.argv[1:])); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", parent_code, "sh", "-c", STOPPING_SLOWLY], cwd=tmp_path)
    assert wait_for(lambda: (tmp_path / "background").exists() and (tmp_path / "log").exists())
    background = int((tmp_path / "background").read_text())
    parent.kill()  # SIGKILL: the parent cleans up nothing
    parent.wait()
    try:
        assert wait_for(lambda: not alive(background)), "a process the command started outlived the parent"
        assert wait_for(lambda: "stopped" in (tmp_path / "log").read_text())
        assert (tmp_path / "log").read_text().split() == ["up", "stopping", "stopped"]  # it was given time to stop
    finally:
        if alive(background):
            os.kill(background, signal.SIGKILL)


def test_a_tethered_command_exits_as_the_command_did() -> None:
    assert subprocess.run(tethered(["sh", "-c", "exit 3"])).returncode == 3
    assert subprocess.run(tethered(["sh", "-c", "kill -9 $$"])).returncode == -signal.SIGKILL


def test_what_a_tethered_command_leaves_running_ends_with_it(tmp_path: Path) -> None:
    assert subprocess.run(tethered(["sh", "-c", "sleep 62 & echo $! > background"]), cwd=tmp_path).returncode == 0
    assert not alive(int((tmp_path / "background").read_text()))


def test_sigterm_to_the_watchdog_stops_the_command(tmp_path: Path) -> None:
    watchdog = subprocess.Popen(tethered(["sh", "-c", STOPPING_SLOWLY]), cwd=tmp_path)
    assert wait_for(lambda: (tmp_path / "background").exists() and (tmp_path / "log").exists())
    watchdog.terminate()
    assert watchdog.wait(timeout=10) == 0  # the command's own status: it stopped as asked
    assert not alive(int((tmp_path / "background").read_text()))


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_second_pipeline_command_refuses_naming_the_first(repository: Path) -> None:
    with repository_lock("oak repro"):
        with pytest.raises(OakError) as refused:
            with repository_lock("oak plan"):
                pass
    assert str(refused.value) == (
        f"oak repro (pid {os.getpid()} on {os.uname().nodename}) is running in this repository ({REPOSITORY_LOCK}); "
        "wait for it to end or stop it first"
    )
    with repository_lock("oak plan"):  # the first one's end released it
        pass


def test_oak_plan_leaves_the_plan_alone_while_oak_repro_runs(repository: Path, capsys: pytest.CaptureFixture) -> None:
    params_file(repository)
    (repository / "pipelines" / "plan.yaml").write_text("the plan oak repro's stages read\n")
    with repository_lock("oak repro"):
        assert main(["plan", "demo"]) == 2
    assert capsys.readouterr().err.startswith("oak plan: error: oak repro (pid ")
    assert (repository / "pipelines" / "plan.yaml").read_text() == "the plan oak repro's stages read\n"


def test_oak_submit_submits_nothing_while_oak_repro_runs(repository: Path) -> None:
    with repository_lock("oak repro"), pytest.raises(OakError, match=r"^oak repro \(pid \d+ on .+\) is running in this repository"):
        submit(load_config(PARAMS), PARAMS, None, [], dry_run=False, verbose=False)
    assert not (repository / "logs").exists()

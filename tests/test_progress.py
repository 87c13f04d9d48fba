"""What a user sees while Oak works: a progress bar on a terminal, lines of progress in a log, and no noise they cannot act on."""

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from params_files import PARAMS

MODEL = "shufflenet_v2_x0_5"  # the study's lightest model
NUMBER = r"[\d.]+"
NOISE = ("Total FLOPs", "litmodels", "litlogger", "Tip:", "is deprecated", "Test metric", "{'")


def oak(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """An oak command with stdout and stderr to pipes, as DVC, `oak repro` and SLURM give them."""
    done = subprocess.run(
        [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), *arguments], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done


def settings(folder: Path, shards: Path) -> list[str]:
    return [
        f"paths.shards={shards}",
        f"paths.checkpoints={folder / 'models'}",
        f"paths.metrics={folder / 'metrics'}",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        "tracking.experiment=test-progress",
        "train.epochs=2",
        "train.batch_size=8",  # 5 batches an epoch of the 40 training images
        "train.image_size=32",
        "train.num_workers=0",
        "evaluate.batch_size=4",  # 5 batches of the 20 val images
        "evaluate.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=2",
    ]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, shards: Path) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """A training and its evaluation, logged as a pipeline stage's are."""
    folder = tmp_path_factory.mktemp("progress")
    return folder, oak("train", MODEL, *settings(folder, shards), cwd=folder), oak("evaluate", MODEL, *settings(folder, shards), cwd=folder)


@pytest.mark.slow  # a training and an evaluation in processes of their own: 20 s on 2 cores
def test_a_logged_training_prints_a_line_per_epoch_with_loss_top1_images_per_second_and_time_left(logged) -> None:
    folder, training, _ = logged
    metrics = json.loads((folder / "metrics" / "train" / f"{MODEL}.json").read_text())
    epochs = [line for line in training.stdout.splitlines() if re.match(r"epoch \d/2 done", line)]
    assert len(epochs) == 2, training.stdout
    for line in epochs:
        assert re.fullmatch(
            rf"epoch \d/2 done in [\d:]+; train loss {NUMBER}, top-1 {NUMBER}%; validation loss {NUMBER}, top-1 {NUMBER}%; "
            rf"[\d,]+ images/s(; about [\d:]+ left)?",
            line,
        ), line
    assert "left" in epochs[0] and "left" not in epochs[-1]  # nothing is left after the last epoch
    assert f"train loss {metrics['train_loss']:.4g}, top-1" in epochs[-1]
    assert f"validation loss {metrics['val_loss']:.4g}, top-1 {metrics['val_top1']:.1f}%" in epochs[-1]  # top-1 in per cent


@pytest.mark.slow  # a training and an evaluation in processes of their own: 20 s on 2 cores
def test_a_logged_training_prints_a_line_every_n_steps_between_its_epochs(logged) -> None:
    _, training, _ = logged
    steps = [line for line in training.stdout.splitlines() if ", step " in line]
    # steps 2 and 4 of epoch 1, 6 and 8 of epoch 2; the last batch of an epoch has the epoch's line instead
    assert [re.match(r"epoch (\d)/2, step (\d+) ", line).groups() for line in steps] == [("1", "2"), ("1", "4"), ("2", "6"), ("2", "8")]
    assert re.fullmatch(
        rf"epoch 1/2, step 2 \(batch 2/5\): loss {NUMBER}, top-1 {NUMBER}% \(this epoch so far\); [\d,]+ images/s; about [\d:]+ left",
        steps[0],
    ), steps[0]


@pytest.mark.slow  # a training and an evaluation in processes of their own: 20 s on 2 cores
def test_a_logged_training_says_its_network_and_result_in_one_line_each_without_lightnings_noise(logged) -> None:
    folder, training, _ = logged
    metrics = json.loads((folder / "metrics" / "train" / f"{MODEL}.json").read_text())
    lines = training.stdout.splitlines()
    assert re.fullmatch(rf"{MODEL}: {NUMBER} K parameters", lines[0]), lines[0]
    assert lines[-1] == (
        f"{MODEL}: trained 2 epochs (10 steps) at 32 px: train loss {metrics['train_loss']:.4g}; "
        f"validation loss {metrics['val_loss']:.4g}, top-1 {metrics['val_top1']:.1f}% (single centre crop, during training)"
    )
    assert [noise for noise in NOISE if noise in training.stdout + training.stderr] == []


@pytest.mark.slow  # a training and an evaluation in processes of their own: 20 s on 2 cores
def test_a_logged_evaluation_prints_its_progress_and_count_without_lightnings_table(logged) -> None:
    _, _, evaluation = logged
    lines = evaluation.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["evaluate", "evaluate"]  # batches 2 and 4 of 5
    assert re.fullmatch(rf"evaluate: batch 2/5: top-1 {NUMBER}% so far; [\d,]+ images/s; about [\d:]+ left", lines[0]), lines[0]
    assert re.fullmatch(r"evaluated 20 images in [\d:]+ \([\d,]+ images/s\)", lines[2]), lines[2]
    assert [noise for noise in NOISE[:-1] if noise in evaluation.stdout + evaluation.stderr] == []


def test_progress_is_lightnings_bar_on_a_terminal_and_lines_elsewhere_unless_the_setting_forces_one(capsys: pytest.CaptureFixture) -> None:
    from oak.training.progress import shows_bar

    assert not sys.stdout.isatty()  # captured, as in a log
    assert [shows_bar(None), shows_bar(True), shows_bar(False)] == [False, True, False]
    leader, follower = pty.openpty()
    decide = "import sys; from oak.training.progress import shows_bar; print(sys.stdout.isatty(), shows_bar(None), shows_bar(False))"
    with subprocess.Popen([sys.executable, "-c", decide], stdout=follower, stderr=subprocess.DEVNULL) as terminal:
        os.close(follower)
        assert terminal.wait(timeout=120) == 0
    assert os.read(leader, 1000).decode().strip() == "True True False"
    os.close(leader)


def test_a_logged_oak_prepare_prints_its_steps_progress_with_rate_and_time_left(demo_tree: Path, tmp_path: Path) -> None:
    done = oak("prepare", "--source", str(demo_tree), "--out", str(tmp_path / "shards"), "prepare.samples_per_shard=4", cwd=tmp_path)
    lines = done.stderr.splitlines()
    assert [line for line in lines if line.startswith("write train")] == [
        "write train: 0 of 40 images",
        *(AnyLine(rf"write train: {count} of 40 images \({count * 10 // 4}%\), [\d,]+ images/s, [\d:]+ left") for count in range(4, 40, 4)),
        AnyLine(r"write train: 40 of 40 images \(100%\), [\d,]+ images/s, [\d:]+ in all"),
    ]
    assert {line.split(":")[0] for line in lines} == {"check train", "check val", "write train", "write val"}


class AnyLine:
    """Equal to any line that matches `pattern` in full."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __eq__(self, line: object) -> bool:
        return isinstance(line, str) and re.fullmatch(self.pattern, line) is not None

    def __repr__(self) -> str:
        return f"AnyLine({self.pattern!r})"

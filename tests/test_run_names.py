"""A run's name, from the command line or a study, names files and folders only inside their own folder:
anything else is one error line, before any file is touched."""

import os
from pathlib import Path

import pytest
from params_files import PARAMS
from test_plan import STUDY, studies_in

from oak.cli import main
from oak.errors import OakError
from oak.layout import Layout
from oak.models.registry import available_models
from oak.studies.plan import plan_runs
from oak.studies.study import load_studies

LAYOUT = Layout(*(Path(folder) for folder in ("demo", "shards", "models", "metrics", "reports", "logs", "weights")))
OUTSIDE = ["../victim", "/tmp/victim", ".", "..", "", "a/b", "a\\b", ".hidden", "a.oak-lock", "a\0b", "ResNet18", "r" * 101]


@pytest.mark.parametrize("name", OUTSIDE)
def test_every_path_made_from_a_run_name_refuses_one_that_is_not_a_plain_lower_case_name(name: str) -> None:
    paths = (LAYOUT.run_folder, LAYOUT.train_metrics, LAYOUT.curves, LAYOUT.eval_metrics, LAYOUT.weights_metrics, LAYOUT.published_metrics)
    for path_of in paths:
        with pytest.raises(OakError, match=r"^run name .*: use lower-case letters, digits, '-' and '_'"):
            path_of(name)
    with pytest.raises(OakError, match=r"^run name "):
        LAYOUT.timings("train", name)


def test_every_model_of_the_zoo_and_every_planned_run_is_a_valid_run_name() -> None:
    studies = load_studies()
    names = [*available_models(), *(name for profile in ("demo", "imagenet", "published") for name in plan_runs(studies, profile))]
    assert all(LAYOUT.run_folder(name) == Path("models") / name for name in names)


def test_a_study_whose_run_name_cannot_name_a_file_stops_the_plan_naming_the_row(tmp_path: Path) -> None:
    folder = studies_in(tmp_path, long=STUDY + f"  - {{label: A, model: resnet18, paper: 1, variant: {'v' * 95}}}\n")
    with pytest.raises(OakError, match=r"^pipelines/studies/long.yaml: row 'A': run name 'resnet18-vvv*': use lower-case"):
        plan_runs(load_studies(folder), "demo")


def oak(tmp_path: Path, *argv: str) -> int:
    settings = [f"paths.{key}={tmp_path / key}" for key in ("checkpoints", "metrics", "shards")]
    return main(["--params", str(PARAMS), *argv, *settings, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"])


@pytest.mark.parametrize("name", ["../victim", "VICTIM", "."])  # VICTIM: an absolute path, filled in below
def test_oak_train_with_a_run_name_reaching_outside_the_checkpoints_is_one_error_line_and_deletes_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    victim, models = tmp_path / "victim", tmp_path / "checkpoints"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    models.mkdir()
    (models / ".gitignore").write_text("/resnet18\n")
    name = str(victim) if name == "VICTIM" else name
    assert oak(tmp_path, "train", "resnet18", "--run", name, "train.epochs=1") == 2
    assert capsys.readouterr().err == f"oak train: error: run name {name!r}: " + (
        "use lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 100 characters "
        "(it names the run's folder and files)\n"
    )
    assert (victim / "notes.txt").read_text() == "mine" and [path.name for path in models.iterdir()] == [".gitignore"]


def test_oak_evaluate_with_a_run_name_reaching_outside_its_folder_is_one_error_line_before_anything_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert oak(tmp_path, "evaluate", "resnet18", "--run", "../victim") == 2
    assert capsys.readouterr().err.startswith("oak evaluate: error: run name '../victim': use lower-case")
    assert list(tmp_path.iterdir()) == []  # no metrics, no tracking store


@pytest.mark.parametrize("kind", ["folder", "pipe"])  # a pipe with no writer would block the read for ever
def test_oak_evaluate_with_weights_that_are_not_a_file_is_one_error_line_naming_them(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    weights = tmp_path / "weights"
    weights.mkdir() if kind == "folder" else os.mkfifo(weights)
    assert oak(tmp_path, "evaluate", "resnet18", "--weights", str(weights)) == 2
    assert capsys.readouterr().err == (
        f"oak evaluate: error: {weights}: not a file (a folder, pipe or device); "
        "give the checkpoint, state_dict or .safetensors file itself\n"
    )

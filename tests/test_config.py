"""params.yaml is checked against a typed schema; every mistake names its key, in one error line."""

import subprocess
import sys
from pathlib import Path

import pytest

from oak.config import flatten, load_config
from oak.errors import OakError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_the_repository_params_file_is_valid() -> None:
    config = load_config(Path(__file__).parents[1] / "params.yaml")
    assert config.recipe == "demo"
    assert config.trainer.accelerator in {"auto", "cpu"}


def test_values_from_the_file_and_overrides_win_over_the_schema(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "train:\n  epochs: 3\n"), ["train.lr=0.5", "trainer.devices=[0,1]"])
    assert config.train.epochs == 3
    assert config.train.lr == 0.5
    assert list(config.trainer.devices) == [0, 1]
    assert config.train.batch_size == 16  # untouched keys keep the schema's default


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"params.yaml: unknown key 'train.epoch'"):
        load_config(write(tmp_path, "train:\n  epoch: 3\n"))


def test_a_value_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"key 'train.epochs'"):
        load_config(write(tmp_path, "train:\n  epochs: many\n"))


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"params.yaml: not valid YAML at line 3"):
        load_config(write(tmp_path, "train:\n  epochs: 3\n    lr: 0.1\n"))


def test_an_unknown_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"override: unknown key 'trainer.gpus'"):
        load_config(write(tmp_path, ""), ["trainer.gpus=2"])


def test_an_override_without_equals_sign_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"expected key=value"):
        load_config(write(tmp_path, ""), ["train.epochs"])


def test_flatten_gives_dotted_keys() -> None:
    flat = flatten(load_config(Path("missing.yaml"), ["train.epochs=2"]))
    assert flat["train.epochs"] == 2
    assert flat["trainer.accelerator"] == "auto"


def test_the_command_prints_one_error_line_and_exits_non_zero(tmp_path: Path) -> None:
    params = write(tmp_path, "train:\n  epoch: 3\n")
    result = subprocess.run([sys.executable, "-m", "oak.cli", "--params", str(params), "report"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"oak report: error: {params}: unknown key 'train.epoch'; check its spelling against the schema in src/oak/config.py"
    ]


def test_an_unknown_model_stops_the_command_with_the_closest_names(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "oak.cli", "train", "resnet181"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("oak train: error: unknown model 'resnet181'; closest: resnet18")
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()


def test_overrides_may_follow_a_verbs_options(capsys: pytest.CaptureFixture) -> None:
    from oak.cli import main

    assert main(["models", "--model", "resnet18", "--json", "train.epochs=0"]) == 2
    assert capsys.readouterr().err.strip() == "oak models: error: train.epochs=0: train at least 1 epoch"  # the override was read

"""params.yaml is checked against a typed schema; every mistake names its key, in one error line."""

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from params_files import PARAMS, params_file

from oak.config.load import flatten, load_config
from oak.errors import OakError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_the_repository_params_file_is_valid() -> None:
    config = load_config(PARAMS)
    assert config.recipe == "demo"
    assert config.trainer.accelerator in {"auto", "cpu"}


def test_values_from_the_file_and_overrides_win_over_the_schema(tmp_path: Path) -> None:
    config = load_config(params_file(tmp_path, "train:\n  epochs: 3\n"), ["train.lr=0.5", "trainer.devices=[0,1]"])
    assert config.train.epochs == 3
    assert config.train.lr == 0.5
    assert list(config.trainer.devices) == [0, 1]
    assert config.train.batch_size == 32  # untouched keys keep the recipe's, else the schema's default


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"params.yaml: unknown key 'train.epoch'"):
        load_config(params_file(tmp_path, "train:\n  epoch: 3\n"))


def test_a_value_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"key 'train.epochs'"):
        load_config(params_file(tmp_path, "train:\n  epochs: many\n"))


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"params.yaml: not valid YAML at line 3"):
        load_config(write(tmp_path, "train:\n  epochs: 3\n    lr: 0.1\n"))


def test_an_unknown_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"command line: unknown key 'trainer.gpus'"):
        load_config(PARAMS, ["trainer.gpus=2"])


def test_an_override_without_equals_sign_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"expected key=value"):
        load_config(PARAMS, ["train.epochs"])


def test_flatten_gives_dotted_keys() -> None:
    flat = flatten(load_config(PARAMS, ["train.epochs=2"]))
    assert flat["train.epochs"] == 2
    assert flat["trainer.accelerator"] == "auto"


def test_the_command_prints_one_error_line_and_exits_non_zero(tmp_path: Path) -> None:
    params = params_file(tmp_path, "train:\n  epoch: 3\n")
    result = subprocess.run([sys.executable, "-m", "oak.cli", "--params", str(params), "report"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"oak report: error: {params}: unknown key 'train.epoch'; check its spelling against the schema (src/oak/config/schema.py)"
    ]


def test_an_unknown_model_stops_the_command_with_the_closest_names(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", "resnet181"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("oak train: error: unknown model 'resnet181'; closest: resnet18")
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()


def test_overrides_may_follow_a_verbs_options(capsys: pytest.CaptureFixture) -> None:
    from oak.cli import main

    assert main(["models", "--model", "resnet18", "--json", "train.epochs=0"]) == 2
    assert capsys.readouterr().err.strip() == "oak models: error: train.epochs=0: use 1 or more"  # the override was read


def test_main_called_in_process_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    from oak.cli import main

    assert gc.isenabled()
    assert main(["models", "--model", "resnet18", "--json", "train.epochs=0"]) == 2  # failed inside the paused block
    assert main(["models", "--model", "resnet18", "--json"]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0  # only the `oak` executable freezes, at its exit


def test_each_value_is_written_once_in_params_yaml_or_in_the_schema() -> None:
    from omegaconf import OmegaConf

    from oak.config.schema import OakConfig

    schema = OmegaConf.structured(OakConfig)
    left_to_params = {key for key, value in flatten(schema).items() if value == "???"}  # OmegaConf's MISSING
    written_in_params = set(flatten(OmegaConf.load(PARAMS)))
    assert written_in_params == left_to_params


def test_a_key_without_a_value_is_named(tmp_path: Path) -> None:
    params = params_file(tmp_path)
    params.write_text(params.read_text().replace("  val_per_class: 100\n", ""))
    with pytest.raises(OakError, match=rf"{params}: no value for 'demo.val_per_class'; every key the schema leaves to params.yaml"):
        load_config(params)


def test_oak_config_names_where_each_value_of_a_planned_run_comes_from(capsys: pytest.CaptureFixture) -> None:
    from oak.cli import main

    assert main(["config", "efficientnet_b3-43px", "train.lr=0.5"]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["recipe"].endswith("# studies (pipelines/plan.yaml: efficientnet_b3-43px)")
    assert lines["train.image_size"].startswith("train.image_size: 43 ") and "# studies" in lines["train.image_size"]
    assert lines["train.lr"].startswith("train.lr: 0.5 ") and lines["train.lr"].endswith("# command line")
    assert lines["train.epochs"].endswith("# pipelines/recipes/demo.yaml")
    assert lines["train.shuffle_buffer"].endswith("# params.yaml")
    assert lines["train.mean"].endswith("# the schema (src/oak/config/schema.py)")


def test_oak_config_keeps_logins_out_of_what_it_prints(capsys: pytest.CaptureFixture) -> None:
    from oak.cli import main

    assert main(["config", "tracking.uri=http://ann:s3cret@127.0.0.1:5000"]) == 0
    printed = capsys.readouterr().out
    assert "s3cret" not in printed and "tracking.uri: http://" in printed


def alias_bomb(levels: int) -> str:
    """ "Billion laughs": each level a list of nine aliases of the one before, 9**levels values once expanded."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_params_yaml_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    params = write(tmp_path, PARAMS.read_text() + alias_bomb(9))
    tracemalloc.start()
    try:
        with pytest.raises(OakError, match=r"params.yaml: over 10,000 values with its aliases expanded \(at line \d+\)"):
            load_config(params)
        assert tracemalloc.get_traced_memory()[1] < 20e6  # bytes: the 9**9 values were never built
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.mean=" + alias_bomb(6).replace("\n", ", ").join("{}"), r"train.mean: over 10,000 values with its aliases expanded"),
        ("train.mean=&a [*a]", r"train.mean: the value anchored at line 1 holds an alias of itself, an endless value"),
        ("train.mean=" + "[" * 40 + "]" * 40, r"train.mean: nested more than 32 levels deep at line 1; flatten it"),
        ("train.mean=" + "[" * 500 + "]" * 500, r"train.mean: nested more than 32 levels deep; flatten it"),
        ("train.mean={a: 1, a: 2}", r"train.mean: key 'a' is written twice in the mapping at line 1; keep one"),
        ("report.title=${oc.env:HOME}", r"report.title: '\$\{oc.env:HOME\}' at line 1: Oak resolves no interpolations"),
        ("train.mean=[1,", r"train.mean: not valid YAML at line 1 \(expected the node content"),
    ],
)
def test_a_command_line_value_beyond_what_oak_reads_is_one_error_naming_its_key(override: str, message: str) -> None:
    with pytest.raises(OakError, match=r"^command line: " + message) as refused:
        load_config(PARAMS, [override])
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("written", "instead", "message"),
    [
        ("  shuffle_buffer: 1000\n", "  shuffle_buffer: 1000\n  shuffle_buffer: 10\n", r"key 'shuffle_buffer' is written twice"),
        ("title: Oak results", "title: ${tracking.uri}", r"'\$\{tracking.uri\}' at line \d+: Oak resolves no interpolations"),
        ('launch: ""', "launch: &x [*x]", r"the value anchored at line \d+ holds an alias of itself"),
        ('launch: ""', "launch: &x " + "[" * 30 + "]" * 30 + "\nunused: [[[*x]]]", r"nested more than 32 levels deep by an alias of line"),
    ],
)
def test_a_params_file_oak_would_read_wrongly_is_one_error_naming_it(tmp_path: Path, written: str, instead: str, message: str) -> None:
    with pytest.raises(OakError, match=r"params.yaml: " + message):
        load_config(write(tmp_path, PARAMS.read_text().replace(written, instead)))


def test_a_params_file_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    params = write(tmp_path, PARAMS.read_text() + "# padding\n" * 30_000)
    with pytest.raises(OakError, match=r"params.yaml: 303,\d{3} bytes, over the 262,144 Oak reads from a settings or study file"):
        load_config(params)


def test_anchors_and_aliases_within_the_bounds_load_as_yaml_reads_them(tmp_path: Path) -> None:
    text = PARAMS.read_text().replace("\nseed: 0\n", "\nseed: &seed 7\n", 1).replace("  seed: 0\n", "  seed: *seed\n", 1)
    params_file(tmp_path).write_text(text)  # beside the recipes
    config = load_config(tmp_path / "params.yaml", ["train.mean=[&m 0.5, *m, *m]"])
    assert (config.seed, config.demo.seed, list(config.train.mean)) == (7, 7, [0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=-0.1", r"train.lr=-0.1: use a value above 0$"),
        ("train.lr=nan", r"train.lr=nan: use a value above 0$"),
        ("train.image_size=0", r"train.image_size=0: use 1 or more$"),
        ("train.drop_rate=1.5", r"train.drop_rate=1.5: use a value from 0 to below 1$"),
        ("trainer.accumulate_grad_batches=0", r"trainer.accumulate_grad_batches=0: use 1 or more$"),
        ("train.batch_size=0", r"train.batch_size=0: use 1 or more$"),
        ("seed=-1", r"seed=-1: use a value from 0 to 4,294,967,295$"),
        ("seed=4294967296", r"seed=4294967296: use a value from 0 to 4,294,967,295$"),
        ("train.std=[0,0,0]", r"train.std=\[0.0, 0.0, 0.0\]: use a value above 0 and at most 1 \(the images are divided by it\)$"),
        ("trainer.limit_train_batches=0", r"trainer.limit_train_batches=0: use a count of batches \(1 or more\) or a fraction"),
        ("prepare.classes=0", r"prepare.classes=0: use null \(all\), a count of 1 or more, or a list of WordNet IDs$"),
    ],
)
def test_a_number_outside_its_settings_range_is_refused_as_the_config_loads(override: str, message: str) -> None:
    with pytest.raises(OakError, match="^" + message):
        load_config(PARAMS, [override])


def test_nesterov_sgd_without_momentum_is_refused_and_plain_sgd_is_named() -> None:
    with pytest.raises(OakError, match=r"^train.momentum=0: train.optimizer=sgd is Nesterov SGD.*use train.optimizer=momentum"):
        load_config(PARAMS, ["train.optimizer=sgd", "train.momentum=0"])
    assert load_config(PARAMS, ["train.optimizer=momentum", "train.momentum=0"]).train.momentum == 0


def test_every_numeric_setting_of_the_schema_has_a_range() -> None:
    """A numeric key added to the schema without a range would take any value, and crash later."""
    from dataclasses import fields, is_dataclass
    from typing import Any

    from oak.config.checks import RANGES
    from oak.config.schema import OakConfig

    def numeric_keys(schema: type, prefix: str = "") -> set[str]:
        keys: set[str] = set()
        for item in fields(schema):
            if is_dataclass(item.type):
                keys |= numeric_keys(item.type, f"{prefix}{item.name}.")
            elif item.type is Any or any(kind in str(item.type) for kind in ("int", "float")):
                keys.add(prefix + item.name)
        return keys

    checked_otherwise = {"train.eval_crops", "trainer.devices", "trainer.limit_train_batches", "prepare.classes"}  # sets of values
    assert numeric_keys(OakConfig) - checked_otherwise == set(RANGES)

"""`oak bench`'s subcommands: each measurement's help lists only its own options, with its defaults
(nothing is measured here)."""

import pytest

from oak.bench.commands import G1_FEATURE_MAP
from oak.cli import main, parser

MEASUREMENTS = ("infer", "train", "loader", "prepare", "g1", "cost", "resolution")
OPTIONS = {"--model", "--resolution", "--batch-size", "--images", "--workers", "--steps", "--rounds", "--device", "--profile", "--pairs", "--cap", "--size"}
OWN_OPTIONS = {
    "infer": {"--model", "--resolution", "--batch-size", "--device"},
    "train": {"--model", "--images", "--resolution", "--batch-size", "--steps", "--rounds"},
    "loader": {"--images", "--resolution", "--batch-size", "--workers", "--rounds"},
    "prepare": {"--images", "--workers"},
    "g1": {"--device", "--pairs", "--resolution", "--batch-size", "--rounds", "--steps"},
    "cost": {"--profile", "--model", "--device", "--steps", "--batch-size"},
    "resolution": {"--images", "--cap", "--size", "--model", "--batch-size", "--steps", "--rounds", "--device"},
}


def help_text(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--help"])
    assert stopped.value.code == 0
    return capsys.readouterr().out


def test_bench_help_lists_its_measurements(capsys: pytest.CaptureFixture) -> None:
    text = help_text(["bench"], capsys)
    for measurement in MEASUREMENTS:
        assert f"\n    {measurement} " in text, measurement


@pytest.mark.parametrize("measurement", MEASUREMENTS)
def test_each_measurement_shows_only_its_own_options(measurement: str, capsys: pytest.CaptureFixture) -> None:
    usage = help_text(["bench", measurement], capsys).split("\n\n")[0]
    assert {option for option in OPTIONS if f"[{option} " in usage} == OWN_OPTIONS[measurement]


def test_fixed_defaults_are_in_the_help(capsys: pytest.CaptureFixture) -> None:
    # argparse wraps the help to the terminal's width
    assert "generated images (default: 1000)" in " ".join(help_text(["bench", "train"], capsys).split())
    assert "measure (default: imagenet)" in " ".join(help_text(["bench", "cost"], capsys).split())


def test_defaults_that_depend_on_the_device_or_params_are_left_to_the_handler() -> None:
    cost = parser().parse_args(["bench", "cost"])
    assert (cost.steps, cost.batch_size, cost.profile) == (None, None, "imagenet")
    g1 = parser().parse_args(["bench", "g1", "bench.g1_rounds=3"])
    assert (g1.rounds, g1.overrides) == (None, ["bench.g1_rounds=3"])


def test_the_g1_default_is_the_papers_feature_map() -> None:
    from oak.bench.g1 import FEATURE_MAP

    assert G1_FEATURE_MAP == FEATURE_MAP
    assert parser().parse_args(["bench", "g1"]).resolution == FEATURE_MAP


def test_counts_must_be_positive(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "prepare", "--images", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_a_model_no_planned_run_trains_is_one_clear_error_and_writes_nothing(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "cost", "--profile", "budget", "--model", "resnet18", "--device", "cpu", f"paths.metrics={tmp_path}"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--model resnet18: no run of the budget profile trains it; its models: " in error[0] and "resnet18a" in error[0]
    assert not any(tmp_path.iterdir())

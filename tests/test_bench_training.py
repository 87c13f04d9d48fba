"""`oak bench train`, `loader` and `throughput` at a tiny size: they run end to end, print their ratios
and write them to metrics/bench or metrics/devices (timings are not asserted)."""

import json
from pathlib import Path

import pytest
from params_files import PARAMS

from oak.cli import main


@pytest.mark.slow
def test_bench_train_sets_oak_beside_a_plain_pytorch_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    sizes = "--images 100 --steps 2 --rounds 1 --batch-size 8 --resolution 32"
    assert main(["--params", str(PARAMS), "bench", "train", *sizes.split()]) == 0
    assert "Oak (Lightning)" in capsys.readouterr().out
    result = json.loads((tmp_path / "metrics" / "bench" / "train.json").read_text())
    assert result["ratio"] == pytest.approx(result["oak_images_per_second"] / result["plain_images_per_second"])


@pytest.mark.slow
def test_bench_loader_sets_the_shard_loader_beside_imagefolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    sizes = "--images 200 --rounds 1 --batch-size 8 --resolution 32 --workers 1"
    assert main(["--params", str(PARAMS), "bench", "loader", *sizes.split()]) == 0
    out = capsys.readouterr().out
    assert "torchvision ImageFolder" in out and "loader memory over the epoch" in out
    result = json.loads((tmp_path / "metrics" / "bench" / "loader.json").read_text())
    assert result["ratio"] == pytest.approx(result["oak_images_per_second"] / result["imagefolder_images_per_second"])
    assert result["memory_mb_last"] > 0


@pytest.mark.slow
def test_bench_throughput_sets_oak_train_on_both_paths_beside_the_model_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sizes = "--model resnet18 --images 32 --batch-size 4 --resolution 32 --epochs 1"
    assert main(["--params", str(PARAMS), "bench", "throughput", *sizes.split()]) == 0
    [written] = (tmp_path / "metrics" / "devices").glob("*/throughput.json")
    measured = json.loads(written.read_text())["models"]["resnet18"]
    assert measured["end_to_end_of_model_only"] == pytest.approx(measured["end_to_end"] / measured["model_only"], rel=1e-2)
    assert measured["device_path_over_loader_path"] == pytest.approx(measured["end_to_end"] / measured["loader_path"], rel=1e-2)
    assert (measured["batch"], measured["image_size"]) == (4, 32) and all(measured[key] > 0 for key in ("model_only", "end_to_end"))

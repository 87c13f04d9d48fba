"""`oak bench train` and `oak bench loader` at a tiny size: they run end to end, print their ratios
and write them to metrics/bench (timings are not asserted)."""

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

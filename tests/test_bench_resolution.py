"""`oak bench resolution`: the loader on full-size and capped shards at each training size, and the network
at each size, measured in one run, each contender every round."""

import pytest
import torch

from oak.bench.resolution import bench_resolution


@pytest.mark.slow  # 12-87 s on a 2-core machine, by its load (photo-like JPEGs generated and prepared, a network at two sizes)
def test_capped_shards_and_each_training_size_are_measured_side_by_side_every_round(capsys) -> None:
    result = bench_resolution(images=20, caps=[128], sizes=[64, 32], model="resnet18", batch_size=4, steps=1, rounds=2, device=torch.device("cpu"))
    assert result["kilobytes_per_image"]["cap 128"] < result["kilobytes_per_image"]["full size"] / 2
    loader = result["loader_images_per_second"]
    assert set(loader) == {f"{shards} @ {size}" for shards in ("full size", "cap 128") for size in (64, 32)}
    assert all(len(rates) == 2 and min(rates) > 0 for rates in [*loader.values(), *result["network_images_per_second"].values()])
    printed = capsys.readouterr().out.splitlines()
    table, gains = printed[-8:-4], printed[-4:]
    assert "64 px" in table[0] and "32 px" in table[0]
    assert [line.split(" (")[0] for line in table[1:3]] == ["loader per CPU-second, full size", "loader per CPU-second, cap 128"]
    assert table[3].startswith("resnet18 training step, batch 4, cpu") and table[3].count("spread") == 2
    # the gains are ratios within each round, against the full-size shards (or the network) at the first size
    assert result["loader_gain"]["full size @ 64"] == [1.0, 1.0] and result["network_gain"]["64"] == [1.0, 1.0]
    quarter_pixels = result["network_gain"]["32"]
    assert all(ratio > 1 for ratio in quarter_pixels), quarter_pixels  # a quarter of the pixels trains faster
    assert gains[0].startswith("gain over full size at 64 px, median of 2 rounds [range]")
    assert gains[1].split()[-4:-2] == ["1.00x", "[1.00-1.00]"]

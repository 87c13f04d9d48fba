"""`oak bench g1`: the paper's Table 4, ShuffleNet v2's guideline G1 ("equal channel width
minimizes memory access cost") measured on this device.

The network and settings follow Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for
Efficient CNN Architecture Design", ECCV 2018 (arXiv:1807.11164):
- Section 2, G1: "A benchmark network is built by stacking 10 building blocks repeatedly. Each
  block contains two convolution layers. The first contains c1 input channels and c2 output
  channels, and the second otherwise." The convolutions are 1x1 (G1 studies "the kernel shape of
  the 1x1 convolution"), and FLOPs are multiply-adds (footnote 1), so a block costs 2*h*w*c1*c2.
- Table 1's caption: the total FLOPs is fixed across the four ratios by varying the channels, and
  "Input image size is 56 x 56": the feature map is 56x56 (`FEATURE_MAP`).
- Section 2: the GPU is a GTX 1080Ti (cuDNN 7.0 with its benchmarking function on, which
  `cudnn.benchmark` mirrors); the Arm is a Snapdragon 810 with "a single thread" (which the CPU
  run mirrors); each network is evaluated 100 times and the average runtime used (here: the
  median of interleaved rounds, which a noisy neighbour disturbs less).

Not stated in the paper, so chosen here and written to the JSON:
- Batch size. Fig. 1's caption gives batch 8 on GPU and 1 on Arm for the full networks; Table 1
  names none. Batch 1 is used for both: the paper's GPU x1 cell (1480 batches/s of 1.03 G
  multiply-adds per image) would need 24 TFLOP/s at batch 8, twice a 1080Ti's fp32 peak of about
  11 TFLOP/s, while batch 1 needs 3 to 8 TFLOP/s across x1 to x4. `--batch-size` changes it.
- What x2 and x4 scale. The table gives (c1, c2) "for x1" only; here both c1 and c2 are
  multiplied by 2 and 4, so FLOPs grow 4x and 16x. The paper's Arm column agrees: a
  compute-bound single thread slows 3.5x from x1 to x2 and 14x from x1 to x4 (76.2, 21.7, 5.3).
- No BatchNorm or ReLU between the convolutions: the paper names only the two convolutions, and
  element-wise operations are what its guideline G4 measures separately; here they would add the
  same memory traffic to every ratio and blur the comparison G1 makes.

The paper's channel pairs are rounded to integers, so the FLOPs of the four ratios differ by up
to 5.5% within a column (22x44 = 968 against 32x32 = 1024).
"""

import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from oak.bench.g1_check import STATISTIC, Speed, cell_speed, check_text, claim_check, median_speed
from oak.bench.infer import device_name

BLOCKS = 10
FEATURE_MAP = 56
RATIOS = ("1:1", "1:2", "1:6", "1:12")
WIDTHS = (1, 2, 4)
CHANNEL_PAIRS = {
    "gpu": ((128, 128), (90, 180), (52, 312), (36, 432)),
    "arm": ((32, 32), (22, 44), (13, 78), (9, 108)),
}
# The paper's Table 4 (Ma et al.'s Table 1): GPU in batches/s, Arm in images/s, at x1, x2, x4.
PAPER_SPEEDS = {
    "gpu": {"1:1": (1480, 723, 232), "1:2": (1296, 586, 206), "1:6": (876, 489, 189), "1:12": (748, 392, 163)},
    "arm": {"1:1": (76.2, 21.7, 5.3), "1:2": (72.9, 20.5, 5.1), "1:6": (69.1, 17.9, 4.6), "1:12": (57.6, 15.1, 4.4)},
}
PAPER_UNITS = {"gpu": "batches/s", "arm": "images/s"}
WARMUP_PASSES = 3
SECONDS_PER_SAMPLE = 0.5


@dataclass(frozen=True)
class Cell:
    """One configuration of Table 4: a column's channel pairs, a ratio and a width."""

    column: str
    ratio: str
    width: int

    @property
    def channels(self) -> tuple[int, int]:
        c1, c2 = CHANNEL_PAIRS[self.column][RATIOS.index(self.ratio)]
        return c1 * self.width, c2 * self.width

    @property
    def paper_speed(self) -> float:
        return PAPER_SPEEDS[self.column][self.ratio][WIDTHS.index(self.width)]


def cells_for(columns: tuple[str, ...]) -> list[Cell]:
    return [Cell(column, ratio, width) for column in columns for ratio in RATIOS for width in WIDTHS]


def columns_for(device: torch.device, pairs: str | None) -> tuple[str, ...]:
    """The paper's column that matches this device kind, unless `pairs` names gpu, arm or both."""
    if pairs == "both":
        return ("gpu", "arm")
    return (pairs or ("gpu" if device.type == "cuda" else "arm"),)


def block_stack(c1: int, c2: int, blocks: int = BLOCKS) -> nn.Sequential:
    """`blocks` blocks of two 1x1 convolutions, c1->c2 then c2->c1, nothing in between (see the docstring)."""
    layers = []
    for _ in range(blocks):
        layers += [nn.Conv2d(c1, c2, kernel_size=1, bias=False), nn.Conv2d(c2, c1, kernel_size=1, bias=False)]
    return nn.Sequential(*layers)


def analytic_macs(c1: int, c2: int, resolution: int, blocks: int = BLOCKS) -> int:
    """Multiply-adds per image: each 1x1 convolution costs h*w*c_in*c_out, two per block."""
    return blocks * 2 * resolution * resolution * c1 * c2


def counted_macs(net: nn.Module, c1: int, resolution: int) -> int:
    """Multiply-adds per image as PyTorch's FlopCounterMode counts them (it counts 2 FLOPs per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(torch.zeros(1, c1, resolution, resolution, device=next(net.parameters()).device))
    return counter.get_total_flops() // 2


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(forward: Callable[[], object], passes: int, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(passes):
        forward()
    _synchronize(device)
    return time.perf_counter() - start


def _passes_per_sample(forward: Callable[[], object], device: torch.device, target_seconds: float) -> int:
    """Enough forward passes that one timed sample lasts about `target_seconds`, so timer and launch noise stay small."""
    one_pass = statistics.median(_seconds(forward, 1, device) for _ in range(3))
    return max(1, math.ceil(target_seconds / one_pass))


@contextmanager
def paper_settings(device: torch.device) -> Iterator[None]:
    """The paper's settings for the duration: one CPU thread (its Arm column) or cuDNN benchmarking (its GPU column)."""
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark


def measure(
    cells: list[Cell], *, device: torch.device, resolution: int, batch_size: int, rounds: int, passes: int | None
) -> dict[Cell, tuple[int, list[float]]]:
    """Batches/s of every cell in each round, and the passes timed per sample.

    All networks are built first, then each round times every cell once in turn (round-robin), so
    a slow spell of the machine lands on all cells alike instead of on whichever ran then."""
    forwards = {}
    for cell in cells:
        c1, c2 = cell.channels
        net = block_stack(c1, c2).to(device).eval()
        batch = torch.randn(batch_size, c1, resolution, resolution, device=device)
        forwards[cell] = lambda net=net, batch=batch: net(batch)
    rates: dict[Cell, list[float]] = {cell: [] for cell in cells}
    with torch.inference_mode():
        for forward in forwards.values():
            _seconds(forward, WARMUP_PASSES, device)
        per_sample = {cell: passes or _passes_per_sample(forward, device, SECONDS_PER_SAMPLE) for cell, forward in forwards.items()}
        for _ in range(rounds):
            for cell, forward in forwards.items():
                rates[cell].append(per_sample[cell] / _seconds(forward, per_sample[cell], device))
    return {cell: (per_sample[cell], rates[cell]) for cell in cells}


def bench_g1(*, device: torch.device, pairs: str | None, resolution: int, batch_size: int, rounds: int, passes: int | None) -> dict:
    cells = cells_for(columns_for(device, pairs))
    with paper_settings(device):
        name = device_name(device)
        measured = measure(cells, device=device, resolution=resolution, batch_size=batch_size, rounds=rounds, passes=passes)
        counted = {cell: counted_macs(block_stack(*cell.channels).to(device), cell.channels[0], resolution) for cell in cells}
    rows = []
    for cell in cells:
        c1, c2 = cell.channels
        macs = analytic_macs(c1, c2, resolution)
        if counted[cell] != macs:
            raise RuntimeError(f"{cell}: FlopCounterMode counts {counted[cell]} multiply-adds, the formula {macs}")
        passes_per_sample, rates = measured[cell]
        batches_per_second = median_speed(rates).median
        rows.append(
            {
                "column": cell.column,
                "ratio": cell.ratio,
                "width": cell.width,
                "c1": c1,
                "c2": c2,
                "macs_per_image": macs,
                "macs_per_image_flop_counter": counted[cell],
                "passes_per_sample": passes_per_sample,
                "batches_per_second_rounds": [round(rate, 3) for rate in rates],
                "batches_per_second": round(batches_per_second, 3),
                "images_per_second": round(batches_per_second * batch_size, 3),
                "paper": cell.paper_speed,
                "paper_unit": PAPER_UNITS[cell.column],
            }
        )
    settings = {"blocks": BLOCKS, "resolution": resolution, "batch_size": batch_size, "rounds": rounds, "warmup_passes": WARMUP_PASSES}
    settings |= {"seconds_per_sample": None if passes else SECONDS_PER_SAMPLE, "threads": 1 if device.type == "cpu" else None}
    settings |= {"cudnn_benchmark": device.type == "cuda", "statistic": "median over rounds, cells interleaved round-robin"}
    # The rounds are kept so that the verdict (oak.bench.g1_check) can be judged again from this file.
    return {
        "table": "Table 4: ShuffleNet v2 guideline G1 (Ma et al. 2018, Table 1)",
        "device": name,
        "device_type": device.type,
        "unit": "batches/s" if device.type == "cuda" else "images/s",
        "torch": torch.__version__,
        "settings": settings,
        "cells": rows,
        "claim_check": claim_check(rows),
    }


def format_table(result: dict) -> str:
    """The paper's layout, one table per column of channel pairs: measured speed (the paper's) at x1, x2, x4,
    and the multiply-adds per image at each width."""
    unit, settings = result["unit"], result["settings"]
    lines = [
        f"Table 4 (ShuffleNet v2 G1) on {result['device']}, torch {result['torch']}: {settings['blocks']} blocks of 1x1 convs "
        f"c1->c2->c1 at {settings['resolution']}x{settings['resolution']}, batch {settings['batch_size']}, "
        f"median of {settings['rounds']} interleaved rounds"
    ]
    for column in dict.fromkeys(row["column"] for row in result["cells"]):
        rows = [row for row in result["cells"] if row["column"] == column]
        lines += ["", f"{column.upper()} channel pairs: measured {unit} (paper, {PAPER_UNITS[column]}); MACs per image at x1 / x2 / x4"]
        lines.append(f"{'c1:c2':6} {'(c1,c2) x1':12} {'x1':>30} {'x2':>30} {'x4':>30}   {'MACs x1 / x2 / x4':>26}")
        for ratio in RATIOS:
            by_width = {row["width"]: row for row in rows if row["ratio"] == ratio}
            pair = "({c1},{c2})".format(**by_width[1])
            speeds = " ".join("{:>30}".format(f"{_speed(row, result).text()} ({row['paper']:g})") for row in by_width.values())
            macs = " / ".join(f"{row['macs_per_image'] / 1e6:.1f}M" for row in by_width.values())
            lines.append(f"{ratio:6} {pair:12} {speeds}   {macs:>26}")
    check = claim_check(result["cells"])  # from the stored rounds, as the report judges it
    lines += ["", f"Speeds: {STATISTIC}.", f"The paper's claim '{check['claim']}': {check['verdict']} on this device: {check_text(check)}"]
    return "\n".join(lines)


def _speed(cell: dict, result: dict) -> Speed:
    """A cell's median and interval in the result's unit (images/s on a CPU: batches/s times the batch)."""
    speed = cell_speed(cell)
    return speed if result["unit"] == "batches/s" else speed.scaled(result["settings"]["batch_size"])

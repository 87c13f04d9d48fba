"""`oak bench resolution`: the images/s that low-resolution shards and a lower training size buy, side by side.

Photo-like JPEGs (oak.bench.prepare.photo: 500x375, quality 90, about 100 KB, ImageNet's typical size)
are written as shards three ways: as they are, and with the longer side capped (`oak prepare`'s cap
mode, quality 90) at each of `caps`. Then, in rounds, each contender in turn (each round starting at
another one):
- the loader, in this process (one core, timed in CPU-seconds): each shard set read, decoded and
  augmented by the training transform (timm's RandomResizedCrop and flip) at each training size in `sizes`;
- the network alone: a training step (forward, loss, backward, SGD) at each size, on `device`.
The best round counts and the spread (slowest against best) is printed beside it, so a noisy
neighbour shows. Then the gains, as ratios taken within each round (each contender against the full-size
shards, or the network, at the first size, timed in the same round): their median over the rounds and
their range. A load that drifts over minutes moves both sides of a ratio, where it moves a best-of-rounds
rate; the range says how far the rounds agree. A training runs at about the slower of its loader
(times its cores) and its network.
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from oak.bench.prepare import HEIGHT, QUALITY, WIDTH, megabytes, write_trees
from oak.config.schema import TrainConfig
from oak.loading.loader import TrainBatches, shards_of
from oak.loading.transforms import DevicePixels, train_transform
from oak.models import create_model
from oak.preparing.images import Conversion
from oak.preparing.shards import prepare_shards

Rates = dict[str, list[float]]  # contender -> images/s of each round


def bench_resolution(*, images: int, caps: list[int], sizes: list[int], model: str, batch_size: int, steps: int, rounds: int, device: torch.device) -> dict:
    with tempfile.TemporaryDirectory(prefix="oak-bench-resolution-") as temp:
        root = Path(temp)
        tree, _ = write_trees(root, images, workers=max(1, min(4, os.cpu_count() or 1)))
        shard_sets = {"full size": _shards(tree, root / "shards-full", Conversion())}
        shard_sets |= {f"cap {cap}": _shards(tree, root / f"shards-cap{cap}", Conversion("cap", long_side=cap, quality=QUALITY)) for cap in caps}
        kilobytes = {name: 1000 * megabytes(list(folder.glob("train-*.tar"))) / images for name, folder in shard_sets.items()}
        net = create_model(model, num_classes=10).to(device).train()
        contenders = [(f"{name} @ {size}", size, folder) for size in sizes for name, folder in shard_sets.items()]
        contenders += [(str(size), size, None) for size in sizes]  # the network
        rates: Rates = {name: [] for name, _, _ in contenders}
        for round_ in range(rounds):
            # Each contender once a round, each round starting further down the list: a slow spell, or the
            # machine's load drifting over a round, falls on every contender in turn
            start = round_ * len(contenders) // rounds
            for name, size, folder in contenders[start:] + contenders[:start]:
                recipe = _recipe(size)
                rate = loader_rate(folder, recipe, batch_size) if folder else network_rate(net, recipe, batch_size, steps, device)
                rates[name].append(rate)
        loader = {name: rates[name] for name, _, folder in contenders if folder}
        network = {name: rates[name] for name, _, folder in contenders if not folder}
    result = {"images": images, "source": f"{WIDTH}x{HEIGHT} q{QUALITY}", "model": model, "batch_size": batch_size, "device": str(device)}
    result |= {"rounds": rounds, "kilobytes_per_image": kilobytes, "loader_images_per_second": loader, "network_images_per_second": network}
    result["loader_gain"] = {name: _per_round(rates, loader[f"full size @ {sizes[0]}"]) for name, rates in loader.items()}
    result["network_gain"] = {name: _per_round(rates, network[str(sizes[0])]) for name, rates in network.items()}
    print(format_table(result, list(shard_sets), sizes))
    print(format_gains(result, list(shard_sets), sizes))
    return result


def _per_round(rates: list[float], reference: list[float]) -> list[float]:
    """Each round's rate over the reference's rate in the same round."""
    return [rate / base for rate, base in zip(rates, reference, strict=True)]


def _shards(tree: Path, out: Path, conversion: Conversion) -> Path:
    prepare_shards(tree, out, samples_per_shard=64, seed=0, conversion=conversion)
    return out


def _recipe(size: int) -> DictConfig:
    """The schema's default augmentations (RandomResizedCrop, flip) at `size`."""
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), {"image_size": size, "shuffle_buffer": 0})


def loader_rate(shards: Path, recipe: DictConfig, batch_size: int) -> float:
    """Images per CPU-second of this process over one pass of the training shards, decoded and augmented
    here: what a loader core delivers, whatever else the machine runs meanwhile (wall time would count it)."""
    batches = TrainBatches(
        shards_of(shards, "train"), train_transform(recipe), batch_size=batch_size, rank=0, world_size=1, num_workers=0, seed="0/0", shuffle_buffer=0
    )
    start, count = time.process_time(), 0
    for _, labels in batches:
        count += len(labels)
    return count / (time.process_time() - start)


def network_rate(net: torch.nn.Module, recipe: DictConfig, batch_size: int, steps: int, device: torch.device) -> float:
    """Images/s of training steps on a fixed batch at the recipe's size, after one untimed step."""
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    images = DevicePixels(recipe)(torch.randint(0, 256, (batch_size, 3, recipe.image_size, recipe.image_size), dtype=torch.uint8)).to(device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    for step in range(steps + 1):
        if step == 1:
            _synchronize(device)
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        optimizer.step()
    _synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(rates: list[float]) -> str:
    """The best round and how much slower the slowest was."""
    best = max(rates)
    spread = 100 * (best - min(rates)) / best
    return f"{best:.{1 if best < 100 else 0}f} (spread {spread:.0f}%)"


def format_table(result: dict, shard_sets: list[str], sizes: list[int]) -> str:
    """One row per shard set (the loader) and one for the network; one column per training size."""
    loader, network = result["loader_images_per_second"], result["network_images_per_second"]
    rows = {f"loader per CPU-second, {name} ({result['kilobytes_per_image'][name]:.0f} KB/image)": [loader[f"{name} @ {size}"] for size in sizes] for name in shard_sets}
    rows[f"{result['model']} training step, batch {result['batch_size']}, {result['device']}"] = [network[str(size)] for size in sizes]
    width = max(map(len, rows))
    head = f"{'images/s, best of ' + str(result['rounds']) + ' rounds':<{width}}" + "".join(f"{size} px".rjust(22) for size in sizes)
    return "\n".join([head, *(f"{label:<{width}}" + "".join(_best(rates).rjust(22) for rates in cells) for label, cells in rows.items())])


def _median_and_range(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def format_gains(result: dict, shard_sets: list[str], sizes: list[int]) -> str:
    """The same rows as ratios to the first column's full-size loader (or network), per round: median [range]."""
    loader, network = result["loader_gain"], result["network_gain"]
    rows = {f"loader, {name}": [loader[f"{name} @ {size}"] for size in sizes] for name in shard_sets}
    rows[f"{result['model']} training step"] = [network[str(size)] for size in sizes]
    title = f"gain over full size at {sizes[0]} px, median of {result['rounds']} rounds [range]"
    width = max(map(len, [title, *rows]))
    head = f"{title:<{width}}" + "".join(f"{size} px".rjust(22) for size in sizes)
    return "\n".join([head, *(f"{label:<{width}}" + "".join(_median_and_range(r).rjust(22) for r in cells) for label, cells in rows.items())])

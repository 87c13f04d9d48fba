"""`oak bench train` and `oak bench loader`: Oak beside plain PyTorch, measured side by side in one run.

- train: images/s of Oak's Lightning training (Classifier, ShardDataModule, the recipe's
  optimizer) against a minimal PyTorch loop with the same network, optimizer, loader and batches.
- loader: images/s of Oak's shard loader against torchvision's ImageFolder over the same images,
  with the same transforms, batch size and workers; and the loader's memory over an epoch.

The data is a generated demo set (Oak's own synthetic images) in a temp folder. Each contender
runs `rounds` times in turn and the best round counts, so a noisy neighbour hurts both alike.
Steady state only: the first batches (start-up, worker launch) are left out of the timing.
"""

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import lightning as L
import psutil
import torch
from omegaconf import DictConfig
from timm.optim import create_optimizer_v2
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from oak.config.load import load_config
from oak.data.info import read_info
from oak.loading.loader import TrainBatches, shards_of
from oak.loading.transforms import DevicePixels, train_transform
from oak.models import create_model
from oak.preparing.demo import write_demo
from oak.preparing.shards import prepare_shards
from oak.training.classifier import Classifier
from oak.training.setup import datamodule_for

WARMUP_BATCHES = 3


def bench_data(root: Path, *, images: int, image_size: int) -> tuple[Path, Path]:
    """A demo image tree of about `images` training images, and its shards."""
    classes = 10
    tree, shards = root / "tree", root / "shards"
    write_demo(tree, classes=classes, train_per_class=images // classes, val_per_class=2, image_size=image_size, seed=0)
    prepare_shards(tree, shards, samples_per_shard=64, seed=0)
    return tree, shards


class StepTimer(L.Callback):
    """Times training steps after the first `WARMUP_BATCHES`."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.images = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int) -> None:
        if trainer.global_step == WARMUP_BATCHES:
            self.start = time.perf_counter()
        elif trainer.global_step > WARMUP_BATCHES:
            self.images += batch[1].shape[0]

    def images_per_second(self) -> float:
        return self.images / (time.perf_counter() - self.start)


def oak_training(config: DictConfig, model: str, num_classes: int, steps: int) -> float:
    net = create_model(model, num_classes=num_classes)
    datamodule = datamodule_for(config, batch_size=config.train.batch_size, num_workers=config.train.num_workers)
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=WARMUP_BATCHES + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        reload_dataloaders_every_n_epochs=1,
        callbacks=[timer],
    )
    samples = read_info(Path(config.paths.shards)).samples("train")
    trainer.fit(Classifier(net, num_classes=num_classes, recipe=config.train, train_samples=samples), datamodule=datamodule)
    return timer.images_per_second()


def plain_training(config: DictConfig, model: str, num_classes: int, steps: int) -> float:
    """The loop Lightning replaces: forward, loss, backward, step; same network, optimizer and batches."""
    net = create_model(model, num_classes=num_classes).train()
    recipe = config.train
    optimizer = create_optimizer_v2(net, opt=recipe.optimizer, lr=recipe.lr, weight_decay=recipe.weight_decay, momentum=recipe.momentum)
    loss_function = torch.nn.CrossEntropyLoss()
    pixels = DevicePixels(recipe)  # uint8 from the loader, normalised as Oak's data module does
    batches = ((pixels(images), targets) for images, targets in _endless(lambda epoch: _shard_loader(config, epoch)))
    for _ in range(WARMUP_BATCHES):
        _step(net, optimizer, loss_function, next(batches))
    start, images = time.perf_counter(), 0
    for _ in range(steps):
        images += _step(net, optimizer, loss_function, next(batches))
    return images / (time.perf_counter() - start)


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_function: Callable, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
    images, targets = batch
    optimizer.zero_grad(set_to_none=True)
    loss_function(net(images), targets).backward()
    optimizer.step()
    return targets.shape[0]


def _endless(loader_for_epoch: Callable[[int], Iterable]) -> Iterable:
    epoch = 0
    while True:
        yield from loader_for_epoch(epoch)
        epoch += 1


def _shard_loader(config: DictConfig, epoch: int) -> DataLoader:
    transform = train_transform(config.train)
    dataset = TrainBatches(
        shards_of(Path(config.paths.shards), "train"),
        transform,
        batch_size=config.train.batch_size,
        rank=0,
        world_size=1,
        num_workers=config.train.num_workers,
        seed=f"{config.seed}/{epoch}",
        shuffle_buffer=config.train.shuffle_buffer,
    )
    return DataLoader(dataset, batch_size=None, num_workers=config.train.num_workers)


def _folder_loader(config: DictConfig, tree: Path) -> DataLoader:
    transform = train_transform(config.train).transform  # the same transform: ImageFolder opens the files itself
    folder = ImageFolder(tree / "train", transform=transform)
    return DataLoader(folder, batch_size=config.train.batch_size, shuffle=True, drop_last=True, num_workers=config.train.num_workers)


def loader_throughput(loader: DataLoader) -> tuple[float, list[float]]:
    """Images/s over one epoch after the warmup batches, and the loader's memory (MB, main process
    and workers) sampled every 10% of the epoch."""
    process = psutil.Process()
    batches = len(loader)
    memory: list[float] = []
    start, images = time.perf_counter(), 0
    for index, (_, targets) in enumerate(loader):
        if index == WARMUP_BATCHES:
            start, images = time.perf_counter(), 0
        images += targets.shape[0]
        if index % max(1, batches // 10) == 0:
            memory.append(_resident_mb(process))
    return images / (time.perf_counter() - start), memory


def _resident_mb(process: psutil.Process) -> float:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def bench_config(params: Path, shards: Path, *, image_size: int, batch_size: int, num_workers: int) -> DictConfig:
    """params.yaml with the schema's default recipe (AdamW, cosine), at the bench's size."""
    overrides = [
        "recipe=null",
        f"paths.shards={shards}",
        f"train.image_size={image_size}",
        f"train.batch_size={batch_size}",
        f"train.num_workers={num_workers}",
    ]
    return load_config(params, overrides)


def bench_train(params: Path, *, model: str, images: int, image_size: int, batch_size: int, steps: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="oak-bench-train-") as folder:
        _, shards = bench_data(Path(folder), images=images, image_size=image_size)
        setup = bench_config(params, shards, image_size=image_size, batch_size=batch_size, num_workers=1)
        classes = read_info(shards).num_classes
        plain, oak = [], []
        for _ in range(rounds):
            plain.append(plain_training(setup, model, classes, steps))
            oak.append(oak_training(setup, model, classes, steps))
    result = {"model": model, "image_size": image_size, "batch_size": batch_size, "plain_images_per_second": max(plain)}
    result |= {"oak_images_per_second": max(oak), "ratio": max(oak) / max(plain)}
    print(
        f"train {model} at {image_size} px, batch {batch_size}, {steps} steps x {rounds} rounds: "
        f"Oak (Lightning) {max(oak):.1f} img/s | plain PyTorch loop {max(plain):.1f} img/s | ratio {result['ratio']:.2f}x (target >= 0.95)"
    )
    return result


def bench_loader(params: Path, *, images: int, image_size: int, batch_size: int, num_workers: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="oak-bench-loader-") as folder:
        tree, shards = bench_data(Path(folder), images=images, image_size=image_size)
        setup = bench_config(params, shards, image_size=image_size, batch_size=batch_size, num_workers=num_workers)
        oak, folder_rates, memory = [], [], []
        for _ in range(rounds):
            folder_rates.append(loader_throughput(_folder_loader(setup, tree))[0])
            rate, memory = loader_throughput(_shard_loader(setup, epoch=0))
            oak.append(rate)
    oak_rate, folder_rate = max(oak), max(folder_rates)
    result = {"images": images, "image_size": image_size, "batch_size": batch_size, "num_workers": num_workers}
    result |= {"imagefolder_images_per_second": folder_rate, "oak_images_per_second": oak_rate, "ratio": oak_rate / folder_rate}
    result |= {"memory_mb_first": memory[0], "memory_mb_last": memory[-1], "memory_mb_max": max(memory)}
    print(
        f"loader, {images} images at {image_size} px, batch {batch_size}, {num_workers} workers, {rounds} rounds: Oak shards "
        f"{oak_rate:.1f} img/s | torchvision ImageFolder {folder_rate:.1f} img/s | ratio {result['ratio']:.2f}x (target >= 1.0)"
    )
    print(
        f"loader memory over the epoch (main process and workers): {memory[0]:.0f} MB at the start, "
        f"{memory[-1]:.0f} MB at the end, at most {max(memory):.0f} MB"
    )
    return result

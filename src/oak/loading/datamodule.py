"""The Lightning data module over Oak's shards: its loaders, and each batch's last steps on the device.

On the loader path (oak.loading.transforms) a batch arrives as uint8 images; on the device path
(oak.loading.on_device) as undecoded JPEGs that the device decodes and augments. Either way the data
module turns the batch into normalised floats on the device.
"""

import os
import signal
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from oak.loading.loader import Batch, Collate, EvalBatches, Shard, TrainBatches, Transform, shards_of
from oak.loading.on_device import DeviceDecoder, JpegBatch
from oak.loading.transforms import DevicePixels


class ShardDataModule(L.LightningDataModule):
    """Train and val loaders over a shard folder written by `oak prepare`, and the batches' last steps
    on the device: decoding there on the device path (`decoder`), then normalising.

    The training loader is rebuilt each epoch (the Trainer must use
    `reload_dataloaders_every_n_epochs=1`): its shuffle and its transform's image size
    (`train_transforms`, see oak.loading.progressive) depend on the epoch, and a
    resumed epoch skips the batches its checkpoint had already trained on. Its workers therefore
    start again each epoch rather than persist.
    """

    def __init__(
        self,
        shards: Path,
        *,
        train_transforms: Callable[[int], Transform],
        eval_transform: Transform,
        pixels: DevicePixels,
        decoder: DeviceDecoder | None,
        collate: Collate,
        batch_size: int,
        num_workers: int | None,
        seed: int,
        shuffle_buffer: int,
    ) -> None:
        super().__init__()
        self.shards = shards
        self.train_transforms = train_transforms
        self.eval_transform = eval_transform
        self.pixels = pixels
        self.decoder = decoder
        self.collate = collate
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer

    @property
    def train_transform(self) -> Transform:
        """The training transform of the current epoch (its size rises over the epochs with progressive
        resizing, see oak.loading.progressive)."""
        return self.train_transforms(self.trainer.current_epoch if self.trainer else 0)

    def _ranks(self) -> dict[str, int]:
        trainer = self.trainer
        return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {"rank": 0, "world_size": 1}

    def _workers(self, shards: list[Shard]) -> int:
        """`num_workers`, or when None the cores of this process's share of its node (no more
        workers than its share of the shards: evaluation gives each worker whole shards, and
        training workers beyond that would read the same shard files for parts of them)."""
        if self.num_workers is not None:
            return self.num_workers
        processes_on_node = self.trainer.num_devices if self.trainer else 1
        return max(1, min(default_workers(processes_on_node), len(shards) // self._ranks()["world_size"]))

    def train_dataloader(self) -> DataLoader:
        shards = shards_of(self.shards, "train")
        workers = self._workers(shards)
        dataset = TrainBatches(
            shards,
            self.train_transform,  # this epoch's
            batch_size=self.batch_size,
            num_workers=workers,
            seed=f"{self.seed}/{self.trainer.current_epoch}",
            shuffle_buffer=self.shuffle_buffer,
            skip_batches=batches_done_this_epoch(self.trainer),
            collate=self.collate,
            **self._ranks(),
        )
        return self._loader(dataset, workers)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader()

    def eval_dataloader(self) -> DataLoader:
        shards = shards_of(self.shards, "val")
        workers = self._workers(shards)
        dataset = EvalBatches(
            shards, self.eval_transform, batch_size=self.batch_size, num_workers=workers, collate=self.collate, **self._ranks()
        )
        return self._loader(dataset, workers)

    def _loader(self, dataset: IterableDataset, workers: int) -> DataLoader:
        on_gpu = bool(self.trainer and self.trainer.strategy.root_device.type == "cuda")
        return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=on_gpu, worker_init_fn=_leave_sigterm_to_the_trainer)

    def transfer_batch_to_device(self, batch: object, device: torch.device, dataloader_idx: int) -> Batch:
        if isinstance(batch, JpegBatch):
            return self.decoder(batch, device), batch.labels.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        images, labels = batch
        return self.pixels(images), labels


def default_workers(processes_on_node: int) -> int:
    """Loader workers per training process: the cores this node gives the job (SLURM's allocation,
    else this process's CPU affinity) shared by its training processes, less one for the process itself."""
    cores = int(os.environ.get("SLURM_CPUS_ON_NODE") or len(os.sched_getaffinity(0)))
    return max(1, cores // processes_on_node - 1)


def _leave_sigterm_to_the_trainer(worker: int) -> None:
    """SIGTERM sent to the whole process group (scancel, timeout, docker stop) is the training's to act
    on: Lightning stops after the batch and Oak exits 143. PyTorch's workers would die of it at once and
    crash the training with a worker error first; they end with their loader instead (and `oak` kills
    any that an error leaves behind, see oak.cli)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batches_done_this_epoch(trainer: L.Trainer) -> int:
    """How many batches of the current epoch a restored checkpoint had trained on (0 at an epoch start).

    Lightning asks for the loader before it resets its progress counters for the new epoch, so a
    full count is the previous epoch's. "processed", not "completed": a checkpoint written at a
    batch's end counts that batch as processed but not yet completed.
    """
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    return progress.processed if progress.processed < trainer.num_training_batches else 0

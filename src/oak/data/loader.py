"""Reading Oak's shards for Lightning: a LightningDataModule over webdataset pipelines."""

import random
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import webdataset as wds
from torch.utils.data import DataLoader

from oak.data.shards import read_info

Transform = Callable

# Both warn that a length set on an iterable dataset is not enforced. Ours is the exact sample
# count of the shards, split by rank and worker, and serves only the progress bar and schedules.
warnings.filterwarnings("ignore", message=r"\.with_length\(\) only sets the value of __len__")
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def shard_pipeline(urls: list[str], transform: Transform, *, shuffle_seed: str | None, shuffle_buffer: int) -> wds.DataPipeline:
    """(image tensor, class index) pairs from `urls`, split across ranks and loader workers.

    With a `shuffle_seed` the shard order and a sample buffer are shuffled; every rank derives the
    same shard order from the seed, so the per-rank slices are disjoint.
    """
    urls = list(urls)
    if shuffle_seed is not None:
        random.Random(f"{shuffle_seed}/shards").shuffle(urls)
    stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker, wds.tarfile_to_samples()]
    if shuffle_seed is not None:
        stages.append(wds.shuffle(shuffle_buffer, rng=random.Random(f"{shuffle_seed}/samples")))
    stages += [wds.decode("pilrgb"), wds.to_tuple("jpg", "cls"), wds.map_tuple(transform, int)]
    return wds.DataPipeline(*stages)


class ShardDataModule(L.LightningDataModule):
    """Train and val loaders over a shard folder written by `oak prepare`.

    The training pipeline is rebuilt each epoch (the Trainer must use
    `reload_dataloaders_every_n_epochs=1`) so that its shuffle depends on the seed and the epoch:
    reproducible, and different every epoch.
    """

    def __init__(
        self,
        shards: Path,
        *,
        train_transform: Transform,
        eval_transform: Transform,
        batch_size: int,
        num_workers: int,
        seed: int,
        shuffle_buffer: int,
    ) -> None:
        super().__init__()
        self.shards = shards
        self.info = read_info(shards)
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer

    def _urls(self, split: str) -> list[str]:
        return [str(self.shards / name) for name in self.info["splits"][split]["filenames"]]

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer else 0
        pipeline = shard_pipeline(
            self._urls("train"), self.train_transform, shuffle_seed=f"{self.seed}/{epoch}", shuffle_buffer=self.shuffle_buffer
        )
        # drop_last: a last batch of one sample breaks BatchNorm in training mode
        return self._loader(pipeline, self.info["splits"]["train"]["num_samples"], self.batch_size, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader()

    def eval_dataloader(self) -> DataLoader:
        pipeline = shard_pipeline(self._urls("val"), self.eval_transform, shuffle_seed=None, shuffle_buffer=0)
        return self._loader(pipeline, self.info["splits"]["val"]["num_samples"], self.batch_size, drop_last=False)

    def _loader(self, pipeline: wds.DataPipeline, num_samples: int, batch_size: int, *, drop_last: bool) -> DataLoader:
        return DataLoader(
            pipeline.with_length(num_samples),
            batch_size=batch_size,
            num_workers=self.num_workers,
            drop_last=drop_last,
            persistent_workers=False,
        )

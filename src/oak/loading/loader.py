"""Reading Oak's shards for Lightning, exactly, on one process or many.

A training epoch is a permutation of the training split dealt out to the ranks and their loader
workers: every sample at most once, every rank the same number of full batches (DDP hangs
otherwise), the few samples that make no full batch on every rank left out of that epoch (see
TrainBatches). Evaluation gives each (rank, loader worker) pair whole shards of its own, so each
sample is counted exactly once across ranks. The datasets yield whole batches, so their lengths
are the exact batch counts Lightning plans with.

A transform takes each sample's JPEG bytes. On the loader path it decodes them with Pillow and
returns a uint8 tensor (oak.loading.transforms); on the device path it only plans the augmentation and
the batch goes to the device undecoded (oak.loading.on_device). Either way the data module
(oak.loading.datamodule) turns the batch into normalised floats on the device.
"""

import hashlib
import itertools
import os
import random
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from oak.data.info import read_info
from oak.data.tar import tar_samples
from oak.errors import OakError
from oak.seeding import seed_cpu_generators

# Lightning warns that an iterable dataset's length may be wrong with several workers, and that a
# mid-epoch checkpoint cannot resume an iterable loader exactly. Ours are exact on both counts:
# the lengths are the batch counts each rank's workers deliver, and a resumed epoch skips the
# batches already trained (TrainBatches.skip_batches).
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")

Transform = Callable[[bytes], object]  # a JPEG's bytes -> what the batch holds of it
Collate = Callable[[list], object]
Batch = tuple[torch.Tensor, torch.Tensor]


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def _transformed(samples: Iterator[dict], transform: Transform, seeds: tuple[str, int] | None = None) -> Iterator[tuple[object, int]]:
    """Each sample transformed; with `seeds` (a stream's key and the position of its first sample), each
    sample's random augmentation seeded by its position in the stream (see oak.seeding)."""
    for position, sample in enumerate(samples, seeds[1] if seeds else 0):
        if seeds:
            seed_cpu_generators(seeds[0], position)
        yield transform(sample["jpg"]), int(sample["cls"])


def _batches(samples: Iterator[tuple[object, int]], batch_size: int, collate: Collate) -> Iterator[object]:
    while batch := list(itertools.islice(samples, batch_size)):
        yield collate(batch)


class Shard(NamedTuple):
    """A shard file and what `_info.json` says it holds."""

    path: str
    samples: int
    sha256: str


def shards_of(folder: Path, split: str) -> list[Shard]:
    listed = read_info(folder).splits[split]
    return [Shard(str(folder / name), *counted) for name, *counted in zip(listed.filenames, listed.shard_lengths, listed.sha256)]


def _shard_samples(shards: Iterable[Shard]) -> Iterator[dict[str, bytes]]:
    """The samples of each shard in turn."""
    for shard in shards:
        yield from _read_shard(shard)


def _samples_between(shards: list[Shard], start: int, stop: int) -> Iterator[dict[str, bytes]]:
    """Samples `start` to `stop` (excluded) of the stream that reads `shards` in turn, reading only
    the shards that hold some of them."""
    offset = 0
    for shard in shards:
        if offset < stop and start < offset + shard.samples:
            yield from _read_shard(shard)[max(start - offset, 0) : stop - offset]
        offset += shard.samples


def _read_shard(shard: Shard) -> list[dict[str, bytes]]:
    """A shard's samples, {"jpg": ..., "cls": ...}, read by oak.data.tar once the shard's bytes and
    sample count match `_info.json`.

    The whole shard is read anyway; hashing it took 0.7% of the time to decode and crop 400
    500x375 JPEGs of 30 KB here (best of 3; ImageNet's average JPEG is about 3x larger), so a
    flipped byte, a truncation or a replaced file is caught before any of its samples is used.
    """
    samples = [fields for _, fields in tar_samples(shard.path, _checked_bytes(shard))]
    if len(samples) != shard.samples:
        raise OakError(f"{shard.path}: {len(samples)} samples where _info.json lists {shard.samples}; {VERIFY}")
    return samples


VERIFY = "check the shards with `oak verify` and re-create them with `oak prepare`"


def _checked_bytes(shard: Shard) -> bytes:
    # A FIFO or device in a shard's place would block the read for ever: only a regular file is read
    try:
        is_file = stat.S_ISREG(os.stat(shard.path).st_mode)
    except FileNotFoundError:
        raise OakError(f"{shard.path}: shard missing; {VERIFY}") from None
    except OSError as error:
        raise OakError(f"{shard.path}: cannot be read ({error.strerror}); {VERIFY}") from None
    if not is_file:
        raise OakError(f"{shard.path}: not a regular file; {VERIFY}")
    try:
        data = Path(shard.path).read_bytes()
    except FileNotFoundError:
        raise OakError(f"{shard.path}: shard missing; {VERIFY}") from None
    except OSError as error:
        raise OakError(f"{shard.path}: cannot be read ({error.strerror}); {VERIFY}") from None
    if hashlib.sha256(data).hexdigest() != shard.sha256:
        raise OakError(f"{shard.path}: its bytes differ from the sha256 in _info.json (truncated, corrupt or replaced); {VERIFY}")
    return data


class TrainBatches(IterableDataset):
    """One rank's training batches for one epoch: `len(self)` full batches, the same on every rank.

    The epoch reads the shards in an order drawn from `seed` (the same on every rank, different
    each epoch) as one stream of samples, and cuts it into consecutive pieces, one per (rank,
    loader worker): rank r's batches are samples r * len(self) * batch_size onwards, and its
    workers' shares of them follow each other. The remainder, fewer than world_size * batch_size
    samples at the end of the epoch's shard order (other samples each epoch), makes no full batch
    on every rank and is left out of the epoch. Each piece passes once through a shuffle buffer
    seeded by `seed` and its slot, which the finite piece drains at its end: every sample comes
    out exactly once. A piece starting or ending inside a shard reads that shard whole and uses
    its part. `skip_batches` resumes an epoch part way: the batches already trained on are
    dropped before decoding.
    """

    def __init__(
        self,
        shards: list[Shard],
        transform: Transform,
        *,
        batch_size: int,
        rank: int,
        world_size: int,
        num_workers: int,
        seed: str,
        shuffle_buffer: int,
        skip_batches: int = 0,
        collate: Collate = default_collate,
    ) -> None:
        num_samples = sum(shard.samples for shard in shards)
        self.batches = num_samples // (world_size * batch_size)
        if self.batches == 0:
            raise OakError(f"{num_samples} training samples make no full batch of {batch_size} on each of {world_size} process(es)")
        self.workers = max(num_workers, 1)
        self.shards = list(shards)
        random.Random(f"{seed}/shards").shuffle(self.shards)
        self.transform = transform
        self.batch_size = batch_size
        self.rank = rank
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.skip_batches = skip_batches
        self.collate = collate

    def __len__(self) -> int:
        return self.batches  # whole epoch: Lightning counts a resumed epoch's batches on from skip_batches

    def _share(self, role: int) -> int:
        """How many of this rank's batches the worker in `role` delivers: batches role, role + W, ..."""
        return len(range(role, self.batches, self.workers))

    def __iter__(self) -> Iterator[Batch]:
        worker, _ = _worker()
        # The loader takes batches from its workers in turn, starting with worker 0: batch b of the
        # epoch comes from the piece (samples and shuffle) of role b % W. A resumed epoch starts at
        # batch `skip_batches`, so worker 0 takes the role that batch belongs to.
        role = (worker + self.skip_batches) % self.workers
        slot = self.rank * self.workers + role
        start = (self.rank * self.batches + sum(map(self._share, range(role)))) * self.batch_size
        piece = _samples_between(self.shards, start, start + self._share(role) * self.batch_size)
        samples = wds.shuffle(self.shuffle_buffer, rng=random.Random(f"{self.seed}/{slot}"))(piece)
        done = len(range(role, self.skip_batches, self.workers))
        remaining = itertools.islice(samples, done * self.batch_size, None)
        stream = _transformed(remaining, self.transform, seeds=(f"{self.seed}/{slot}", done * self.batch_size))
        return _batches(stream, self.batch_size, self.collate)


class EvalBatches(IterableDataset):
    """One rank's share of the validation shards, each sample once, in batches of at most `batch_size`."""

    def __init__(
        self,
        shards: list[Shard],
        transform: Transform,
        *,
        batch_size: int,
        rank: int,
        world_size: int,
        num_workers: int,
        collate: Collate = default_collate,
    ) -> None:
        if len(shards) < world_size:
            raise OakError(
                f"{len(shards)} validation shard(s) for {world_size} process(es): each needs one; "
                "write smaller shards (prepare.samples_per_shard) or evaluate on fewer devices"
            )
        self.workers = max(num_workers, 1)
        self.transform = transform
        self.batch_size = batch_size
        own = shards[rank::world_size]
        self.worker_shards = [own[worker :: self.workers] for worker in range(self.workers)]
        self.collate = collate

    def __len__(self) -> int:
        return sum(-(-sum(shard.samples for shard in shards) // self.batch_size) for shards in self.worker_shards)

    def __iter__(self) -> Iterator[Batch]:
        worker, _ = _worker()
        return _batches(_transformed(_shard_samples(self.worker_shards[worker]), self.transform), self.batch_size, self.collate)

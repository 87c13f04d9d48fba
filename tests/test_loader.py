"""Reading shards on many ranks and workers: an epoch is each training sample once in equal full batches per
rank (but the remainder), a resumed epoch its untrained batches, evaluation every val sample once."""

import os
import shutil
import tarfile
import zlib
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from oak.data.info import read_info
from oak.errors import OakError
from oak.loading.loader import EvalBatches, TrainBatches, shards_of
from oak.preparing.shards import prepare_shards

BATCH = 3


def fingerprint(jpeg: bytes) -> torch.Tensor:
    """Stands in for a transform: identifies each sample by its bytes."""
    return torch.tensor(zlib.crc32(jpeg))


@pytest.fixture(scope="module")
def many_shards(demo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("many") / "shards"
    prepare_shards(demo_tree, out, samples_per_shard=4, seed=0)  # 10 train shards, 5 val shards
    return out


def train_batches(shards: Path, *, rank: int, world_size: int, num_workers: int, seed: str = "0/0", skip: int = 0) -> TrainBatches:
    return TrainBatches(
        shards_of(shards, "train"),
        fingerprint,
        batch_size=BATCH,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
        seed=seed,
        shuffle_buffer=8,
        skip_batches=skip,
    )


def read(dataset, num_workers: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(DataLoader(dataset, batch_size=None, num_workers=num_workers))


def epoch_samples(shards: Path, *, world_size: int, num_workers: int, seed: str = "0/0") -> list[list[int]]:
    """Each rank's samples of one epoch, in order, checking that every batch is full and that each
    rank's batch count is the dataset's length."""
    per_rank = []
    for rank in range(world_size):
        dataset = train_batches(shards, rank=rank, world_size=world_size, num_workers=num_workers, seed=seed)
        batches = read(dataset, num_workers)
        assert len(batches) == len(dataset)
        assert all(len(labels) == BATCH for _, labels in batches)
        per_rank.append([int(x) for images, _ in batches for x in images])
    return per_rank


@pytest.mark.parametrize(
    "fixture, world_size, num_workers",
    [("many_shards", 1, 0), ("many_shards", 1, 2), ("many_shards", 2, 1), ("many_shards", 3, 2), ("many_shards", 4, 3), ("shards", 2, 2)],
)
def test_an_epoch_is_each_training_sample_once_but_the_remainder_in_equal_full_batches_per_rank(
    request: pytest.FixtureRequest, fixture: str, world_size: int, num_workers: int
) -> None:
    shards = request.getfixturevalue(fixture)  # 10 shards of 4; or 16, 16 and 8 samples
    per_rank = epoch_samples(shards, world_size=world_size, num_workers=num_workers)
    batches = 40 // (world_size * BATCH)
    assert [len(samples) for samples in per_rank] == [batches * BATCH] * world_size
    seen = [sample for samples in per_rank for sample in samples]
    assert len(set(seen)) == len(seen), "a sample came twice in one epoch"
    assert 40 - len(seen) < world_size * BATCH, "more samples left out than make no full batch on every rank"


def test_the_samples_an_epoch_leaves_out_are_trained_on_in_other_epochs(many_shards: Path) -> None:
    trained = set()
    for epoch in range(4):
        [samples] = epoch_samples(many_shards, world_size=1, num_workers=0, seed=f"0/{epoch}")
        assert len(samples) == 39  # one left out each epoch
        trained |= set(samples)
    assert len(trained) == 40


def test_the_shuffle_is_reproducible_and_changes_each_epoch(many_shards: Path) -> None:
    def order(seed: str) -> list[int]:
        return [int(x) for images, _ in read(train_batches(many_shards, rank=0, world_size=1, num_workers=2, seed=seed), 2) for x in images]

    assert order("0/0") == order("0/0")
    assert order("0/0") != order("0/1")


@pytest.mark.parametrize("world_size, num_workers, skip", [(1, 0, 5), (1, 2, 5), (1, 2, 6), (1, 3, 12), (2, 2, 3)])
def test_a_resumed_epoch_continues_with_the_batches_not_yet_trained(
    many_shards: Path, world_size: int, num_workers: int, skip: int
) -> None:
    for rank in range(world_size):
        full = read(train_batches(many_shards, rank=rank, world_size=world_size, num_workers=num_workers), num_workers)
        rest = read(train_batches(many_shards, rank=rank, world_size=world_size, num_workers=num_workers, skip=skip), num_workers)
        assert [images.tolist() for images, _ in rest] == [images.tolist() for images, _ in full[skip:]]


def test_too_few_validation_shards_for_the_ranks_is_an_error_that_says_what_to_change(many_shards: Path) -> None:
    with pytest.raises(OakError, match=r"5 validation shard\(s\) for 6 process\(es\)"):
        EvalBatches(shards_of(many_shards, "val"), fingerprint, batch_size=BATCH, rank=0, world_size=6, num_workers=0)


@pytest.mark.parametrize("world_size, num_workers", [(1, 0), (2, 2), (3, 1), (5, 2)])
def test_evaluation_reads_every_sample_exactly_once_across_ranks(many_shards: Path, world_size: int, num_workers: int) -> None:
    info = read_info(many_shards).splits["val"]
    seen: list[int] = []
    for rank in range(world_size):
        dataset = EvalBatches(
            shards_of(many_shards, "val"),
            fingerprint,
            batch_size=BATCH,
            rank=rank,
            world_size=world_size,
            num_workers=num_workers,
        )
        batches = read(dataset, num_workers)
        assert len(batches) == len(dataset)
        seen += [int(x) for images, _ in batches for x in images]
    everything = [
        int(x)
        for images, _ in read(
            EvalBatches(shards_of(many_shards, "val"), fingerprint, batch_size=100, rank=0, world_size=1, num_workers=0),
            0,
        )
        for x in images
    ]
    assert len(everything) == info.num_samples == len(set(everything))
    assert sorted(seen) == sorted(everything)


def broken_copy(shards: Path, tmp_path: Path, split: str, damage) -> Path:
    """A copy of `shards` whose first `split` shard `damage` changes; that shard's path."""
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    first = copy / read_info(copy).splits[split].filenames[0]
    damage(first)
    return first


def truncate_at_a_sample_boundary(shard: Path) -> None:
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    keep = members[len(members) // 2]  # a .cls member: every sample before it is whole
    shard.write_bytes(shard.read_bytes()[: keep.offset] + bytes(1024))


def flip_a_byte_inside_a_jpeg(shard: Path) -> None:
    with tarfile.open(shard) as tar:
        jpeg = next(member for member in tar.getmembers() if member.name.endswith(".jpg"))
    data = bytearray(shard.read_bytes())
    data[jpeg.offset_data + jpeg.size // 2] ^= 0xFF
    shard.write_bytes(bytes(data))


def replace_by_a_fifo(shard: Path) -> None:
    shard.unlink()
    os.mkfifo(shard)  # reading it would block for ever: no writer ever comes


@pytest.mark.parametrize(
    ("split", "damage", "message"),
    [
        ("train", truncate_at_a_sample_boundary, "its bytes differ from the sha256 in _info.json"),
        ("train", replace_by_a_fifo, "not a regular file"),
        ("val", flip_a_byte_inside_a_jpeg, "its bytes differ from the sha256 in _info.json"),
        ("val", Path.unlink, "shard missing"),
    ],
)
def test_a_damaged_or_missing_shard_stops_reading_naming_it_and_oak_verify(
    many_shards: Path, tmp_path: Path, split, damage, message
) -> None:
    shard = broken_copy(many_shards, tmp_path, split, damage)
    loader = train_batches(shard.parent, rank=0, world_size=1, num_workers=1) if split == "train" else None
    loader = loader or EvalBatches(shards_of(shard.parent, "val"), fingerprint, batch_size=BATCH, rank=0, world_size=1, num_workers=1)
    with pytest.raises(OakError, match=rf"{shard}: {message}.*`oak verify`"):
        read(loader, 1)


def test_a_shard_with_fewer_samples_than_listed_stops_reading(many_shards: Path, tmp_path: Path) -> None:
    import hashlib

    from oak.loading.loader import Shard, _shard_samples

    shard = broken_copy(many_shards, tmp_path, "val", truncate_at_a_sample_boundary)
    listed = read_info(shard.parent).splits["val"].shard_lengths[0]
    rehashed = Shard(str(shard), listed, hashlib.sha256(shard.read_bytes()).hexdigest())  # as if _info.json had been rewritten
    with pytest.raises(OakError, match=rf"{shard}: \d+ samples where _info.json lists {listed}"):
        list(_shard_samples([rehashed]))

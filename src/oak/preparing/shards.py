"""A source (image tree or official archives) to WebDataset shards, in the layout timm's `wds/` reader reads.

Output: `OUT/train-NNNNNN.tar`, `OUT/val-NNNNNN.tar`, `OUT/_info.json` (per split: num_samples,
filenames, shard_lengths, sha256; the class list; counts; archive MD5s) and `OUT/_rejected.tsv`.
Each sample holds `jpg` (bytes that decode to RGB) and `cls` (the class index: the WordNet ID's
position in the sorted class list).

The work runs in three steps, in a staging folder `OUT.tmp` beside OUT:
1. list the source (names only; an archive is streamed once for its layout and MD5, kept for a rerun);
2. check every image, in parallel, from its first bytes and its last two: the frame header and
   the end marker say what will become of it (kept, re-encoded to RGB, resized) and catch most
   bad files; Pillow opens only the files this cannot settle;
3. write the shards, in parallel, one whole shard per task: each image is read once, converted
   if it must be, and written straight into the tar, which is hashed on the way. A shard gets
   its final name only when complete.
A bad input stops the run after step 1 or 2, before any shard is written, unless
`on_bad="skip"`. An image that passes step 2 yet fails to decode in step 3 (only images that are
converted are decoded) stops the run there, naming it; only complete shards are kept.
Finished shards are reused by a rerun with the same inputs and settings (a fingerprint in the
staging folder says so), so a killed run resumes. At the end the finished folder is renamed to
OUT, which is therefore either absent or complete. An OUT (or OUT.tmp) that Oak did not write is
refused before any work and never touched (see oak.preparing.staging).

This module runs the steps and writes the shards (step 3). The others have modules of their own:
listing in oak.preparing.sources (the result: oak.preparing.listing), checking in oak.preparing.check, the
staging folder in oak.preparing.staging, the tar format in oak.data.tar, the info files in
oak.preparing.manifest, worker processes and progress bars in oak.preparing.parallel.
"""

import errno
import json
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from oak.data.info import SPLITS, ShardInfo
from oak.data.tar import BLOCK, TarWriter
from oak.errors import OakError
from oak.files import file_sha256
from oak.layout import REJECTED_FILE, SHARD_INFO_FILE
from oak.preparing.check import Stored, accepted_samples, bad_images, check_images, read_item
from oak.preparing.images import KEPT, BadImage, Conversion, convert_image, reuse_image_memory
from oak.preparing.listing import Problem, select_classes
from oak.preparing.manifest import check_md5, counts, read_dataset, rejected_table, shard_info, split_info
from oak.preparing.parallel import advancing, image_progress, worker_map
from oak.preparing.sources import find_source
from oak.preparing.staging import (
    check_output,
    open_staging,
    remove_staging,
    replace_output,
    staged_listing,
    staging_folder,
    work_fingerprint,
)

ON_BAD = ("fail", "skip")


def prepare_shards(
    source: Path,
    out: Path,
    *,
    samples_per_shard: int,
    seed: int,
    classes: int | list[str] | None = None,
    workers: int = 1,
    conversion: Conversion = Conversion(),
    on_bad: str = "fail",
    strict_md5: bool = False,
) -> ShardInfo:
    """Convert `source` into shards in `out` (replaced, when a shard folder Oak wrote) and return the info written.

    Training samples are shuffled across classes with `seed`, so no shard holds a single class;
    validation keeps the listing order. The output does not depend on `workers`.
    """
    _check_settings(samples_per_shard, workers, on_bad, classes)
    check_output(out, source)
    staging = staging_folder(out)
    found = find_source(source)
    dataset = read_dataset(source)
    fingerprint = work_fingerprint(found, classes, samples_per_shard, seed, conversion)
    if found.has_archive:  # indexing an archive is a full read: keep its result for a rerun
        open_staging(staging, fingerprint)
    listing = select_classes(staged_listing(found, staging), classes)
    archives = check_md5(listing.archive_md5, strict_md5)
    root = str(found.root)
    reuse_image_memory()
    with worker_map(workers) as parallel_map:
        outcomes = {split: check_images(root, split, listing.items[split], conversion, parallel_map) for split in SPLITS}
        problems = listing.problems + bad_images(listing, outcomes)
        _stop_on_problems(source, problems, on_bad, "no shard written")  # every problem of the source at once
        stored = {split: accepted_samples(listing, split, outcomes[split]) for split in SPLITS}
        random.Random(seed).shuffle(stored["train"])
        shards = staging / "shards"
        with _running_out_of_space_said(shards, stored):
            open_staging(staging, fingerprint)
            shards.mkdir(exist_ok=True)
            info = shard_info(source, dataset, found, listing, archives, conversion, samples_per_shard, seed)
            for split in SPLITS:
                info["splits"][split] = _write_split(split, stored[split], shards, root, conversion, samples_per_shard, parallel_map)
                info["counts"][split] = counts(split, listing, outcomes[split], problems)
            (shards / REJECTED_FILE).write_text(rejected_table(problems))
            (shards / SHARD_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    replace_output(shards, out)
    remove_staging(staging)
    return ShardInfo.from_dict(info)


@contextmanager
def _running_out_of_space_said(shards: Path, stored: dict[str, list[Stored]]) -> Iterator[None]:
    """A full disk while writing `shards` becomes one line: where, how much it needs, and that a rerun resumes."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        # the source's image bytes plus a tar header for each of a sample's two members (resizing only shrinks them)
        needed = sum(sample.size + 3 * BLOCK for samples in stored.values() for sample in samples)
        written = sum(path.stat().st_size for path in shards.glob("*.tar")) if shards.is_dir() else 0
        free = shutil.disk_usage(shards.parent if shards.parent.exists() else shards.parent.parent).free
        raise OakError(
            f"{shards}: out of disk space: the shards need about {needed / 2**20:.1f} MiB, {written / 2**20:.1f} MiB are written "
            f"and {free / 2**20:.1f} MiB are free; free space (or point paths.shards at a larger disk) and run again: "
            "the whole shards written so far are kept and reused"
        ) from None


def _check_settings(samples_per_shard: int, workers: int, on_bad: str, classes: object) -> None:
    if samples_per_shard < 1:
        raise OakError(f"prepare.samples_per_shard={samples_per_shard}: must be at least 1")
    if workers < 1:
        raise OakError(f"prepare.workers={workers}: must be at least 1")
    if on_bad not in ON_BAD:
        raise OakError(f"prepare.on_bad={on_bad!r}: expected one of {', '.join(ON_BAD)}")
    if not (classes is None or (isinstance(classes, int) and not isinstance(classes, bool)) or isinstance(classes, list)):
        raise OakError(f"prepare.classes={classes!r}: expected null (all), a count, or a list of WordNet IDs")


def _stop_on_problems(source: Path, problems: list[Problem], on_bad: str, consequence: str) -> None:
    if not problems or on_bad == "skip":
        return
    listed = "; ".join(f"{p.origin}: {p.reason}" for p in problems[:20]) + (
        f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
    )
    raise OakError(f"{source}: {len(problems)} problem(s), {consequence}: {listed}. Fix them, or set prepare.on_bad=skip to leave them out")


def _write_split(
    split: str, samples: list[Stored], shards: Path, root: str, conversion: Conversion, samples_per_shard: int, parallel_map: Callable
) -> dict:
    """Step 3 for one split: its samples, in order, in shards of `samples_per_shard` written in
    parallel; returns the info file's entry for them."""
    chunks = [samples[i : i + samples_per_shard] for i in range(0, len(samples), samples_per_shard)]
    filenames = [f"{split}-{index:06d}.tar" for index in range(len(chunks))]
    lengths = [len(chunk) for chunk in chunks]
    tasks = [(root, shards / name, chunk, conversion) for name, chunk in zip(filenames, chunks)]
    digests = list(advancing(parallel_map(ensure_shard, tasks), image_progress(f"write {split}", len(samples)), lengths))
    return split_info(split, filenames, lengths, digests)


def ensure_shard(task: tuple[str, Path, list[Stored], Conversion]) -> str:
    """Write one shard unless a finished one is there (from an interrupted run); return its sha256.

    Written under a temp name (removed on failure) and renamed when complete, so a shard's final
    name always means a whole shard.
    """
    root, path, samples, conversion = task
    if path.is_file():  # a FIFO in its place would block the read: replaced below
        return file_sha256(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb", buffering=0) as file:
            tar = TarWriter(file.fileno())
            for sample in samples:
                tar.add(sample.key, [("cls", str(sample.label).encode()), ("jpg", _sample_image(root, sample, conversion))])
            digest = tar.finish()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(path)
    return digest


def _sample_image(root: str, sample: Stored, conversion: Conversion) -> bytes:
    """The image bytes a sample stores: the source's own, or converted as step 2 planned."""
    data = read_item(root, sample)
    if sample.kind == KEPT:
        return data
    try:
        converted, kind = convert_image(data, conversion)
    except BadImage as error:
        raise OakError(
            f"{sample.origin}: {error}, found while writing (its header looked sound); "
            "no incomplete shard is kept: remove or replace the file and run again"
        ) from None
    if converted is None or kind != sample.kind:
        raise OakError(f"{sample.origin}: to be {sample.kind} but came out {kind}; the source changed during the run, run again")
    return converted

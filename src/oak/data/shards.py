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
OUT, which is therefore either absent or complete.
"""

import errno
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from oak.data.archives import OFFICIAL_MD5
from oak.data.images import HEAD_BYTES, KEPT, BadImage, Conversion, convert_image, planned_kind, reuse_image_memory
from oak.data.sources import DATASET_FILE, SPLITS, Item, Listing, Problem, Source, find_source, list_source, select_classes, source_stamp
from oak.errors import OakError
from oak.files import write_atomic

INFO_FILE = "_info.json"
REJECTED_FILE = "_rejected.tsv"
ON_BAD = ("fail", "skip")
CHECK_BATCH = 256  # images per task of step 2: enough that handing out a task costs little
WORK_VERSION = 2  # part of the fingerprint: bump when stored bytes or work files change meaning
BAD = "bad"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What step 2 found an item will become: KEPT, REENCODED_RGB, RESIZED, or BAD (with a reason)."""

    kind: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Stored:
    """A sample as step 3 writes it: where its bytes lie in the source, and what becomes of them."""

    key: str
    label: int
    origin: str
    file: str
    offset: int
    size: int
    kind: str


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
) -> dict:
    """Convert `source` into shards in `out` (replaced) and return the info written.

    Training samples are shuffled across classes with `seed`, so no shard holds a single class;
    validation keeps the listing order. The output does not depend on `workers`.
    """
    _check_settings(samples_per_shard, workers, on_bad, classes)
    found = find_source(source)
    staging = out.with_name(out.name + ".tmp")
    fingerprint = _fingerprint(found, classes, samples_per_shard, seed, conversion)
    if found.has_archive:  # indexing an archive is a full read: keep its result for a rerun
        _open_staging(staging, fingerprint)
    listing = select_classes(_listing(found, staging), classes)
    archives = _check_md5(listing.archive_md5, strict_md5)
    root = str(found.root)
    reuse_image_memory()
    with _parallel_map(workers) as parallel_map:
        outcomes = {split: _check_images(root, split, listing.items[split], conversion, parallel_map) for split in SPLITS}
        problems = listing.problems + [
            Problem(split, item.origin, outcome.reason, item.wnid, True)
            for split in SPLITS
            for item, outcome in zip(listing.items[split], outcomes[split])
            if outcome.kind == BAD
        ]
        _stop_on_problems(source, problems, on_bad, "no shard written")  # every problem of the source at once
        stored = {split: _stored(listing, split, outcomes[split]) for split in SPLITS}
        random.Random(seed).shuffle(stored["train"])
        shards = staging / "shards"
        with _running_out_of_space_said(shards, stored):
            _open_staging(staging, fingerprint)
            shards.mkdir(exist_ok=True)
            info = _info(source, found, listing, archives, conversion, samples_per_shard, seed)
            for split in SPLITS:
                chunks = [stored[split][i : i + samples_per_shard] for i in range(0, len(stored[split]), samples_per_shard)]
                filenames = [f"{split}-{index:06d}.tar" for index in range(len(chunks))]
                lengths = [len(chunk) for chunk in chunks]
                tasks = [(root, shards / name, chunk, conversion) for name, chunk in zip(filenames, chunks)]
                digests = list(_advancing(parallel_map(ensure_shard, tasks), _progress(f"write {split}", len(stored[split])), lengths))
                info["splits"][split] = {
                    "name": split,
                    "num_samples": len(stored[split]),
                    "filenames": filenames,
                    "shard_lengths": lengths,
                    "sha256": digests,
                }
                info["counts"][split] = _counts(split, listing, outcomes[split], problems)
            (shards / REJECTED_FILE).write_text(_rejected_table(problems))
            (shards / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    shards.rename(out)
    shutil.rmtree(staging)
    return info


@contextmanager
def _running_out_of_space_said(shards: Path, stored: dict[str, list[Stored]]) -> Iterator[None]:
    """A full disk while writing `shards` becomes one line: where, how much it needs, and that a rerun resumes."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        # the source's image bytes plus a tar header for each of a sample's two members (resizing only shrinks them)
        needed = sum(sample.size + 3 * tarfile.BLOCKSIZE for samples in stored.values() for sample in samples)
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


def _fingerprint(source: Source, classes: object, samples_per_shard: int, seed: int, conversion: Conversion) -> str:
    """What the output depends on: the inputs (paths, sizes, times) and the settings. Not the
    worker count, nor on_bad: with no bad input both give the same shards."""
    settings = {"version": WORK_VERSION, "classes": classes, "samples_per_shard": samples_per_shard, "seed": seed, **asdict(conversion)}
    return hashlib.sha256(f"{json.dumps(settings, sort_keys=True)}\n{source_stamp(source)}".encode()).hexdigest()


def _open_staging(staging: Path, fingerprint: str) -> None:
    """Keep the staging folder's work when it was made from the same inputs and settings, else start afresh."""
    stamp = staging / "fingerprint"
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "work").mkdir(parents=True)
    stamp.write_text(fingerprint)


def _listing(source: Source, staging: Path) -> Listing:
    if not source.has_archive:
        return list_source(source, _byte_progress)
    saved = staging / "work" / "listing.json"
    if saved.exists():
        return Listing.from_json(saved.read_text())
    listing = list_source(source, _byte_progress)
    write_atomic(saved, listing.to_json())
    return listing


def _check_md5(computed: dict[str, str], strict: bool) -> dict:
    """Each archive's MD5 beside the official one; a mismatch warns, or stops when strict."""
    archives = {}
    for name, md5 in sorted(computed.items()):
        official = OFFICIAL_MD5[name]
        archives[name] = {"md5": md5, "official_md5": official, "matches": md5 == official}
        if md5 != official:
            message = f"{name}: MD5 {md5} differs from the official {official}; the archive is damaged or not the official one"
            if strict:
                raise OakError(f"{message}; download it again (or set prepare.strict_md5=false to go on)")
            print(f"warning: {message}", file=sys.stderr)
    return archives


def _stop_on_problems(source: Path, problems: list[Problem], on_bad: str, consequence: str) -> None:
    if not problems or on_bad == "skip":
        return
    listed = "; ".join(f"{p.origin}: {p.reason}" for p in problems[:20]) + (
        f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
    )
    raise OakError(f"{source}: {len(problems)} problem(s), {consequence}: {listed}. Fix them, or set prepare.on_bad=skip to leave them out")


def _check_images(root: str, split: str, items: list[Item], conversion: Conversion, parallel_map: Callable) -> list[Outcome]:
    """Step 2: every item's outcome, in order."""
    batches = [items[i : i + CHECK_BATCH] for i in range(0, len(items), CHECK_BATCH)]
    results = parallel_map(check_batch, [(root, batch, conversion) for batch in batches])
    outcomes: list[Outcome] = []
    for batch_outcomes in _advancing(results, _progress(f"check {split}", len(items)), [len(batch) for batch in batches]):
        outcomes += batch_outcomes
    return outcomes


def check_batch(task: tuple[str, list[Item], Conversion]) -> list[Outcome]:
    root, items, conversion = task
    return [check_item(root, item, conversion) for item in items]


def check_item(root: str, item: Item, conversion: Conversion) -> Outcome:
    """An item's outcome from its first bytes and its last two; the whole file goes to Pillow
    only when those cannot tell."""
    fd = os.open(os.path.join(root, item.file), os.O_RDONLY)
    try:
        head = _read_exactly(fd, item, item.offset, min(item.size, HEAD_BYTES))
        tail = _read_exactly(fd, item, item.offset + item.size - 2, 2) if item.size >= 2 else b""
        kind = planned_kind(head, tail, conversion)
        if kind is None:
            kind = convert_image(_read_exactly(fd, item, item.offset, item.size), conversion)[1]
    except BadImage as error:
        return Outcome(BAD, str(error))
    finally:
        os.close(fd)
    return Outcome(kind)


def _read_item(root: str, item: Item | Stored) -> bytes:
    fd = os.open(os.path.join(root, item.file), os.O_RDONLY)
    try:
        return _read_exactly(fd, item, item.offset, item.size)
    finally:
        os.close(fd)


def _read_exactly(fd: int, item: Item | Stored, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:  # the file shrank after it was listed
        raise OakError(f"{item.origin}: shorter than when listed; the source changed during the run, run again")
    return data


def _stored(listing: Listing, split: str, outcomes: list[Outcome]) -> list[Stored]:
    """The accepted samples of a split, each with its class index and what step 3 does with it."""
    label_of = {wnid: index for index, wnid in enumerate(listing.classes)}
    return [
        Stored(item.key, label_of[item.wnid], item.origin, item.file, item.offset, item.size, outcome.kind)
        for item, outcome in zip(listing.items[split], outcomes)
        if outcome.kind != BAD
    ]


def ensure_shard(task: tuple[str, Path, list[Stored], Conversion]) -> str:
    """Write one shard unless a finished one is there (from an interrupted run); return its sha256.

    Written under a temp name (removed on failure) and renamed when complete, so a shard's final
    name always means a whole shard.
    """
    root, path, samples, conversion = task
    if path.exists():
        return _file_sha256(path)
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
    data = _read_item(root, sample)
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


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


class TarWriter:
    """Writes a tar of fixed-metadata members (mtime 0, owner oak, mode 0444), the very bytes
    Python's tarfile writes for them, hashing the stream on the way: no second read of the shard.

    Headers are filled into a template (1 us; tarfile builds one in 17 us, and a sample has two,
    against ~110 us for reading, hashing and writing its 100 KB image). One write per sample
    (writev: no copy to join the pieces).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.sha256 = hashlib.sha256()
        self.offset = 0

    def add(self, key: str, members: list[tuple[str, bytes]]) -> None:
        """One sample: a member `key.extension` per (extension, bytes), in the order given."""
        pieces = []
        for extension, data in members:
            pieces += [member_header(f"{key}.{extension}", len(data)), data, bytes(-len(data) % tarfile.BLOCKSIZE)]
        self._write(pieces)

    def finish(self) -> str:
        """Two zero blocks and padding to a whole record, as tarfile ends a tar; returns the sha256."""
        end = self.offset + 2 * tarfile.BLOCKSIZE
        self._write([bytes(2 * tarfile.BLOCKSIZE + -end % tarfile.RECORDSIZE)])
        return self.sha256.hexdigest()

    def _write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.sha256.update(piece)
        expected = sum(len(piece) for piece in pieces)
        if os.writev(self.fd, pieces) != expected:  # a regular file takes it all, unless the disk is full
            raise OSError(errno.ENOSPC, "a shard was written short")
        self.offset += expected


def tarfile_header(name: str, size: int) -> bytes:
    """The header Python's tarfile writes for a member with the fixed metadata (PAX format, the default)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "oak", "oak"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


NAME_FIELD, SIZE_FIELD, CHECKSUM_FIELD = slice(0, 100), slice(124, 136), slice(148, 156)


def _blank_header() -> bytes:
    """tarfile's header with name and size zeroed and the checksum field as spaces (how it counts itself)."""
    header = bytearray(tarfile_header("", 0))
    header[SIZE_FIELD] = bytes(12)
    header[CHECKSUM_FIELD] = b" " * 8
    return bytes(header)


BLANK_HEADER = _blank_header()
BLANK_CHECKSUM = sum(BLANK_HEADER)  # the checksum is a byte sum: add the name's and size's bytes to it


def member_header(name: str, size: int) -> bytes:
    """`tarfile_header(name, size)`, filled into a template when a plain ustar header holds it."""
    encoded = name.encode()
    if not name.isascii() or len(encoded) > 100 or size >= 8**11:  # needs a pax extended header
        return tarfile_header(name, size)
    size_field = b"%011o\0" % size
    header = bytearray(BLANK_HEADER)
    header[NAME_FIELD] = encoded.ljust(100, b"\0")
    header[SIZE_FIELD] = size_field
    header[CHECKSUM_FIELD] = b"%06o\0 " % (BLANK_CHECKSUM + sum(encoded) + sum(size_field))
    return bytes(header)


@contextmanager
def _parallel_map(workers: int) -> Iterator[Callable[[Callable, list], Iterable]]:
    """An ordered, lazy map over `workers` processes. Forked, so they start at once; nothing the
    tasks use imports torch (that would cost each worker seconds and hundreds of MB)."""
    if workers == 1:
        yield map
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool.imap


def _advancing(results: Iterable, progress: tqdm, sizes: list[int]) -> Iterator:
    """`results` as they come, the progress bar advancing by each task's size."""
    with progress:
        for result, size in zip(results, sizes):
            progress.update(size)
            yield result


def _progress(description: str, total: int) -> tqdm:
    # On stderr with rate and ETA; silent when stderr is not a terminal (DVC logs, CI).
    return tqdm(total=total, desc=description, unit="img", file=sys.stderr, disable=None, smoothing=0.1)


def _byte_progress(description: str, total: int) -> Callable[[int], object]:
    bar = tqdm(total=total, desc=description, unit="B", unit_scale=True, file=sys.stderr, disable=None)
    return lambda count: bar.update(count) if count else bar.close()


def _info(source: Path, found: Source, listing: Listing, archives: dict, conversion: Conversion, samples_per_shard: int, seed: int) -> dict:
    dataset_file = source / DATASET_FILE
    dataset = json.loads(dataset_file.read_text()) if dataset_file.exists() else {}
    return {
        "name": dataset.get("name", source.name),
        "dataset": dataset,
        "inputs": {split: path.name + ("/" if path.is_dir() else "") for split, path in (("train", found.train), ("val", found.val))}
        | ({"labels": found.labels.name} if found.labels else {}),
        "archives": archives,
        "prepare": {**asdict(conversion), "samples_per_shard": samples_per_shard, "seed": seed},
        "classes": listing.classes,
        "num_classes": len(listing.classes),
        "splits": {},
        "counts": {},
    }


def _counts(split: str, listing: Listing, outcomes: list[Outcome], problems: list[Problem]) -> dict:
    """found = written + rejected, in files; `other_problems` are rejected folders and labels; `left_by_os`
    the files operating systems leave in folders (.DS_Store, ...), skipped and not counted as found."""
    kinds = [outcome.kind for outcome in outcomes]
    return {
        "found": listing.found(split),
        "written": len(kinds) - kinds.count(BAD),
        "rejected": sum(1 for p in problems if p.split == split and p.is_file),
        "reencoded_rgb": kinds.count("reencoded_rgb"),
        "resized": kinds.count("resized"),
        "other_problems": sum(1 for p in problems if p.split == split and not p.is_file),
        "left_by_os": sum(1 for where, _ in listing.left_by_os if where == split),
    }


def _rejected_table(problems: list[Problem]) -> str:
    rows = [f"{p.split}\t{p.origin}\t{p.reason}" for p in problems]
    return "\n".join(["split\titem\treason", *rows]) + "\n"


def read_info(shards: Path) -> dict:
    """The info file of a shard folder, or an error that says how to make one."""
    path = shards / INFO_FILE
    if not path.exists():
        raise OakError(f"{path}: shard info not found; run `oak prepare` (or `dvc repro prepare`) first")
    return json.loads(path.read_text())


def is_synthetic(info: dict) -> bool:
    return bool(info["dataset"].get("synthetic", False))


def dataset_label(info: dict) -> str:
    """How reports and run tags name the data: its name, marked when synthetic."""
    return f"{info['name']} (synthetic)" if is_synthetic(info) else info["name"]

"""A source (image tree or official archives) to WebDataset shards, in the layout timm's `wds/` reader reads.

Output: `OUT/train-NNNNNN.tar`, `OUT/val-NNNNNN.tar`, `OUT/_info.json` (per split: num_samples,
filenames, shard_lengths, sha256; the class list; counts; archive MD5s) and `OUT/_rejected.tsv`.
Each sample holds `jpg` (bytes that decode to RGB) and `cls` (the class index: the WordNet ID's
position in the sorted class list).

The work runs in three steps, all in a staging folder `OUT.tmp` beside OUT:
1. list the source (names only; an archive is streamed once for its layout and MD5);
2. check and convert every image, in batches, in parallel; a batch's result is saved when done;
3. write the shards, in parallel; a shard gets its final name only when complete.
A bad input stops the run after step 1 or 2, before any shard is written, unless
`on_bad="skip"`. Saved batches and shards are reused by a rerun with the same inputs and
settings (a fingerprint in the staging folder says so), so a killed run resumes. At the end the
finished folder is renamed to OUT, which is therefore either absent or complete.
"""

import hashlib
import io
import json
import multiprocessing
import random
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from oak.data.archives import OFFICIAL_MD5
from oak.data.images import KEPT, BadImage, Conversion, convert_image
from oak.data.sources import DATASET_FILE, SPLITS, Item, Listing, Problem, Source, find_source, list_source, select_classes, source_stamp
from oak.errors import OakError
from oak.files import write_atomic

INFO_FILE = "_info.json"
REJECTED_FILE = "_rejected.tsv"
ON_BAD = ("fail", "skip")
CHECK_BATCH = 256  # images per saved unit of step 2; fixed, so results never depend on the worker count
WORK_VERSION = 1  # part of the fingerprint: bump when stored bytes or work files change meaning
BAD = "bad"


@dataclass(frozen=True)
class Outcome:
    """What step 2 made of an item: kept (bytes at the item's place), converted (bytes in a
    batch file), or bad (a reason)."""

    kind: str  # KEPT, REENCODED_RGB, RESIZED or BAD
    offset: int = 0
    size: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Stored:
    """A sample as step 3 writes it: where its final bytes lie (relative to a root)."""

    key: str
    label: int
    file: str
    offset: int
    size: int


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
    _stop_on_problems(source, listing.problems, on_bad, "nothing written")
    _open_staging(staging, fingerprint)
    outcomes = {split: _check_images(found.root, staging / "work", split, listing.items[split], conversion, workers) for split in SPLITS}
    problems = listing.problems + [
        Problem(split, item.origin, outcome.reason, item.wnid, True)
        for split in SPLITS
        for item, outcome in zip(listing.items[split], outcomes[split])
        if outcome.kind == BAD
    ]
    _stop_on_problems(source, problems, on_bad, f"no shard written (checked images are kept in {staging} for a rerun)")
    stored = {split: _stored(listing, split, outcomes[split], staging / "work") for split in SPLITS}
    random.Random(seed).shuffle(stored["train"])
    shards = staging / "shards"
    shards.mkdir(exist_ok=True)
    info = _info(source, found, listing, archives, conversion, samples_per_shard, seed)
    for split in SPLITS:
        chunks = [stored[split][i : i + samples_per_shard] for i in range(0, len(stored[split]), samples_per_shard)]
        filenames = [f"{split}-{index:06d}.tar" for index in range(len(chunks))]
        tasks = [(found.root, shards / name, chunk) for name, chunk in zip(filenames, chunks)]
        digests = list(_run(ensure_shard, tasks, workers, _progress(f"write {split}", len(stored[split])), [len(c) for c in chunks]))
        info["splits"][split] = {
            "name": split,
            "num_samples": len(stored[split]),
            "filenames": filenames,
            "shard_lengths": [len(chunk) for chunk in chunks],
            "sha256": digests,
        }
        info["counts"][split] = _counts(split, listing, outcomes[split], problems)
    (shards / REJECTED_FILE).write_text(_rejected_table(problems))
    (shards / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    shards.rename(out)
    shutil.rmtree(staging)
    return info


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


def _check_images(root: Path, work: Path, split: str, items: list[Item], conversion: Conversion, workers: int) -> list[Outcome]:
    """Step 2: every item's outcome, batch by batch; saved batches are read back, not redone."""
    batches = [items[i : i + CHECK_BATCH] for i in range(0, len(items), CHECK_BATCH)]
    tasks = [(root, work / f"{split}-{index:06d}", batch, conversion) for index, batch in enumerate(batches)]
    outcomes: list[Outcome] = []
    for batch_outcomes in _run(check_batch, tasks, workers, _progress(f"check {split}", len(items)), [len(b) for b in batches]):
        outcomes += batch_outcomes
    return outcomes


def check_batch(task: tuple[Path, Path, list[Item], Conversion]) -> list[Outcome]:
    """Check and convert one batch: converted bytes go to `<stem>.bin`, outcomes to `<stem>.json`
    (written last, so it marks the batch as done)."""
    root, stem, items, conversion = task
    done = stem.with_suffix(".json")
    if done.exists():
        return [Outcome(*values) for values in json.loads(done.read_text())]
    outcomes, converted = [], io.BytesIO()
    for item in items:
        try:
            data, kind = convert_image(read_at(root, item.file, item.offset, item.size), conversion)
        except BadImage as error:
            outcomes.append(Outcome(BAD, reason=str(error)))
            continue
        if data is None:
            outcomes.append(Outcome(kind))
        else:
            outcomes.append(Outcome(kind, converted.tell(), len(data)))
            converted.write(data)
    write_atomic(stem.with_suffix(".bin"), converted.getvalue())
    write_atomic(done, json.dumps([list(asdict(o).values()) for o in outcomes]))
    return outcomes


def read_at(root: Path, file: str, offset: int, size: int) -> bytes:
    with open(root / file, "rb") as stream:
        stream.seek(offset)
        return stream.read(size)


def _stored(listing: Listing, split: str, outcomes: list[Outcome], work: Path) -> list[Stored]:
    """The accepted samples of a split, each pointing at its final bytes: in the source, or in a batch file."""
    label_of = {wnid: index for index, wnid in enumerate(listing.classes)}
    stored = []
    for index, (item, outcome) in enumerate(zip(listing.items[split], outcomes)):
        if outcome.kind == BAD:
            continue
        if outcome.kind == KEPT:
            stored.append(Stored(item.key, label_of[item.wnid], item.file, item.offset, item.size))
        else:
            batch_file = work / f"{split}-{index // CHECK_BATCH:06d}.bin"
            stored.append(Stored(item.key, label_of[item.wnid], str(batch_file.absolute()), outcome.offset, outcome.size))
    return stored


def ensure_shard(task: tuple[Path, Path, list[Stored]]) -> str:
    """Write one shard unless a finished one is there (from an interrupted run); return its sha256.

    Written under a temp name, checked (one .jpg and one .cls per sample), then renamed. Fixed tar
    metadata (mtime 0, owner, mode) makes the same samples give the same bytes.
    """
    root, path, samples = task
    if path.exists():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        stream = HashingWriter(file)
        with wds.TarWriter(stream, mtime=0, user="oak", group="oak", mode=0o444) as writer:
            for sample in samples:
                image = read_at(root, sample.file, sample.offset, sample.size)
                writer.write({"__key__": sample.key, "jpg": image, "cls": str(sample.label).encode()})
    with tarfile.open(partial) as tar:  # headers only: cheap, and catches a short write
        if len(tar.getmembers()) != 2 * len(samples):
            raise OakError(f"{partial}: holds {len(tar.getmembers())} members, expected {2 * len(samples)}; is the disk full?")
    partial.rename(path)
    return stream.sha256.hexdigest()


class HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes through: no second read of the shard."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha256.update(data)
        return self.file.write(data)


def _run(function: Callable, tasks: list, workers: int, progress: tqdm, sizes: list[int]) -> Iterator:
    """`function` over `tasks` in order, in `workers` processes; the progress bar advances by each task's size."""
    with progress:
        if workers == 1 or len(tasks) <= 1:
            results: Iterable = map(function, tasks)
            yield from _advancing(results, progress, sizes)
            return
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from _advancing(pool.imap(function, tasks), progress, sizes)


def _advancing(results: Iterable, progress: tqdm, sizes: list[int]) -> Iterator:
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
    """found = written + rejected, in files; `other_problems` are rejected folders and labels."""
    kinds = [outcome.kind for outcome in outcomes]
    return {
        "found": listing.found(split),
        "written": len(kinds) - kinds.count(BAD),
        "rejected": sum(1 for p in problems if p.split == split and p.is_file),
        "reencoded_rgb": kinds.count("reencoded_rgb"),
        "resized": kinds.count("resized"),
        "other_problems": sum(1 for p in problems if p.split == split and not p.is_file),
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

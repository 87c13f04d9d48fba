"""What `oak prepare` reads: the forms a source takes, and how each is listed (see oak.preparing.listing).

A source is a folder. Per split, Oak takes the folder `train/` (or `val/`) when there is one,
else the official archive beside it:
- train: `train/<wnid>/*.JPEG`, or `ILSVRC2012_img_train.tar` (a tar of per-class tars);
- val: `val/<wnid>/*.JPEG`; or a flat `val/*.JPEG`, or `ILSVRC2012_img_val.tar`, both labelled by
  `ILSVRC2012_devkit_t12.tar.gz` or else `LOC_val_solution.csv` (Kaggle) in the same folder.
Listing reads names only (and, for an archive, streams it once for its layout and MD5); the
images' contents are checked later, in parallel. Only regular files are read: a FIFO, socket,
device or folder where an image belongs, a broken link, and a link (file or class folder) that
leads out of the source or its split folder are problems, listed like bad images.
"""

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oak.data.imagenet import WNID_PATTERN
from oak.errors import OakError
from oak.preparing.archives import (
    DEVKIT,
    KAGGLE_LABELS,
    TRAIN_ARCHIVE,
    VAL_ARCHIVE,
    file_md5,
    index_flat_archive,
    index_train_archive,
    read_devkit_labels,
    read_kaggle_labels,
)
from oak.preparing.listing import Item, Listing, Problem

DATASET_FILE = "dataset.json"  # an optional description of the set beside its splits (the demo writes one)
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


@dataclass(frozen=True)
class Source:
    """Where each split's images and the validation labels come from."""

    root: Path
    train: Path  # a class-folder tree or TRAIN_ARCHIVE
    val: Path  # a class-folder tree, a flat folder, or VAL_ARCHIVE
    labels: Path | None  # DEVKIT or KAGGLE_LABELS; needed by a flat val folder or VAL_ARCHIVE

    @property
    def inputs(self) -> list[Path]:
        return [self.train, self.val] + ([self.labels] if self.labels else [])

    @property
    def has_archive(self) -> bool:
        return self.train.is_file() or self.val.is_file()


def find_source(root: Path) -> Source:
    """Which form each split takes under `root`; an error says what was expected."""
    if not root.is_dir():
        raise OakError(f"{root}: source folder not found; set data.source or run `oak demo-data` first")
    train = _split_input(root, "train", TRAIN_ARCHIVE)
    val = _split_input(root, "val", VAL_ARCHIVE)
    labels = next((root / name for name in (DEVKIT, KAGGLE_LABELS) if (root / name).is_file()), None)
    if (val.is_file() or _is_flat(val)) and labels is None:
        raise OakError(f"{val}: unlabelled validation images; put {DEVKIT} or {KAGGLE_LABELS} in {root}")
    return Source(root, train, val, labels)


def _split_input(root: Path, split: str, archive: str) -> Path:
    folder, tar = root / split, root / archive
    if folder.is_dir() and tar.is_file():
        raise OakError(f"{root}: both {split}/ and {archive}; move one away so it is clear which to read")
    if not folder.is_dir() and not tar.is_file():
        raise OakError(f"{folder}: split folder not found (nor {archive} in {root})")
    return folder if folder.is_dir() else tar


def _is_flat(folder: Path) -> bool:
    """A folder of images without class folders: validation images labelled by a file."""
    return folder.is_dir() and not any(entry.is_dir() for entry in folder.iterdir())


def source_stamp(source: Source) -> str:
    """A hash of every input file's path, size and modification time: cheap, and changes with them."""
    digest = hashlib.sha256()
    start = len(str(source.root)) + 1  # inputs lie in the root: their paths relative to it, by slicing
    for path in source.inputs:
        for file in sorted(_files_under(str(path))):  # strings, not Paths: a million files take seconds, not a minute
            status = _status(file)
            digest.update(f"{file[start:]}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files_under(path: str) -> list[str]:
    """The input file, or what the listing reads of a split folder: its entries and those of its
    sub-folders (class folders, links to them included), no deeper."""
    if os.path.isfile(path):
        return [path]
    files = []
    for entry in os.scandir(path):
        files += [inner.path for inner in os.scandir(entry.path)] if entry.is_dir() else [entry.path]
    return files


def _status(path: str) -> os.stat_result:
    """What a link leads to; the link itself when it leads nowhere (the listing rejects it)."""
    try:
        return os.stat(path)
    except OSError:
        return os.lstat(path)


def list_source(source: Source, progress: Callable[[str, int], Callable[[int], object]]) -> Listing:
    """Every candidate sample and every problem a name reveals, for all classes.

    `progress(description, total_bytes)` returns a callback fed the bytes read; only archives use it.
    """
    problems: list[Problem] = []
    archive_md5: dict[str, str] = {}
    if source.train.is_dir():
        train_entries = _tree_entries(source.root, source.train, "train", problems)
        classes = sorted({entry[0] for entry in train_entries if entry[0]} | _class_folders(source.train))
    else:
        by_class, bad, archive_md5[TRAIN_ARCHIVE] = index_train_archive(source.train, progress("index train", source.train.stat().st_size))
        problems += [Problem("train", f"{TRAIN_ARCHIVE}:{b.name}", b.reason, _wnid_of(b.name), True) for b in bad]
        train_entries = [
            (wnid, f"{TRAIN_ARCHIVE}:{m.name}", m.name, TRAIN_ARCHIVE, m.offset, m.size) for wnid, ms in by_class.items() for m in ms
        ]
        classes = sorted(by_class)
        problems += [
            Problem("train", f"{TRAIN_ARCHIVE}:{wnid}.tar", "empty class archive", wnid, False) for wnid in classes if not by_class[wnid]
        ]
    labels: dict[str, str] = {}
    if source.labels is not None and not _has_class_folders(source.val):
        labels = read_devkit_labels(source.labels) if source.labels.name == DEVKIT else read_kaggle_labels(source.labels)
        if source.labels.name == DEVKIT:
            archive_md5[DEVKIT] = file_md5(source.labels)
    if source.val.is_file():
        members, bad, archive_md5[VAL_ARCHIVE] = index_flat_archive(source.val, progress("index val", source.val.stat().st_size))
        problems += [Problem("val", f"{VAL_ARCHIVE}:{b.name}", b.reason, None, True) for b in bad]
        val_entries = [(labels.get(_stem(m.name)), f"{VAL_ARCHIVE}:{m.name}", m.name, VAL_ARCHIVE, m.offset, m.size) for m in members]
    elif labels:
        trees = _trees(source.root, source.val)
        val_entries = []
        for entry in sorted(os.scandir(source.val), key=lambda entry: entry.name):
            where, wnid = f"val/{entry.name}", labels.get(_stem(entry.name))
            if not left_by_an_os(entry.name) and (reason := _unreadable(entry, trees)):
                problems.append(Problem("val", where, reason, wnid, True))
            else:
                val_entries.append((wnid, where, entry.name, where, 0, _size(entry)))
    else:
        val_entries = _tree_entries(source.root, source.val, "val", problems)
    left_by_os: list[tuple[str, str]] = []
    items = {
        "train": _items("train", train_entries, set(classes), problems, left_by_os),
        "val": _items("val", val_entries, set(classes), problems, left_by_os),
    }
    if labels:
        listed = {_stem(entry[2]) for entry in val_entries}
        problems += [
            Problem("val", f"{source.labels.name}:{name}", "label for an image that is not there", wnid, False)
            for name, wnid in sorted(labels.items())
            if name not in listed
        ]
    return Listing(classes, items, problems, archive_md5, left_by_os)


Entry = tuple[str | None, str, str, str, int, int]  # (wnid or None when unlabelled, origin, file name, file, offset, size)


def left_by_an_os(name: str) -> bool:
    """Files that macOS (.DS_Store, ._* AppleDouble) and Windows (Thumbs.db, desktop.ini) leave in folders."""
    return name in OS_LITTER or name.startswith("._")


OS_LITTER = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _tree_entries(root: Path, split_dir: Path, split: str, problems: list[Problem]) -> list[Entry]:
    """Every file of the split's class folders as an entry (OS litter too: `_items` sets it aside)."""
    entries: list[Entry] = []
    if not any(entry.is_dir() for entry in split_dir.iterdir()):
        problems.append(Problem(split, split, "no class folders", None, False))
    prefix = split_dir.relative_to(root).as_posix()
    trees = _trees(root, split_dir)
    for entry in sorted(os.scandir(split_dir), key=lambda entry: entry.name):
        where = f"{prefix}/{entry.name}"
        if left_by_an_os(entry.name):
            entries.append((None, where, entry.name, where, 0, 0))
        elif not entry.is_dir():
            problems.append(Problem(split, where, "stray file where class folders belong", None, True))
        elif not WNID_PATTERN.fullmatch(entry.name):
            problems.append(Problem(split, where, "folder name is not a WordNet ID (n########)", None, False))
        elif reason := _outside(entry, trees):
            problems.append(Problem(split, where, reason, entry.name, False))
        else:
            files = sorted(os.scandir(entry.path), key=lambda file: file.name)
            if not files:
                problems.append(Problem(split, where, "empty class folder; remove it or add its images", entry.name, False))
            for file in files:
                relative = f"{where}/{file.name}"
                if not left_by_an_os(file.name) and (reason := _unreadable(file, trees)):
                    problems.append(Problem(split, relative, reason, entry.name, True))
                else:
                    entries.append((entry.name, relative, file.name, relative, 0, _size(file)))
    return entries


def _trees(root: Path, split_dir: Path) -> tuple[Path, ...]:
    """Where links in a split folder may lead: within the source, or within the split folder (itself perhaps a link)."""
    return (root.resolve(), split_dir.resolve())


KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _unreadable(entry: os.DirEntry, trees: tuple[Path, ...]) -> str | None:
    """Why an entry where an image belongs is not read, or None: it is a regular file, or a link to one
    within `trees`. Decided from metadata alone: nothing is opened (opening a FIFO blocks)."""
    if entry.is_file(follow_symlinks=False):  # the common case, known from the folder listing without a system call
        return None
    if reason := _outside(entry, trees):
        return reason
    try:
        mode = entry.stat().st_mode
    except OSError:
        return "a link that leads nowhere"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in KINDS if test(mode)), "a special file")
    return f"{kind}, not a regular file: only regular files are read"


def _outside(entry: os.DirEntry, trees: tuple[Path, ...]) -> str | None:
    """Why a link is not followed (it leads out of `trees`), or None."""
    if not entry.is_symlink():
        return None
    target = Path(os.path.realpath(entry.path))
    if any(target.is_relative_to(tree) for tree in trees):
        return None
    return f"link to {target}, outside the source: links are followed only within it"


def _size(entry: os.DirEntry) -> int:
    """The size of what an entry is or leads to; 0 for OS litter that leads nowhere (never read)."""
    try:
        return entry.stat().st_size
    except OSError:
        return 0


def _class_folders(split_dir: Path) -> set[str]:
    return {entry.name for entry in split_dir.iterdir() if entry.is_dir() and WNID_PATTERN.fullmatch(entry.name)}


def _has_class_folders(path: Path) -> bool:
    return path.is_dir() and not _is_flat(path)


def _items(split: str, entries: list[Entry], classes: set[str], problems: list[Problem], left_by_os: list[tuple[str, str]]) -> list[Item]:
    """Entries that may be samples; OS litter is set aside; the others become problems (stray file, no label, duplicate key)."""
    items: list[Item] = []
    seen: dict[str, str] = {}
    for wnid, origin, name, file, offset, size in entries:
        key = _stem(name).replace(".", "_")
        if left_by_an_os(name):
            left_by_os.append((split, origin))
        elif _suffix(name).lower() not in IMAGE_SUFFIXES:
            problems.append(Problem(split, origin, "stray file: not an image (.JPEG, .jpg or .png)", wnid, True))
        elif wnid is None:
            problems.append(Problem(split, origin, "validation image with no label", None, True))
        elif wnid not in classes:
            problems.append(Problem(split, origin, f"class {wnid} has no training images", wnid, True))
        elif key in seen:
            problems.append(Problem(split, origin, f"duplicate sample key {key!r} (also {seen[key]})", wnid, True))
        else:
            seen[key] = origin
            items.append(Item(key, wnid, origin, file, offset, size))
    return items


def _stem(name: str) -> str:
    """PurePosixPath(name).stem, without building a path: called for every file."""
    return _split_suffix(name)[0]


def _suffix(name: str) -> str:
    return _split_suffix(name)[1]


def _split_suffix(name: str) -> tuple[str, str]:
    """(stem, suffix) of a file name's last part, split as pathlib splits it."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return (base[:dot], base[dot:]) if 0 < dot < len(base) - 1 else (base, "")


def _wnid_of(member_name: str) -> str | None:
    head = member_name.split("/")[0].removesuffix(".tar")
    return head if WNID_PATTERN.fullmatch(head) else None

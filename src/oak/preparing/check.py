"""Step 2 of `oak prepare`: what each listed image will become, checked in parallel before any shard is written.

An image's first bytes and its last two, read from where the listing says they lie (a file of the
source, or a stretch of an archive), usually settle it (oak.preparing.images.planned_kind): kept as it
is, re-encoded to RGB, resized, or bad. Pillow opens only the images this cannot settle. The
accepted images become the samples step 3 stores (`Stored`), each with its class index and what
becomes of its bytes.
"""

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from oak.errors import OakError
from oak.preparing.images import HEAD_BYTES, BadImage, Conversion, convert_image, planned_kind
from oak.preparing.listing import Item, Listing, Problem
from oak.preparing.parallel import advancing, image_progress

CHECK_BATCH = 256  # images per task of step 2: enough that handing out a task costs little
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


def check_images(root: str, split: str, items: list[Item], conversion: Conversion, parallel_map: Callable) -> list[Outcome]:
    """Step 2: every item's outcome, in order."""
    batches = [items[i : i + CHECK_BATCH] for i in range(0, len(items), CHECK_BATCH)]
    results = parallel_map(check_batch, [(root, batch, conversion) for batch in batches])
    outcomes: list[Outcome] = []
    for batch_outcomes in advancing(results, image_progress(f"check {split}", len(items)), [len(batch) for batch in batches]):
        outcomes += batch_outcomes
    return outcomes


def check_batch(task: tuple[str, list[Item], Conversion]) -> list[Outcome]:
    root, items, conversion = task
    return [check_item(root, item, conversion) for item in items]


def check_item(root: str, item: Item, conversion: Conversion) -> Outcome:
    """An item's outcome from its first bytes and its last two; the whole file goes to Pillow
    only when those cannot tell."""
    fd = _open_regular(root, item)
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


def bad_images(listing: Listing, outcomes: dict[str, list[Outcome]]) -> list[Problem]:
    """The images step 2 found bad, as problems: split by split, in listing order."""
    return [
        Problem(split, item.origin, outcome.reason, item.wnid, True)
        for split, split_outcomes in outcomes.items()
        for item, outcome in zip(listing.items[split], split_outcomes)
        if outcome.kind == BAD
    ]


def accepted_samples(listing: Listing, split: str, outcomes: list[Outcome]) -> list[Stored]:
    """The accepted samples of a split, each with its class index and what step 3 does with it."""
    label_of = {wnid: index for index, wnid in enumerate(listing.classes)}
    return [
        Stored(item.key, label_of[item.wnid], item.origin, item.file, item.offset, item.size, outcome.kind)
        for item, outcome in zip(listing.items[split], outcomes)
        if outcome.kind != BAD
    ]


def read_item(root: str, item: Item | Stored) -> bytes:
    """All the bytes of an item, from the source file (or archive) it lies in."""
    fd = _open_regular(root, item)
    try:
        return _read_exactly(fd, item, item.offset, item.size)
    finally:
        os.close(fd)


def _open_regular(root: str, item: Item | Stored) -> int:
    """A descriptor of the file an item lies in, which must still be a regular file, as the listing
    found it. Opened without blocking: a FIFO put in its place since would block the open forever."""
    fd = os.open(os.path.join(root, item.file), os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OakError(f"{item.origin}: no longer a regular file; the source changed during the run, run again")
    return fd


def _read_exactly(fd: int, item: Item | Stored, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:  # the file shrank after it was listed
        raise OakError(f"{item.origin}: shorter than when listed; the source changed during the run, run again")
    return data

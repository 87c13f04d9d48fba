"""The staging folder `OUT.tmp` that `oak prepare` works in, when a rerun may reuse the work left
there, and how the finished shards replace OUT.

It holds `fingerprint` (what the work was made from), `work/listing.json` (a source's listing,
kept when making it meant reading an archive through) and `shards/` (finished shards, and at the
end the info files). A rerun whose inputs and settings give the same fingerprint keeps it all, so
a killed run resumes; any other run starts afresh.

Oak removes only folders it provably wrote (`remove_written`): a staging folder with its
fingerprint file, a shard folder whose `_info.json` reads as Oak's, each holding nothing but
what Oak puts there. Anything else at OUT or OUT.tmp is refused before any work, and left as it is.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from oak.data.info import read_info
from oak.errors import OakError
from oak.files import write_atomic
from oak.layout import REJECTED_FILE, SHARD_INFO_FILE
from oak.preparing.images import Conversion
from oak.preparing.listing import Listing
from oak.preparing.parallel import byte_progress
from oak.preparing.sources import Source, list_source, source_stamp

WORK_VERSION = 3  # part of the fingerprint: bump when stored bytes, work files or what is accepted change meaning


def work_fingerprint(source: Source, classes: object, samples_per_shard: int, seed: int, conversion: Conversion) -> str:
    """What the output depends on: the inputs (paths, sizes, times) and the settings. Not the
    worker count, nor on_bad: with no bad input both give the same shards."""
    settings = {"version": WORK_VERSION, "classes": classes, "samples_per_shard": samples_per_shard, "seed": seed, **conversion.settings()}
    return hashlib.sha256(f"{json.dumps(settings, sort_keys=True)}\n{source_stamp(source)}".encode()).hexdigest()


# Every path a staging folder may hold, relative to it (a folder's with a trailing slash).
STAGING_ENTRY = re.compile(
    r"fingerprint|work/|work/listing\.json(\.partial)?|shards/|shards/(train|val)-\d{6}\.tar(\.partial)?"
    rf"|shards/{re.escape(SHARD_INFO_FILE)}|shards/{re.escape(REJECTED_FILE)}"
)


def open_staging(staging: Path, fingerprint: str) -> None:
    """Keep the staging folder's work when it was made from the same inputs and settings, else start afresh."""
    stamp = staging / "fingerprint"
    if _staged_fingerprint(staging) == fingerprint:
        return
    remove_staging(staging)
    staging.mkdir()
    write_atomic(stamp, fingerprint)  # first: what proves the folder is Oak's, should a run be killed from here on
    (staging / "work").mkdir()


def remove_staging(staging: Path) -> None:
    """Remove the staging folder, refusing one that Oak did not provably write."""
    remove_written(staging, *_staging_entries(staging))


def _staging_entries(staging: Path) -> tuple[Callable[[str], object], str]:
    """What a staging folder may hold, and what to call it: nothing at all without a fingerprint Oak writes."""
    if _staged_fingerprint(staging) is None:
        return (lambda entry: False), "a staging folder of `oak prepare` (those start with a fingerprint file)"
    return STAGING_ENTRY.fullmatch, "a staging folder of `oak prepare`"


def _staged_fingerprint(staging: Path) -> str | None:
    stamp = staging / "fingerprint"
    if not stamp.is_file() or stamp.is_symlink():  # not read otherwise: a FIFO would block the read
        return None
    return stamp.read_text(errors="replace")


def staging_folder(out: Path) -> Path:
    return out.with_name(out.name + ".tmp")


def check_output(out: Path, source: Path) -> None:
    """Refuse, before any work, an output folder that is or holds the source or the current folder (the
    repository), or that exists and is not a shard folder Oak wrote (`replace_output` replaces only
    those), and a staging folder Oak did not write."""
    refuse_enclosing(out, {"the source": source})
    written_entries(out, _written_shard_files(out).__contains__, SHARD_FOLDER)
    staging = staging_folder(out)
    written_entries(staging, *_staging_entries(staging))


def refuse_enclosing(out: Path, inside: dict[str, Path]) -> None:
    """An error when `out`, which Oak would replace, is or contains one of `inside` or the current folder."""
    for what, path in {**inside, "the current folder": Path.cwd()}.items():
        if path.resolve().is_relative_to(out.resolve()):
            raise OakError(f"{out}: is or contains {what} ({path}); write the output to a folder of its own")


def replace_output(shards: Path, out: Path) -> None:
    """Put the finished shard folder at `out`, replacing what is there only when it is a shard folder Oak wrote."""
    remove_written(out, _written_shard_files(out).__contains__, SHARD_FOLDER)
    shards.rename(out)


SHARD_FOLDER = "a shard folder of `oak prepare`"


def _written_shard_files(out: Path) -> set[str]:
    """The file names a shard folder at `out` may hold: none when there is no folder of Oak's there."""
    if not out.is_dir() or out.is_symlink() or not any(out.iterdir()):
        return set()  # nothing there, an empty folder, or what `written_entries` refuses: a file or a link
    try:
        info = read_info(out)
    except OakError:
        raise OakError(
            f"{out}: exists and is not {SHARD_FOLDER} (it has no {SHARD_INFO_FILE} that reads as Oak's); Oak replaces only "
            "its own output: move the folder away, or write the shards elsewhere (--out, paths.shards)"
        ) from None
    return {SHARD_INFO_FILE, REJECTED_FILE, *(name for split in info.splits.values() for name in split.filenames)}


def remove_written(folder: Path, written: Callable[[str], object], what: str) -> None:
    """Remove `folder` (when there) if each path under it, relative to it (a folder's with a trailing
    slash), is `written` by Oak; else an OakError naming the first that is not, and nothing removed.

    Entries go one by one (a link is unlinked, never followed), folders only once empty: never a
    whole tree at once, so nothing that appears meanwhile is lost. An empty folder holds nothing to lose.
    """
    if not os.path.lexists(folder):
        return
    for name in sorted(written_entries(folder, written, what), reverse=True):  # a folder's contents sort after it: they go first
        (os.rmdir if name.endswith("/") else os.unlink)(folder / name)
    folder.rmdir()


def written_entries(folder: Path, written: Callable[[str], object], what: str) -> list[str]:
    """The paths under `folder` (see `remove_written`), when each is `written`; else an OakError naming one that is not."""
    if not os.path.lexists(folder):
        return []
    if not folder.is_dir() or folder.is_symlink():
        raise OakError(
            f"{folder}: exists and is a file or a link, not a folder, so it is not {what}; Oak replaces only what it wrote: move it away"
        )
    entries = _entries(folder)
    stranger = next((name for name in entries if not written(name)), None)
    if stranger is not None:
        raise OakError(
            f"{folder}: holds {stranger!r}, which Oak does not write there, so it is not {what}; "
            "Oak removes only what it wrote: move the folder away (or empty it) and run again"
        )
    return entries


def _entries(folder: Path) -> list[str]:
    """Every path under `folder`, relative to it; a folder's (not a link's) with a trailing slash."""
    names = []
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            names += [f"{entry.name}/", *(f"{entry.name}/{name}" for name in _entries(Path(entry.path)))]
        else:
            names.append(entry.name)
    return names


def staged_listing(source: Source, staging: Path) -> Listing:
    """The source's listing; an archive's is read from the staging folder when a run before made it."""
    if not source.has_archive:
        return list_source(source, byte_progress)
    saved = staging / "work" / "listing.json"
    if saved.is_file():  # a FIFO in its place would block the read: replaced below
        return Listing.from_json(saved.read_text())
    listing = list_source(source, byte_progress)
    write_atomic(saved, listing.to_json())
    return listing

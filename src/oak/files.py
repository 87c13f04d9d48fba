"""Writing outputs so that a killed stage never leaves a file that looks complete, and reading them back."""

import ctypes
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from oak.errors import OakError

STAGING_SUFFIX = ".oak-staging.tmp"  # a folder name git ignores (`*.tmp/`), beside the folder it replaces
STAGING_MARK = "made-by-oak"  # the first file of a staging folder: what lets a later run remove one a killed run left
RENAME_EXCHANGE, AT_FDCWD = 2, -100  # renameat2's flag and "relative to the working directory" (linux/fs.h, fcntl.h)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temp name beside `path`, then rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(content.encode() if isinstance(content, str) else content)
    os.replace(partial, path)


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, remedy: str) -> Any:
    """A JSON file; a missing one, or one cut short or damaged, is an error naming it and `remedy`: how to write it again."""
    if not path.exists():
        raise OakError(f"{path}: not found; {remedy}")
    try:
        return json.loads(path.read_bytes())
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise OakError(f"{path}: not valid JSON, cut short or damaged ({error}); {remedy}") from None


def replace_folder(folder: Path, files: dict[Path, str | bytes]) -> None:
    """Make `folder` hold exactly `files` (paths inside it), all at once: whenever this process is killed,
    `folder` holds its previous files or the new ones, never a mix, never a partial file.

    The new folder is written whole beside it, in `<folder>.oak-staging.tmp`, then swapped in: in one step
    where the file system can (Linux's renameat2), else by two renames, between which a kill leaves the
    previous folder in the staging folder, for the next run to put back. Each entry directly in `folder`
    must be a file or folder of `files` (whose subfolders are replaced whole, as DVC treats a folder output):
    anything else stops it before any change, as Oak deletes nothing it did not write.
    """
    staging = folder.with_name(folder.name + STAGING_SUFFIX)
    _finish_killed_swap(folder, staging)
    if folder.exists() and not folder.is_dir():
        raise OakError(f"{folder}: a file, where this command writes a folder; move it away")
    names = {path.relative_to(folder).parts[0] for path in files}
    foreign = sorted(entry.name for entry in folder.iterdir() if entry.name not in names) if folder.exists() else []
    if foreign:
        raise OakError(f"{folder / foreign[0]}: not a file this command writes; move it out of {folder}, which it replaces whole")
    staging.mkdir(parents=True)
    (staging / STAGING_MARK).touch()
    new, previous = staging / "new", staging / "previous"
    for path, content in files.items():
        target = new / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    if not (folder.exists() and _exchange(new, folder)):
        if folder.exists():
            folder.rename(previous)
        new.rename(folder)
    shutil.rmtree(staging)


def _finish_killed_swap(folder: Path, staging: Path) -> None:
    """Remove the staging folder a killed run left, once the previous folder is back where it was."""
    if not staging.exists():
        return
    if not (staging / STAGING_MARK).exists() and any(staging.iterdir()):
        raise OakError(f"{staging}: not a staging folder Oak made (it has no {STAGING_MARK}); move it away")
    if (staging / "previous").exists() and not folder.exists():
        (staging / "previous").rename(folder)  # killed between the two renames
    shutil.rmtree(staging)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step, where Linux's renameat2 can (not on macOS, NFS or an old kernel: False)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def file_sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()

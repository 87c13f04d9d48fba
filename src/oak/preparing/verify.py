"""`oak verify`: re-read every shard against the info file that `oak prepare` wrote."""

import hashlib
import multiprocessing
import tarfile
from pathlib import Path, PurePosixPath

from oak.data.info import read_info
from oak.errors import OakError
from oak.preparing.images import stored_image_problem


def verify_shards(folder: Path, *, workers: int = 1) -> dict[str, int]:
    """Check each shard's sha256, sample count, labels and that every image decodes to RGB, within MAX_PIXELS.

    Returns how many shards and samples were checked; raises an OakError naming each bad shard.
    """
    info = read_info(folder)
    tasks = [
        (folder / name, digest, length, info.num_classes)
        for split in info.splits.values()
        for name, digest, length in zip(split.filenames, split.sha256, split.shard_lengths, strict=True)
    ]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            problems = pool.map(shard_problem, tasks)
    else:
        problems = list(map(shard_problem, tasks))
    listed = {task[0].name for task in tasks}
    bad = [f"{task[0].name}: {problem}" for task, problem in zip(tasks, problems) if problem]
    bad += [f"{path.name}: a shard the info file does not list" for path in sorted(folder.glob("*.tar")) if path.name not in listed]
    if bad:
        raise OakError(f"{folder}: {len(bad)} bad shard(s): {'; '.join(bad)}; run `oak prepare` again")
    return {"shards": len(tasks), "samples": sum(task[2] for task in tasks)}


def shard_problem(task: tuple[Path, str, int, int]) -> str | None:
    """What is wrong with one shard, or None."""
    path, digest, length, num_classes = task
    if not path.exists():
        return "missing"
    if not path.is_file():  # not read: a FIFO would block the read
        return "not a regular file"
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        return "sha256 differs from the info file"
    try:
        samples = _samples(path)
    except (tarfile.TarError, ValueError) as error:
        return f"not a readable shard ({error})"
    if len(samples) != length:
        return f"{len(samples)} samples, the info file says {length}"
    for key, fields in samples.items():
        if set(fields) != {"jpg", "cls"}:
            return f"sample {key!r} holds {sorted(fields)}, expected cls and jpg"
        if not fields["cls"].decode().isdigit() or int(fields["cls"]) >= num_classes:
            return f"sample {key!r}: class {fields['cls'].decode()!r} is not an index below {num_classes}"
        if problem := stored_image_problem(fields["jpg"]):
            return f"sample {key!r}: {problem}"
    return None


def _samples(path: Path) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes}; member contents are read, never extracted to disk."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                raise ValueError(f"{member.name} is not a regular file")
            key, _, extension = PurePosixPath(member.name).name.partition(".")
            samples.setdefault(key, {})[extension] = tar.extractfile(member).read()
    return samples

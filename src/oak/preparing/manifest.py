"""What `oak prepare` writes beside the shards: `_info.json` (read back through oak.data.info) and `_rejected.tsv`.

The info file names the source (its dataset.json, input files, and each archive's MD5 beside the
official one) and the settings, lists the classes, and per split the shards (files, sample
counts, sha256) and counts of inputs that reconcile with the source: found = written + rejected.
The rejected list has a row per problem: its split, the item, and why it was left out.
"""

import json
import os
import sys
from pathlib import Path

from oak.errors import OakError
from oak.preparing.archives import OFFICIAL_MD5
from oak.preparing.check import BAD, Outcome
from oak.preparing.images import Conversion
from oak.preparing.listing import Listing, Problem
from oak.preparing.sources import DATASET_FILE, Source


def check_md5(computed: dict[str, str], strict: bool) -> dict:
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


def read_dataset(source: Path) -> dict:
    """The source's own description (`dataset.json`, a JSON object), or {} when it has none."""
    path = source / DATASET_FILE
    if not os.path.lexists(path):
        return {}
    if not path.is_file():  # not read: a FIFO would block the read
        raise OakError(f"{path}: not a regular file; remove it or put the set's description (a JSON object) there")
    try:
        dataset = json.loads(path.read_bytes())
    except ValueError as error:
        raise OakError(f"{path}: not JSON ({error}); fix it or remove it") from None
    if not isinstance(dataset, dict):
        raise OakError(f"{path}: expected a JSON object (name, synthetic, description, ...)")
    return dataset


def shard_info(
    source: Path, dataset: dict, found: Source, listing: Listing, archives: dict, conversion: Conversion, samples_per_shard: int, seed: int
) -> dict:
    """The info file without its splits and counts, which are added as each split is written."""
    return {
        "name": dataset.get("name", source.name),
        "dataset": dataset,
        "inputs": {split: path.name + ("/" if path.is_dir() else "") for split, path in (("train", found.train), ("val", found.val))}
        | ({"labels": found.labels.name} if found.labels else {}),
        "archives": archives,
        "prepare": {**conversion.settings(), "samples_per_shard": samples_per_shard, "seed": seed},
        "classes": listing.classes,
        "num_classes": len(listing.classes),
        "splits": {},
        "counts": {},
    }


def split_info(split: str, filenames: list[str], lengths: list[int], digests: list[str]) -> dict:
    """A split's shards as the info file lists them (and timm's `wds/` reader reads them)."""
    return {"name": split, "num_samples": sum(lengths), "filenames": filenames, "shard_lengths": lengths, "sha256": digests}


def counts(split: str, listing: Listing, outcomes: list[Outcome], problems: list[Problem]) -> dict:
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


def rejected_table(problems: list[Problem]) -> str:
    rows = [f"{p.split}\t{p.origin}\t{p.reason}" for p in problems]
    return "\n".join(["split\titem\treason", *rows]) + "\n"

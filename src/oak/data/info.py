"""A shard folder's `_info.json`, typed: what `oak prepare` wrote and every later stage reads.

The file (written by oak.preparing.manifest) holds per split the shard files, their sample counts and sha256;
the class list; the dataset's own description; per split the counts of found, written and
rejected inputs; and how the shards were made. Stages read it through `read_info`, never as JSON:
a file that is not one Oak wrote (cut short, a key missing or of the wrong type, a shard name
that is not a plain `SPLIT-NNNNNN.tar`) is one error naming it.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oak.errors import OakError
from oak.layout import SHARD_INFO_FILE

SPLITS = ("train", "val")  # a shard set's splits, in the order `oak prepare` writes them

SHARD_NAME = re.compile(r"(?P<split>train|val)-\d{6}\.tar")  # how `oak prepare` names a shard: `train-000000.tar`


class NotShardInfo(Exception):
    """The info file's content is not what Oak writes; the message says where."""


@dataclass(frozen=True)
class SplitInfo:
    num_samples: int
    filenames: list[str]
    shard_lengths: list[int]
    sha256: list[str]


@dataclass(frozen=True)
class ShardInfo:
    name: str
    dataset: dict[str, Any]  # the source's dataset.json (the demo writes one): name, synthetic, description, ...
    classes: list[str]  # WordNet IDs, sorted: a sample's `cls` is its position here
    splits: dict[str, SplitInfo]
    counts: dict[str, dict[str, int]]  # per split: found, written, rejected, reencoded_rgb, resized, other_problems, left_by_os
    written: dict[str, Any]  # the whole file as written (inputs, archives, prepare settings too)

    @classmethod
    def from_dict(cls, info: Any) -> "ShardInfo":
        """The typed info; NotShardInfo when `info` is not what `oak prepare` writes."""
        top = _fields(info, "the file", {"name": str, "dataset": dict, "classes": list, "splits": dict, "counts": dict})
        _items_of(top["classes"], "classes", str)
        if sorted(top["splits"]) != sorted(SPLITS):
            raise NotShardInfo(f"splits are {sorted(top['splits'])}, expected {list(SPLITS)}")
        splits = {name: _split(name, entry) for name, entry in top["splits"].items()}
        return cls(top["name"], top["dataset"], top["classes"], splits, top["counts"], info)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def synthetic(self) -> bool:
        return bool(self.dataset.get("synthetic", False))

    @property
    def label(self) -> str:
        """How reports and run tags name the data: its name, marked when synthetic."""
        return f"{self.name} (synthetic)" if self.synthetic else self.name

    @property
    def fingerprint(self) -> str:
        """A hash of every shard's sha256: equal fingerprints mean byte-identical data."""
        digests = [digest for split in sorted(self.splits) for digest in self.splits[split].sha256]
        return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:12]

    def samples(self, split: str) -> int:
        return self.splits[split].num_samples


def read_info(shards: Path) -> ShardInfo:
    """The info file of a shard folder, or an error that says how to make one."""
    path = shards / SHARD_INFO_FILE
    if not path.is_file():  # a folder or a FIFO there would fail the read, or block it
        found = "not a regular file" if path.exists() else "shard info not found"
        raise OakError(f"{path}: {found}; run `oak prepare` (or `dvc repro prepare`) first")
    try:
        return ShardInfo.from_dict(json.loads(path.read_bytes()))
    except (ValueError, NotShardInfo) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise OakError(f"{path}: not a shard info file as `oak prepare` writes it ({error}); run `oak prepare` again") from None


def _fields(value: Any, where: str, types: dict[str, type]) -> dict[str, Any]:
    """`value` as a JSON object holding each key of `types` with a value of that type."""
    if not isinstance(value, dict):
        raise NotShardInfo(f"{where} is not a JSON object")
    for key, kind in types.items():
        if key not in value:
            raise NotShardInfo(f"{where} has no {key!r}")
        if not _is(value[key], kind):
            raise NotShardInfo(f"{where}: {key!r} is not {_NAMES[kind]}")
    return value


def _items_of(values: list, where: str, kind: type) -> None:
    if not all(_is(value, kind) for value in values):
        raise NotShardInfo(f"{where}: an item is not {_NAMES[kind]}")


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))  # JSON's true is not a count


_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def _split(name: str, entry: Any) -> SplitInfo:
    where = f"splits.{name}"
    fields = _fields(entry, where, {"num_samples": int, "filenames": list, "shard_lengths": list, "sha256": list})
    _items_of(fields["filenames"], f"{where}.filenames", str)
    _items_of(fields["shard_lengths"], f"{where}.shard_lengths", int)
    _items_of(fields["sha256"], f"{where}.sha256", str)
    if not len(fields["filenames"]) == len(fields["shard_lengths"]) == len(fields["sha256"]):
        raise NotShardInfo(f"{where}: filenames, shard_lengths and sha256 differ in length")
    for filename in fields["filenames"]:
        shard = SHARD_NAME.fullmatch(filename)
        if shard is None or shard["split"] != name:
            raise NotShardInfo(f"{where}: {filename!r} is not a shard name of this split ({name}-NNNNNN.tar)")
    return SplitInfo(fields["num_samples"], fields["filenames"], fields["shard_lengths"], fields["sha256"])

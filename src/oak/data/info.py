"""A shard folder's `_info.json`, typed: what `oak prepare` wrote and every later stage reads.

The file (written by oak.data.manifest) holds per split the shard files, their sample counts and sha256;
the class list; the dataset's own description; per split the counts of found, written and
rejected inputs; and how the shards were made. Stages read it through `read_info`, never as JSON.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oak.errors import OakError
from oak.layout import SHARD_INFO_FILE


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
    def from_dict(cls, info: dict[str, Any]) -> "ShardInfo":
        splits = {name: SplitInfo(s["num_samples"], s["filenames"], s["shard_lengths"], s["sha256"]) for name, s in info["splits"].items()}
        return cls(info["name"], info["dataset"], info["classes"], splits, info["counts"], info)

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
    if not path.exists():
        raise OakError(f"{path}: shard info not found; run `oak prepare` (or `dvc repro prepare`) first")
    return ShardInfo.from_dict(json.loads(path.read_text()))

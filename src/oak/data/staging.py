"""The staging folder `OUT.tmp` that `oak prepare` works in, and when a rerun may reuse the work left there.

It holds `fingerprint` (what the work was made from), `work/listing.json` (a source's listing,
kept when making it meant reading an archive through) and `shards/` (finished shards, and at the
end the info files). A rerun whose inputs and settings give the same fingerprint keeps it all, so
a killed run resumes; any other run starts afresh.
"""

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from oak.data.images import Conversion
from oak.data.listing import Listing
from oak.data.parallel import byte_progress
from oak.data.sources import Source, list_source, source_stamp
from oak.files import write_atomic

WORK_VERSION = 2  # part of the fingerprint: bump when stored bytes or work files change meaning


def work_fingerprint(source: Source, classes: object, samples_per_shard: int, seed: int, conversion: Conversion) -> str:
    """What the output depends on: the inputs (paths, sizes, times) and the settings. Not the
    worker count, nor on_bad: with no bad input both give the same shards."""
    settings = {"version": WORK_VERSION, "classes": classes, "samples_per_shard": samples_per_shard, "seed": seed, **asdict(conversion)}
    return hashlib.sha256(f"{json.dumps(settings, sort_keys=True)}\n{source_stamp(source)}".encode()).hexdigest()


def open_staging(staging: Path, fingerprint: str) -> None:
    """Keep the staging folder's work when it was made from the same inputs and settings, else start afresh."""
    stamp = staging / "fingerprint"
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "work").mkdir(parents=True)
    stamp.write_text(fingerprint)


def staged_listing(source: Source, staging: Path) -> Listing:
    """The source's listing; an archive's is read from the staging folder when a run before made it."""
    if not source.has_archive:
        return list_source(source, byte_progress)
    saved = staging / "work" / "listing.json"
    if saved.exists():
        return Listing.from_json(saved.read_text())
    listing = list_source(source, byte_progress)
    write_atomic(saved, listing.to_json())
    return listing

"""An image tree to WebDataset shards, in the layout timm's `wds/` reader reads.

Input: `SRC/train/<wnid>/*.JPEG` and `SRC/val/<wnid>/*.JPEG`. Output: `OUT/train-NNNNNN.tar`,
`OUT/val-NNNNNN.tar` and `OUT/_info.json` (per split: num_samples, filenames, shard_lengths,
sha256; the class list; counts). Each sample holds `jpg` (bytes that decode to RGB) and `cls`
(the class index: the WordNet ID's position in the sorted class list).
"""

import hashlib
import io
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds
from PIL import Image, UnidentifiedImageError

from oak.data.demo import DATASET_FILE
from oak.data.imagenet import WNID_PATTERN
from oak.errors import OakError

INFO_FILE = "_info.json"
SPLITS = ("train", "val")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
REENCODE_QUALITY = 95


@dataclass(frozen=True)
class Sample:
    key: str  # the file name without suffix, dots replaced: webdataset splits keys at the first dot
    path: Path
    label: int


def scan_tree(source: Path) -> tuple[list[str], dict[str, list[Sample]]]:
    """The sorted class list and each split's samples; every problem found is listed in one error."""
    if not source.is_dir():
        raise OakError(f"{source}: source folder not found; set data.source or run `oak demo-data` first")
    problems: list[str] = []
    folders = {split: _class_folders(source / split, problems) for split in SPLITS}
    wnids = sorted(folders["train"])
    for wnid in sorted(set(folders["val"]) - set(folders["train"])):
        problems.append(f"{source / 'val' / wnid}: class has no training folder")
    label_of = {wnid: index for index, wnid in enumerate(wnids)}
    samples: dict[str, list[Sample]] = {}
    for split in SPLITS:
        samples[split] = [
            Sample(path.stem.replace(".", "_"), path, label_of.get(wnid, -1))
            for wnid, folder in sorted(folders[split].items())
            for path in _images(folder, problems)
        ]
        _check_unique_keys(samples[split], problems)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise OakError(f"{source}: {len(problems)} problem(s), nothing written: {listed}")
    return wnids, samples


def _class_folders(split_dir: Path, problems: list[str]) -> dict[str, Path]:
    if not split_dir.is_dir():
        problems.append(f"{split_dir}: split folder not found")
        return {}
    folders = {}
    for entry in sorted(split_dir.iterdir()):
        if not entry.is_dir():
            problems.append(f"{entry}: stray file where class folders belong")
        elif not WNID_PATTERN.fullmatch(entry.name):
            problems.append(f"{entry}: folder name is not a WordNet ID (n########)")
        else:
            folders[entry.name] = entry
    if not folders and split_dir.is_dir():
        problems.append(f"{split_dir}: no class folders")
    return folders


def _images(folder: Path, problems: list[str]) -> list[Path]:
    files = sorted(folder.iterdir())
    images = [f for f in files if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    problems.extend(f"{f}: not an image file (expected .JPEG, .jpg or .png)" for f in files if f not in images)
    if not files:
        problems.append(f"{folder}: empty class folder; remove it or add its images")
    return images


def _check_unique_keys(samples: list[Sample], problems: list[str]) -> None:
    seen: dict[str, Path] = {}
    for sample in samples:
        if sample.key in seen:
            problems.append(f"{sample.path}: duplicate sample key {sample.key!r} (also {seen[sample.key]})")
        seen[sample.key] = sample.path


def rgb_jpeg_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes when it is an RGB JPEG, else an RGB JPEG re-encoding; and whether re-encoded."""
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG" and image.mode == "RGB":
                return data, False
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=REENCODE_QUALITY)
    except (UnidentifiedImageError, OSError) as error:
        raise OakError(f"{path}: cannot be read as an image ({error})") from None
    return buffer.getvalue(), True


def write_shard(path: Path, samples: list[Sample]) -> tuple[str, int]:
    """Write one shard atomically (temp name, then rename); return its sha256 and re-encoded count.

    Fixed tar metadata (mtime 0, owner, mode) makes the same samples give the same bytes.
    """
    partial = path.with_name(path.name + ".partial")
    reencoded = 0
    with open(partial, "wb") as stream:
        with wds.TarWriter(stream, mtime=0, user="oak", group="oak", mode=0o444) as writer:
            for sample in samples:
                image, converted = rgb_jpeg_bytes(sample.path)
                reencoded += converted
                writer.write({"__key__": sample.key, "jpg": image, "cls": str(sample.label).encode()})
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    partial.rename(path)
    return digest, reencoded


def prepare_shards(source: Path, out: Path, *, samples_per_shard: int, seed: int) -> dict:
    """Convert the tree at `source` into shards in `out` (replaced) and return the info written.

    Training samples are shuffled across classes with `seed` so no shard holds a single class;
    validation keeps the sorted order. The shards are built in a sibling temp folder and renamed
    into place, so `out` is either absent or complete.
    """
    if samples_per_shard < 1:
        raise OakError(f"prepare.samples_per_shard={samples_per_shard}: must be at least 1")
    wnids, samples = scan_tree(source)
    random.Random(seed).shuffle(samples["train"])
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        info = _write_splits(source, staging, wnids, samples, samples_per_shard)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return info


def _write_splits(source: Path, staging: Path, wnids: list[str], samples: dict[str, list[Sample]], samples_per_shard: int) -> dict:
    dataset_file = source / DATASET_FILE
    dataset = json.loads(dataset_file.read_text()) if dataset_file.exists() else {}
    info: dict = {
        "name": dataset.get("name", source.name),
        "dataset": dataset,
        "classes": wnids,
        "num_classes": len(wnids),
        "splits": {},
        "counts": {},
    }
    for split in SPLITS:
        chunks = [samples[split][i : i + samples_per_shard] for i in range(0, len(samples[split]), samples_per_shard)]
        filenames, digests, reencoded = [], [], 0
        for index, chunk in enumerate(chunks):
            filename = f"{split}-{index:06d}.tar"
            digest, converted = write_shard(staging / filename, chunk)
            filenames.append(filename)
            digests.append(digest)
            reencoded += converted
        info["splits"][split] = {
            "name": split,
            "num_samples": len(samples[split]),
            "filenames": filenames,
            "shard_lengths": [len(chunk) for chunk in chunks],
            "sha256": digests,
        }
        info["counts"][split] = {"found": len(samples[split]), "written": len(samples[split]), "reencoded_rgb": reencoded}
    (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return info


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

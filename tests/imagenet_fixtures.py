"""Tiny ImageNet look-alikes with the real structure: per-class tars inside the train tar, a flat
val tar, a devkit .tar.gz whose meta.mat scipy writes with the real field layout, Kaggle's CSV."""

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from oak.data.imagenet import IMAGENET_1K_WNIDS

# Three real classes; their ILSVRC2012_IDs run against the sorted order, as in the real devkit.
WNIDS = [IMAGENET_1K_WNIDS[0], IMAGENET_1K_WNIDS[400], IMAGENET_1K_WNIDS[999]]
ILSVRC_ID = {WNIDS[0]: 3, WNIDS[1]: 1, WNIDS[2]: 2}
TRAIN_PER_CLASS = 5
VAL_IMAGES = 6


def jpeg(seed: int, size: tuple[int, int] = (24, 18), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "CMYK": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (18, 24, 4), dtype=np.uint8), "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def train_images() -> dict[str, dict[str, bytes]]:
    """wnid -> {file name: bytes}, named as in ImageNet (`n01440764_10026.JPEG`)."""
    return {wnid: {f"{wnid}_{n}.JPEG": jpeg(100 * c + n) for n in range(TRAIN_PER_CLASS)} for c, wnid in enumerate(WNIDS)}


def val_images() -> dict[str, bytes]:
    return {val_name(n): jpeg(10_000 + n) for n in range(1, VAL_IMAGES + 1)}


def val_name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def val_truth() -> dict[str, str]:
    """Validation image stem -> WordNet ID."""
    return {val_name(n).removesuffix(".JPEG"): WNIDS[n % len(WNIDS)] for n in range(1, VAL_IMAGES + 1)}


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_train_archive(path: Path, images: dict[str, dict[str, bytes]]) -> None:
    path.write_bytes(tar_bytes({f"{wnid}.tar": tar_bytes(files) for wnid, files in images.items()}))


def write_devkit(path: Path, truth: dict[str, str], ground_truth: str | None = None) -> None:
    """ILSVRC2012_devkit_t12.tar.gz: data/meta.mat (synsets, leaves and one inner node) and the ground truth."""
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
    synsets = np.zeros(len(WNIDS) + 1, dtype=[(name, object) for name in fields])
    for row, wnid in enumerate(WNIDS):
        synsets[row] = (ILSVRC_ID[wnid], wnid, f"words {wnid}", "a gloss", 0, np.zeros((1, 0)), 0, TRAIN_PER_CLASS)
    # An inner WordNet node: has children, is no class, and must not be taken for one.
    synsets[-1] = (1001, "n00001740", "entity", "that which is", len(WNIDS), np.array([1, 2, 3]), 9, 0)
    meta = io.BytesIO()
    savemat(meta, {"synsets": synsets.reshape(-1, 1)})
    if ground_truth is None:
        ground_truth = "".join(f"{ILSVRC_ID[truth[stem]]}\n" for stem in sorted(truth))
    members = {
        "ILSVRC2012_devkit_t12/data/meta.mat": meta.getvalue(),
        "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": ground_truth.encode(),
        "ILSVRC2012_devkit_t12/readme.txt": b"devkit\n",
    }
    with tarfile.open(path, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_kaggle_labels(path: Path, truth: dict[str, str]) -> None:
    rows = [f"{stem},{wnid} 1 2 10 12 {wnid} 3 4 8 9" for stem, wnid in sorted(truth.items(), reverse=True)]
    path.write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")


def write_archives(root: Path, *, labels: str = "devkit") -> Path:
    """The official archive layout in `root`: train tar, val tar and one label file."""
    root.mkdir(parents=True, exist_ok=True)
    write_train_archive(root / "ILSVRC2012_img_train.tar", train_images())
    (root / "ILSVRC2012_img_val.tar").write_bytes(tar_bytes(val_images()))
    if labels == "devkit":
        write_devkit(root / "ILSVRC2012_devkit_t12.tar.gz", val_truth())
    else:
        write_kaggle_labels(root / "LOC_val_solution.csv", val_truth())
    return root


def write_tree(root: Path) -> Path:
    """The same images as a folder tree: train/<wnid>/ and val/<wnid>/."""
    for wnid, files in train_images().items():
        (root / "train" / wnid).mkdir(parents=True)
        for name, data in files.items():
            (root / "train" / wnid / name).write_bytes(data)
    truth = val_truth()
    for name, data in val_images().items():
        folder = root / "val" / truth[name.removesuffix(".JPEG")]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return root

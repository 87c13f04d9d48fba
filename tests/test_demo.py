"""The demo set: ImageNet's folder layout and WordNet IDs, deterministic, learnable by shape not colour."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DEMO
from PIL import Image

from oak.data.imagenet import IMAGENET_1K_WNIDS
from oak.errors import OakError
from oak.preparing.demo import DATASET_FILE, write_demo


def files(tree: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


def test_layout_follows_imagenet(demo_tree: Path) -> None:
    wnids = sorted(p.name for p in (demo_tree / "train").iterdir())
    assert len(wnids) == TINY_DEMO["classes"]
    assert set(wnids) <= set(IMAGENET_1K_WNIDS)
    assert sorted(p.name for p in (demo_tree / "val").iterdir()) == wnids
    for wnid in wnids:
        names = sorted(p.name for p in (demo_tree / "train" / wnid).iterdir())
        assert names == sorted(f"{wnid}_{n}.JPEG" for n in range(TINY_DEMO["train_per_class"]))
        with Image.open(demo_tree / "val" / wnid / f"{wnid}_0.JPEG") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (40, 40))


def test_it_is_marked_synthetic(demo_tree: Path) -> None:
    description = json.loads((demo_tree / DATASET_FILE).read_text())
    assert description["synthetic"] is True
    assert "not ImageNet" in description["description"]


def test_same_seed_same_bytes_other_seed_other_bytes(demo_tree: Path, tmp_path: Path) -> None:
    write_demo(tmp_path / "again", **TINY_DEMO)
    assert files(tmp_path / "again") == files(demo_tree)
    write_demo(tmp_path / "other", **{**TINY_DEMO, "seed": 1})
    assert files(tmp_path / "other") != files(demo_tree)


def test_colour_alone_does_not_tell_the_classes_apart(tmp_path: Path) -> None:
    """A nearest-mean-colour classifier stays near chance: the classes differ in structure."""
    tree = tmp_path / "demo"
    write_demo(tree, classes=10, train_per_class=30, val_per_class=30, image_size=32, seed=0)

    def mean_colours(split: str) -> tuple[np.ndarray, np.ndarray]:
        paths = sorted((tree / split).rglob("*.JPEG"))
        colours = np.stack([np.asarray(Image.open(p), dtype=np.float32).mean(axis=(0, 1)) for p in paths])
        labels = np.array([sorted(p.name for p in (tree / split).iterdir()).index(p.parent.name) for p in paths])
        return colours, labels

    train_colours, train_labels = mean_colours("train")
    centroids = np.stack([train_colours[train_labels == k].mean(axis=0) for k in range(10)])
    val_colours, val_labels = mean_colours("val")
    predicted = np.argmin(((val_colours[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == val_labels).mean() < 0.2  # chance is 0.1


def test_too_many_classes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OakError, match="demo.classes=11"):
        write_demo(tmp_path / "demo", **{**TINY_DEMO, "classes": 11})
    assert not (tmp_path / "demo").exists()


def test_a_demo_set_is_replaced_but_a_folder_oak_did_not_write_is_refused_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = {**TINY_DEMO, "train_per_class": 2, "val_per_class": 1}
    write_demo(tmp_path / "demo", **small)
    write_demo(tmp_path / "demo", **{**small, "seed": 1})  # its own set: replaced
    write_demo(tmp_path / "other", **{**small, "seed": 1})
    assert files(tmp_path / "demo") == files(tmp_path / "other")
    (tmp_path / "demo" / "train" / "notes.txt").write_text("mine")
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.txt").write_text("four years of work")
    before = files(tmp_path)
    with pytest.raises(OakError, match=r"demo: holds 'train/notes.txt', which Oak does not write there"):
        write_demo(tmp_path / "demo", **small)
    with pytest.raises(OakError, match=r"thesis: holds 'thesis.txt', .* not a demo set of `oak demo-data` \(those hold a dataset.json"):
        write_demo(tmp_path / "thesis", **small)
    (tmp_path / "fresh.tmp").mkdir()  # where a demo set is built before it is renamed into place
    (tmp_path / "fresh.tmp" / "draft.txt").write_text("a draft")
    before = files(tmp_path)
    with pytest.raises(OakError, match=r"fresh.tmp: holds 'draft.txt'"):
        write_demo(tmp_path / "fresh", **small)
    monkeypatch.chdir(tmp_path / "thesis")
    with pytest.raises(OakError, match=r"\.: is or contains the current folder"):
        write_demo(Path("."), **small)
    assert files(tmp_path) == before

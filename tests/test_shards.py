"""`oak prepare`: an image tree to WebDataset shards that timm reads, exact and reproducible."""

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from conftest import TINY_DEMO
from PIL import Image

from oak.data.info import read_info
from oak.errors import OakError
from oak.layout import SHARD_INFO_FILE
from oak.preparing.shards import prepare_shards


def samples(shards: Path, split: str) -> list[dict]:
    urls = [str(shards / name) for name in read_info(shards).splits[split].filenames]
    return list(wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples()))


def test_counts_reconcile_with_the_tree(demo_tree: Path, shards: Path) -> None:
    info = read_info(shards)
    for split, per_class in (("train", "train_per_class"), ("val", "val_per_class")):
        expected = TINY_DEMO["classes"] * TINY_DEMO[per_class]
        entry = info.splits[split]
        assert entry.num_samples == sum(entry.shard_lengths) == expected
        assert len(samples(shards, split)) == expected
        assert info.counts[split] == {
            "found": expected,
            "written": expected,
            "rejected": 0,
            "reencoded_rgb": 0,
            "resized": 0,
            "other_problems": 0,
            "left_by_os": 0,
        }
        for name, length, digest in zip(entry.filenames, entry.shard_lengths, entry.sha256):
            assert hashlib.sha256((shards / name).read_bytes()).hexdigest() == digest
            with tarfile.open(shards / name) as tar:
                assert len(tar.getnames()) == 2 * length  # .jpg and .cls per sample


def test_class_index_is_the_position_in_the_sorted_wordnet_ids(shards: Path) -> None:
    classes = read_info(shards).classes
    assert classes == sorted(classes)
    for sample in samples(shards, "train") + samples(shards, "val"):
        assert "." not in sample["__key__"]
        assert classes[int(sample["cls"])] == sample["__key__"].split("_")[0]


def test_training_shards_mix_the_classes(shards: Path) -> None:
    info = read_info(shards)
    first_shard = str(shards / info.splits["train"].filenames[0])
    labels = {int(s["cls"]) for s in wds.DataPipeline(wds.SimpleShardList([first_shard]), wds.tarfile_to_samples())}
    assert len(labels) > 1


def test_every_sample_decodes_to_rgb_even_from_grayscale_and_png(demo_tree: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(demo_tree, tree)
    wnid = sorted(p.name for p in (tree / "train").iterdir())[0]
    Image.new("L", (40, 40), 128).save(tree / "train" / wnid / f"{wnid}_gray.JPEG", format="JPEG")
    Image.new("RGBA", (40, 40), (1, 2, 3, 4)).save(tree / "train" / wnid / f"{wnid}_png.JPEG", format="PNG")
    info = prepare_shards(tree, tmp_path / "shards", samples_per_shard=16, seed=0)
    assert info.counts["train"]["reencoded_rgb"] == 2
    for sample in samples(tmp_path / "shards", "train"):
        with Image.open(io.BytesIO(sample["jpg"])) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")


def test_same_inputs_same_bytes(demo_tree: Path, shards: Path, tmp_path: Path) -> None:
    prepare_shards(demo_tree, tmp_path / "again", samples_per_shard=16, seed=0)
    for path in sorted(shards.iterdir()):
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


def test_timm_reads_the_shards(shards: Path) -> None:
    from timm.data import create_dataset

    dataset = create_dataset("wds/oak", root=str(shards), split="val", is_training=False, batch_size=1)
    images = list(dataset)
    assert len(images) == read_info(shards).samples("val")
    image, target = images[0]
    assert image.mode == "RGB" and 0 <= target < len(read_info(shards).classes)


@pytest.mark.parametrize(
    "spoil, named",
    [
        (lambda tree: shutil.rmtree(tree), "source folder not found"),
        (lambda tree: (tree / "train" / "n09999999").mkdir(), "n09999999: empty class folder"),
        (lambda tree: (tree / "train" / "cats").mkdir(), "cats: folder name is not a WordNet ID"),
        (lambda tree: (tree / "train" / "README").write_text(""), "README: stray file"),
        (lambda tree: shutil.rmtree(tree / "val"), "val: split folder not found"),
    ],
)
def test_bad_trees_fail_before_writing_and_name_the_cause(spoil, named: str, demo_tree: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(demo_tree, tree)
    spoil(tree)
    with pytest.raises(OakError, match=named):
        prepare_shards(tree, tmp_path / "shards", samples_per_shard=16, seed=0)
    assert not (tmp_path / "shards").exists()
    assert not (tmp_path / "shards.tmp").exists()


def test_info_file_is_json_with_the_dataset_description(shards: Path) -> None:
    info = json.loads((shards / SHARD_INFO_FILE).read_text())
    assert info["dataset"]["synthetic"] is True
    assert info["num_classes"] == TINY_DEMO["classes"]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 256 KiB filesystem (tmpfs): mounting one needs root."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_says_where_how_much_and_that_a_rerun_resumes(demo_tree: Path, small_disk: Path) -> None:
    tree = small_disk.parent / "tree"
    shutil.copytree(demo_tree, tree)
    for image in list(tree.rglob("*.JPEG"))[:20]:
        image.write_bytes(image.read_bytes() + bytes(20_000))  # bytes after the end marker: still valid, and bigger
    with pytest.raises(OakError) as failure:
        prepare_shards(tree, small_disk / "shards", samples_per_shard=4, seed=0)
    message = str(failure.value)
    assert message.startswith(f"{small_disk / 'shards.tmp' / 'shards'}: out of disk space: the shards need about ")
    assert message.endswith("run again: the whole shards written so far are kept and reused")
    assert not (small_disk / "shards").exists() and not list(small_disk.rglob("*.partial"))
